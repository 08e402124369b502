"""DICOM files and series become volumes with exact geometry and modality values; bad ones are refused clearly.

References: SimpleITK/GDCM's own series reader (geometry and pixels), pydicom's bundled files
(uncompressed originals of the compressed ones), and series written here from real MRI.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from imaging_data import keep_locale, oblique_volume, write_dicom_file, write_dicom_series, write_enhanced_file
from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.imaging.dicom import list_dicom_series
from Wonder3DMedLib.imaging.io import Volume, read_volume, volume_from_sitk

TEST_FILES = Path(get_testdata_file("CT_small.dcm")).parent
CT5N = TEST_FILES / "dicomdirtests" / "98892001" / "CT5N"


def sitk_series(folder: Path) -> Volume:
    with keep_locale():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
        return volume_from_sitk(reader.Execute())


@pytest.fixture(scope="module")
def t1(itk_example_data) -> Volume:
    """ITK's real T1 (coronal acquisition, 2×2×3 mm), cropped to keep the tests quick."""
    volume = read_volume(itk_example_data / "KmeansTest_T1UCharRaw.nii.gz")
    return Volume(volume.array[10:50, 20:110, 14:114].astype(np.int16), volume.ijk_to_ras)


def test_ct_small_in_hounsfield_units_with_its_geometry():
    volume = read_volume(get_testdata_file("CT_small.dcm"))
    dataset = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert volume.array.shape == (1, 128, 128)
    expected = dataset.pixel_array * float(dataset.RescaleSlope) + float(dataset.RescaleIntercept)
    assert np.array_equal(volume.array[0], expected)
    with keep_locale():
        reference = volume_from_sitk(sitk.ReadImage(get_testdata_file("CT_small.dcm")))
    # i, j axes and origin as GDCM reads them; k spacing is the slice thickness (5 mm)
    assert np.allclose(volume.ijk_to_ras[:, [0, 1, 3]], reference.ijk_to_ras[:, [0, 1, 3]], atol=1e-6)
    assert volume.spacing[2] == pytest.approx(float(dataset.SliceThickness))
    assert volume.metadata["modality"] == "CT" and volume.dicom_window is None


def test_file_without_preamble_or_suffix(tmp_path):
    dataset = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    dataset.preamble = None
    dataset.save_as(tmp_path / "IM0001", enforce_file_format=False)
    assert (tmp_path / "IM0001").read_bytes()[128:132] != b"DICM"
    assert np.array_equal(read_volume(tmp_path / "IM0001").array, read_volume(get_testdata_file("CT_small.dcm")).array)


@pytest.mark.parametrize(
    "name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_bigendian.dcm"]
)
def test_compressed_and_big_endian_files_decode_to_the_original(name):
    original = read_volume(get_testdata_file("MR_small.dcm"))
    volume = read_volume(get_testdata_file(name))
    assert np.array_equal(volume.array, original.array)
    assert np.array_equal(volume.ijk_to_ras, original.ijk_to_ras)
    assert volume.dicom_window == (600.0, 1600.0)


def test_jpeg2000_lossy_ct_decodes_with_its_window():
    volume = read_volume(get_testdata_file("693_J2KI.dcm"))
    assert volume.array.shape == (1, 512, 512) and volume.dicom_window == (40.0, 100.0)
    assert volume.metadata["transfer_syntax"] == "JPEG 2000 Image Compression"


def test_ct_series_matches_gdcm_series_reader():
    volume = read_volume(CT5N)
    reference = sitk_series(CT5N)
    assert volume.array.shape == (5, 16, 16)
    assert np.array_equal(volume.array, reference.array)
    assert np.allclose(volume.ijk_to_ras, reference.ijk_to_ras, atol=1e-6)


