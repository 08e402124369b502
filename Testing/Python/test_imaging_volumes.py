"""Volume files that cannot be one usable 3D scalar image are refused with a message saying why."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.imaging.io import Volume, read_volume, write_volume
from Wonder3DMedLib.imaging.labels import read_labelmap


def write_mha(path, sizes, data: bytes = b"") -> None:
    header = f"ObjectType = Image\nNDims = 3\nDimSize = {' '.join(map(str, sizes))}\nElementType = MET_UCHAR\n"
    path.write_bytes((header + "ElementDataFile = LOCAL\n").encode() + data)


def test_nifti_nrrd_mha_keep_values_geometry_and_say_their_format(tmp_path):
    volume = Volume(np.arange(60, dtype=np.int16).reshape(3, 4, 5), np.diag([0.5, 0.75, 2.0, 1.0]))
    for suffix, name in ((".nii.gz", "NIfTI"), (".nrrd", "NRRD"), (".mha", "MetaImage")):
        read = read_volume(write_volume(volume, tmp_path / f"v{suffix}"))
        assert np.array_equal(read.array, volume.array) and np.allclose(read.ijk_to_ras, volume.ijk_to_ras)
        assert read.metadata["format"] == name and read.dicom_window is None


def test_two_dimensional_image_is_a_single_slice(tmp_path):
    image = sitk.GetImageFromArray(np.arange(12, dtype=np.uint8).reshape(3, 4))
    image.SetSpacing((0.5, 0.25))
    sitk.WriteImage(image, str(tmp_path / "plane.nrrd"))
    volume = read_volume(tmp_path / "plane.nrrd")
    assert volume.array.shape == (1, 3, 4) and np.allclose(volume.spacing[:2], [0.5, 0.25])
    assert "notes" not in volume.metadata


def test_a_picture_says_its_millimetres_are_assumed(tmp_path):
    """A PNG has no spacing or orientation: it is read with 1 mm pixels, and says so."""
    sitk.WriteImage(sitk.GetImageFromArray(np.arange(12, dtype=np.uint8).reshape(3, 4)), str(tmp_path / "slice.png"))
    volume = read_volume(tmp_path / "slice.png")
    assert volume.array.shape == (1, 3, 4) and np.allclose(volume.spacing, 1.0)
    assert any("no pixel spacing or orientation" in note for note in volume.metadata["notes"])


def test_four_d_volumes_are_refused_unless_one_volume(tmp_path):
    series = sitk.JoinSeries([sitk.Image(4, 5, 6, sitk.sitkInt16)] * 3)
    sitk.WriteImage(series, str(tmp_path / "fmri.nii.gz"))
    with pytest.raises(InputError, match=r"this is a 4D image \(3 volumes of 4×5×6, e.g. time points\)"):
        read_volume(tmp_path / "fmri.nii.gz")
    sitk.WriteImage(sitk.JoinSeries([sitk.Image(4, 5, 6, sitk.sitkInt16)]), str(tmp_path / "one.nii.gz"))
    assert read_volume(tmp_path / "one.nii.gz").array.shape == (6, 5, 4)


def test_colour_volumes_are_refused(tmp_path):
    rgb = sitk.Image([4, 5, 6], sitk.sitkVectorUInt8, 3)
    sitk.WriteImage(rgb, str(tmp_path / "rgb.nrrd"))
    with pytest.raises(InputError, match=r"holds 3 components per voxel \(a colour, vector or tensor image\)"):
        read_volume(tmp_path / "rgb.nrrd")


def test_empty_and_single_voxel_volumes_are_refused(tmp_path):
    write_mha(tmp_path / "empty.mha", (0, 5, 5))
    with pytest.raises(InputError, match=r"the volume is empty \(size 0×5×5 voxels\)"):
        read_volume(tmp_path / "empty.mha")
    header = bytearray(352)
    header[:4] = (348).to_bytes(4, "little")
    header[40:56] = np.array([3, 0, 5, 5, 1, 1, 1, 1], "<i2").tobytes()
    header[70:74] = np.array([4, 16], "<i2").tobytes()
    header[108:112] = np.array([352.0], "<f4").tobytes()
    header[344:348] = b"n+1\0"
    (tmp_path / "empty.nii").write_bytes(bytes(header))
    with pytest.raises(InputError, match=r"the volume is empty \(size 0×5×5 voxels\)"):
        read_volume(tmp_path / "empty.nii")
    write_mha(tmp_path / "one.mha", (1, 1, 1), b"\x07")
    with pytest.raises(InputError, match="the volume has a single voxel; there is no slice to reconstruct from"):
        read_volume(tmp_path / "one.mha")


def test_nan_and_infinite_voxels_are_refused(tmp_path):
    array = np.zeros((3, 4, 5), dtype=np.float32)
    array[1, 2, 3], array[2, 0, 0] = np.nan, np.inf
    write_volume(Volume(array, np.eye(4)), tmp_path / "nan.nrrd")
    with pytest.raises(InputError, match=r"holds 2 NaN or infinite voxel value\(s\) \(first at i,j,k = 3,2,1\)"):
        read_volume(tmp_path / "nan.nrrd")


def test_truncated_volume_files_are_refused(mricron_templates, tmp_path):
    data = (mricron_templates / "aal.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"the file is truncated or corrupt \(EOFError"):
        read_volume(tmp_path / "cut.nii.gz")
    with pytest.raises(InputError, match=r"the file is truncated or corrupt \(EOFError"):
        read_labelmap(tmp_path / "cut.nii.gz")
    volume = Volume(np.ones((6, 7, 8), dtype=np.int16), np.eye(4))
    sitk.WriteImage(sitk.GetImageFromArray(volume.array), str(tmp_path / "full.nii"))
    raw = (tmp_path / "full.nii").read_bytes()
    (tmp_path / "short.nii").write_bytes(raw[:-100])
    with pytest.raises(InputError, match=f"the file is truncated: its header announces {len(raw)} bytes, it holds "
                       f"{len(raw) - 100}"):
        read_volume(tmp_path / "short.nii")
    nrrd = write_volume(volume, tmp_path / "v.nrrd").read_bytes()
    (tmp_path / "short.nrrd").write_bytes(nrrd[:-20])
    with pytest.raises(InputError, match=r"cannot read volume \(the file may be truncated or corrupt\)"):
        read_volume(tmp_path / "short.nrrd")


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(InputError, match="volume file not found"):
        read_volume(tmp_path / "none.nii.gz")
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="unsupported file: not a DICOM file and not a volume format Wonder3DMed reads"):
        read_volume(tmp_path / "table.csv")
    with pytest.raises(InputError, match="picks a series in a DICOM folder, but the input is a file"):
        read_volume(tmp_path / "table.csv", series_uid="1.2.3")