def test_multiframe_rt_dose_uses_its_frame_offsets():
    volume = read_volume(get_testdata_file("rtdose.dcm"))
    dataset = pydicom.dcmread(get_testdata_file("rtdose.dcm"))
    assert volume.array.shape == (15, 10, 10) and volume.spacing[2] == pytest.approx(5.0)
    assert np.allclose(volume.array, dataset.pixel_array * float(dataset.DoseGridScaling), rtol=1e-6)


def test_enhanced_multiframe_frames_are_sorted_and_rescaled_per_frame(tmp_path):
    """Per-frame positions given out of order along the normal (R), each frame with its own slope."""
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 1000, size=(4, 6, 7))
    along = np.array([6.0, 0.0, 9.0, 3.0])  # R positions of the frames, shuffled
    positions = np.column_stack([-along, np.full(4, 10.0), np.full(4, 40.0)])  # LPS: x = -R
    slopes = [1.0, 2.0, 0.5, 4.0]
    volume = read_volume(write_enhanced_file(tmp_path / "enhanced.dcm", frames, positions, slopes))
    # row direction A (LPS (0, 1, 0)) × column direction inferior (0, 0, −1) = LPS (−1, 0, 0) = RAS +R
    order = np.argsort(along)
    assert np.allclose(volume.array, np.stack([frames[f] * slopes[f] - 5.0 for f in order]))
    # i along A at 0.75 mm (PixelSpacing[1]), j inferior at 0.5 mm (PixelSpacing[0]), k towards R at 3 mm
    assert np.allclose(volume.ijk_to_ras[:3, :3], [[0, 0, 3.0], [-0.75, 0, 0], [0, -0.5, 0]])
    assert np.allclose(volume.ijk_to_ras[:3, 3], [0.0, -10.0, 40.0])


def test_oblique_anisotropic_series_with_shuffled_names_round_trips(t1, tmp_path):
    """Slices are sorted by position on the normal, not by file name or InstanceNumber."""
    volume = oblique_volume(t1.array, spacing=(1.1, 0.9, 2.5))
    files = write_dicom_series(volume, tmp_path / "series", series_uid="1.2.826.0.1.3680043.8.498.10", seed=3)
    numbers = [int(pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber) for f in sorted(files)]
    assert numbers != sorted(numbers), "the test must not be in file-name order"
    read = read_volume(tmp_path / "series")
    assert np.array_equal(read.array, volume.array)
    assert np.allclose(read.ijk_to_ras, volume.ijk_to_ras, atol=1e-6)
    reference = sitk_series(tmp_path / "series")
    assert np.allclose(read.ijk_to_ras, reference.ijk_to_ras, atol=1e-6) and np.array_equal(read.array, reference.array)


def test_several_series_are_listed_and_chosen_by_uid(t1, tmp_path):
    first, second = "1.2.826.0.1.3680043.8.498.21", "1.2.826.0.1.3680043.8.498.22"
    write_dicom_series(oblique_volume(t1.array[:6]), tmp_path / "a", series_uid=first, description="T1 oblique")
    write_dicom_series(oblique_volume(t1.array[:9] // 2, permute=True), tmp_path / "b", series_uid=second,
                       description="T1 coronal")
    (tmp_path / "notes.txt").write_text("not DICOM")
    shutil.copy(get_testdata_file("rtstruct.dcm"), tmp_path / "rtstruct.dcm")
    series = list_dicom_series(tmp_path)
    assert [(s.uid, s.description, len(s.files)) for s in series] == [(second, "T1 coronal", 9), (first, "T1 oblique", 6)]
    with pytest.raises(InputError) as error:
        read_volume(tmp_path)
    message = str(error.value)
    assert "the folder holds 2 image series; say which one with --series UID" in message
    assert f"{second}  MR 'T1 coronal' (9 files)" in message and f"{first}  MR 'T1 oblique' (6 files)" in message
    chosen = read_volume(tmp_path, series_uid=first)
    assert np.array_equal(chosen.array, t1.array[:6])
    with pytest.raises(InputError, match=r"no series with UID 1\.2\.3 in the folder; series present"):
        read_volume(tmp_path, series_uid="1.2.3")


def test_missing_slice_is_resampled_evenly_with_a_warning(t1, tmp_path):
    volume = oblique_volume(t1.array[:8], spacing=(1.0, 1.0, 2.0))
    write_dicom_series(volume, tmp_path / "gap", series_uid="1.2.826.0.1.3680043.8.498.30", skip=(3,))
    with pytest.warns(UserWarning, match=r"uneven slice spacing \(2 to 4 mm\): resampled to 8 slices 2 mm apart"):
        read = read_volume(tmp_path / "gap")
    assert np.allclose(read.ijk_to_ras, volume.ijk_to_ras, atol=1e-6)
    kept = [0, 1, 2, 4, 5, 6, 7]
    assert np.array_equal(read.array[kept], volume.array[kept])
    # the missing slice is the mean of its neighbours (linear interpolation halfway)
    assert np.allclose(read.array[3], (volume.array[2].astype(float) + volume.array[4]) / 2)
    assert "resampled" in read.metadata["notes"][0]


def test_bad_series_are_refused(t1, tmp_path):
    with pytest.raises(InputError, match=r"too unevenly spaced to form a volume \(1\.25 to 202 mm apart\)"):
        read_volume(TEST_FILES / "dicomdirtests" / "77654033" / "CT2")
    uid = "1.2.826.0.1.3680043.8.498.40"
    write_dicom_series(oblique_volume(t1.array[:4]), tmp_path / "4d", series_uid=uid, seed=1)
    write_dicom_series(oblique_volume(t1.array[4:8]), tmp_path / "4d" / "repeat", series_uid=uid, seed=2)
    with pytest.raises(InputError, match="8 images lie at only 4 distinct positions: .* it is 4D"):
        read_volume(tmp_path / "4d")
    write_dicom_series(oblique_volume(t1.array[:5]), tmp_path / "tilt", series_uid="1.2.826.0.1.3680043.8.498.41",
                       tilt_mm=0.8)
    with pytest.raises(InputError, match="not stacked along their normal .* gantry tilt"):
        read_volume(tmp_path / "tilt")
    (tmp_path / "empty").mkdir()
    shutil.copy(get_testdata_file("rtstruct.dcm"), tmp_path / "empty" / "rs.dcm")
    (tmp_path / "empty" / "readme.txt").write_text("hello")
    with pytest.raises(InputError, match=r"holds no DICOM image series \(found 1 RTSTRUCT without pixel data, 1 non-DICOM\)"):
        read_volume(tmp_path / "empty")


@pytest.mark.parametrize(
    "bits,signed,slope,intercept",
    [(8, False, None, None), (8, True, None, None), (16, False, 1.0, -1024.0), (16, True, 2.5, 10.0)],
)
def test_pixel_encodings_and_rescale(tmp_path, bits, signed, slope, intercept):
    rng = np.random.default_rng(bits + signed)
    info = np.iinfo(np.dtype(f"{'i' if signed else 'u'}{bits // 8}"))
    stored = rng.integers(info.min, info.max, size=(6, 5), endpoint=True)
    volume = read_volume(write_dicom_file(tmp_path / "x.dcm", stored, bits=bits, signed=signed, slope=slope,
                                          intercept=intercept))
    expected = stored * (slope if slope is not None else 1.0) + (intercept or 0.0)
    assert np.array_equal(volume.array[0], expected)
    assert volume.array.dtype.kind == ("f" if slope not in (None, 1.0) else "i")
    # PixelSpacing is [between rows, between columns]: j spacing 0.8, i spacing 0.6; LPS origin → RAS
    assert np.allclose(volume.spacing[:2], [0.6, 0.8]) and np.allclose(volume.ijk_to_ras[:3, 3], [10.0, -20.0, 30.0])


def test_float_pixel_data(tmp_path):
    stored = np.linspace(-3.5, 7.25, 30, dtype=np.float32).reshape(5, 6)
    volume = read_volume(write_dicom_file(tmp_path / "f.dcm", stored, floating=True))
    assert volume.array.dtype == np.float32 and np.array_equal(volume.array[0], stored)


def test_monochrome1_is_inverted_with_its_windows(tmp_path):
    stored = np.array([[0, 100, 4095], [2000, 50, 7]])
    kwargs = dict(bits=16, signed=False, window=([1000.0, 300.0], [2000.0, 600.0]))
    normal = read_volume(write_dicom_file(tmp_path / "m2.dcm", stored, **kwargs))
    inverted = read_volume(write_dicom_file(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1", **kwargs))
    assert normal.metadata["windows"] == [[1000.0, 2000.0], [300.0, 600.0]] and normal.dicom_window == (1000.0, 2000.0)
    high = 2**16 - 1
    assert np.array_equal(inverted.array[0], high - stored) and inverted.metadata["inverted"]
    assert inverted.dicom_window == (high - 1000.0, 2000.0)
    assert inverted.metadata["windows"][1] == [high - 300.0, 600.0]


def test_no_patient_identifiers_in_what_the_reader_keeps(t1, tmp_path):
    write_dicom_series(oblique_volume(t1.array[:3]), tmp_path / "s", series_uid="1.2.826.0.1.3680043.8.498.50",
                       description="T1")
    volume = read_volume(tmp_path / "s")
    text = json.dumps(volume.metadata)
    assert "Doe" not in text and "PATIENT-ID-123" not in text and "1.2.826" not in text


def test_files_that_are_not_images_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"holds no image \(Modality RTSTRUCT, RT Structure Set Storage\)"):
        read_volume(get_testdata_file("rtstruct.dcm"))
    with pytest.raises(InputError, match=r"holds no image \(Modality SR, Comprehensive SR Storage\)"):
        read_volume(get_testdata_file("test-SR.dcm"))
    (tmp_path / "fake.dcm").write_text("this is not a DICOM file\n" * 20)
    with pytest.raises(InputError, match="not a DICOM file"):
        read_volume(tmp_path / "fake.dcm")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="unsupported file: not a DICOM file and not a volume format"):
        read_volume(tmp_path / "notes.txt")
    with pytest.raises(InputError, match=r"this DICOM image is in colour \(RGB, 3 samples per pixel\)"):
        read_volume(get_testdata_file("SC_rgb_rle.dcm"))


def test_truncated_files_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"the DICOM file is truncated: The number of bytes of pixel data is less"):
        read_volume(get_testdata_file("MR_truncated.dcm"))
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[:700])
    with pytest.raises(InputError, match=r"describes an image \(Modality CT, CT Image Storage\) but its pixel data "
                       "is missing: the file is truncated or corrupt"):
        read_volume(tmp_path / "cut.dcm")
    (tmp_path / "cut_in_header.dcm").write_bytes(data[:300])
    with pytest.raises(InputError, match="truncated or corrupt"):
        read_volume(tmp_path / "cut_in_header.dcm")


def test_undecodable_transfer_syntax_names_what_is_missing(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.uid import MPEG2MPML

    dataset = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    dataset.PixelData = encapsulate([dataset.PixelData])
    dataset.file_meta.TransferSyntaxUID = MPEG2MPML
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset.save_as(tmp_path / "mpeg.dcm")
    with pytest.raises(InputError, match=r"pydicom has no decoder for MPEG2 Main Profile / Main Level .*`gdcmconv --raw"):
        read_volume(tmp_path / "mpeg.dcm")
    with pytest.raises(InputError, match=r"cannot decode the pixel data .*\n  hint: decoders tried for JPEG Extended"):
        read_volume(get_testdata_file("JPEG-lossy.dcm"))
