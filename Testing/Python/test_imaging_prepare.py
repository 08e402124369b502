"""``wonder3dmed prepare`` end to end on real MRI: what it writes lands back on the anatomy; bad input writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from scipy.ndimage import map_coordinates

from imaging_data import oblique_volume, write_dicom_series
from Wonder3DMedLib.cli import main
from Wonder3DMedLib.imaging.io import Volume, read_volume


def run_prepare(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["prepare", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def label_cross_section(aal: Path, axis: str, index: int, value: int) -> tuple[np.ndarray, np.ndarray]:
    """RAS of every voxel centre on the grid slice and whether it holds the label (read with SimpleITK here)."""
    image = sitk.ReadImage(str(aal))
    labels = sitk.GetArrayFromImage(image)  # [k, j, i]
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = np.array(image.GetDirection()).reshape(3, 3) * image.GetSpacing()
    ijk_to_lps[:3, 3] = image.GetOrigin()
    ijk_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ijk_to_lps
    grid = {"sagittal": 0, "coronal": 1, "axial": 2}[axis]  # Colin27 is stored RAS: i→R, j→A, k→S
    plane = np.take(labels, index, axis=2 - grid) == value
    others = [a for a in range(3) if a != grid]
    rows, cols = np.meshgrid(np.arange(plane.shape[0]), np.arange(plane.shape[1]), indexing="ij")
    ijk = np.zeros((plane.size, 4))
    ijk[:, others[1]], ijk[:, others[0]], ijk[:, grid], ijk[:, 3] = rows.ravel(), cols.ravel(), index, 1.0
    return (ijk @ ijk_to_ras.T)[:, :3], plane.ravel()


@pytest.mark.parametrize(
    "axis,index,label,value",
    [("axial", 78, "Thalamus_L", 77), ("coronal", 139, "Caudate_R", 72), ("sagittal", 65, "Putamen_L", 73),
     ("axial", 59, "37", 37)],
)
def test_alpha_mapped_back_through_frame_json_covers_the_label(mricron_templates, tmp_path, capsys, axis, index, label,
                                                               value):
    """On Colin27 with the AAL atlas, input.png's alpha lands on the label's cross-section (IoU ≥ 0.98)."""
    out = tmp_path / "out"
    code, stdout, _ = run_prepare(capsys, mricron_templates / "ch2.nii.gz", "--slice", f"{axis}:{index}",
                                  "--mask", f"{mricron_templates / 'aal.nii.gz'}:{label}", "--out", out)
    assert code == 0
    frame = json.loads((out / "frame.json").read_text())
    ras, truth = label_cross_section(mricron_templates / "aal.nii.gz", axis, index, value)
    model = np.column_stack([ras, np.ones(len(ras))]) @ np.linalg.inv(np.array(frame["model_to_ras"])).T
    assert np.abs(model[:, 2]).max() < 1e-6, "the slice plane is w = 0 of the model frame"
    alpha = np.array(Image.open(out / "input.png"))[:, :, 3] / 255.0
    covered = map_coordinates(alpha, [model[:, 1], model[:, 0]], order=1, cval=0.0) > 0.5
    iou = (covered & truth).sum() / (covered | truth).sum()
    assert iou >= 0.98, f"IoU {iou:.4f}"
    assert f"{axis} -> grid axis" in stdout and f"index {index}" in stdout and "mm per model pixel" in stdout
    assert "window: center" in stdout and f"({label if not label.isdigit() else 'Hippocampus_L'})" in stdout


def test_slice_by_ras_point_is_the_nearest_grid_slice(mricron_templates, tmp_path, capsys):
    """``--slice AXIS@R,A,S`` frames the same slice as the grid index through that point."""
    volume = read_volume(mricron_templates / "ch2.nii.gz")
    point = volume.ijk_to_ras_points([[90.0, 100.0, 78.3]])[0]  # 0.3 voxel above axial slice 78
    label = f"{mricron_templates / 'aal.nii.gz'}:77"
    frames = []
    for spec in (f"axial@{point[0]},{point[1]},{point[2]}", "axial:78"):
        out = tmp_path / spec.replace("@", "_at_").replace(":", "_")
        code, stdout, _ = run_prepare(capsys, mricron_templates / "ch2.nii.gz", "--slice", spec, "--mask", label,
                                      "--out", out)
        assert code == 0 and "index 78" in stdout
        frames.append(json.loads((out / "frame.json").read_text()))
    assert frames[0]["slice_index"] == 78 and np.allclose(frames[0]["model_to_ras"], frames[1]["model_to_ras"])
    outside = f"axial@{point[0]},{point[1]},{point[2] + 500}"
    code, _, stderr = run_prepare(capsys, mricron_templates / "ch2.nii.gz", "--slice", outside, "--mask", label,
                                  "--out", tmp_path / "outside")
    assert code == 2 and "is outside the volume along grid axis k" in stderr and not (tmp_path / "outside").exists()


def test_outputs_are_the_three_files_as_described(mricron_templates, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = run_prepare(capsys, mricron_templates / "ch2.nii.gz", "--slice", "axial:78", "--mask",
                                  f"{mricron_templates / 'aal.nii.gz'}:77", "--window", "40,120", "--out", out)
    assert code == 0 and sorted(p.name for p in out.iterdir()) == ["frame.json", "input.png", "slice_preview.png"]
    framed = Image.open(out / "input.png")
    assert (framed.mode, framed.size) == ("RGBA", (256, 256)) and not framed.text
    preview = np.array(Image.open(out / "slice_preview.png"))
    assert preview.shape == (217, 181, 3)
    red = np.all(preview == [255, 40, 40], axis=2)
    assert 30 < red.sum() < 200, "the outline of the thalamus"
    frame = json.loads((out / "frame.json").read_text())
    assert frame["details"]["window"] == {"center": 40.0, "width": 120.0, "source": "manual", "function": "LINEAR_EXACT"}
    assert frame["details"]["mask"] == "label 77 (Thalamus_L) of the labelmap"
    assert "ch2" not in json.dumps(frame) and str(tmp_path) not in json.dumps(frame)
    assert "window: center 40, width 120 (manual)" in stdout and "Not for diagnosis" in stdout


def test_existing_outputs_are_kept_unless_overwrite(mricron_templates, tmp_path, capsys):
    arguments = [mricron_templates / "ch2.nii.gz", "--slice", "axial:78", "--auto-mask", "--out", tmp_path]
    assert run_prepare(capsys, *arguments)[0] == 0
    before = (tmp_path / "input.png").read_bytes()
    code, _, stderr = run_prepare(capsys, *arguments[:-2], "--window", "bone", "--out", tmp_path)
    assert code == 2 and "input.png, frame.json, slice_preview.png already exist" in stderr and "--overwrite" in stderr
    assert (tmp_path / "input.png").read_bytes() == before
    assert run_prepare(capsys, *arguments, "--overwrite", "--window", "10,20")[0] == 0
    assert (tmp_path / "input.png").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.json", "input.png", "slice_preview.png"]


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--slice", "axial:181", "--auto-mask"], r"slice index 181 is out of range for axial \(grid axis k\): valid "
                                                   r"indices are 0 to 180"),
        (["--slice", "axial:78", "--mask", "{aal}:Amygdala_X"], r"no label named 'Amygdala_X'"),
        (["--slice", "axial:78", "--mask", "{aal}:200"], r"label 200 is not in the labelmap; labels present: 1 "
                                                         r"\(Precentral_L\)"),
        (["--slice", "axial:150", "--mask", "{aal}:37"], r"has no voxel on this slice \(axial index 150\)"),
        (["--slice", "axial:78"], r"say what the object is: --mask FILE\[:LABEL\], --auto-mask or --roi"),
        (["--slice", "axial:78", "--roi", "5,5,400,9"], r"is not inside the slice: columns run 0 to 180"),
        (["--slice", "axial:78", "--threshold", "3", "--roi", "1,1,9,9"], r"--threshold goes with --auto-mask"),
        (["--slice", "axial:78", "--auto-mask", "--window", "hot"], r"--window 'hot' is neither a preset"),
        (["--slice", "axial:3", "--auto-mask", "--threshold", "400"], r"no pixel is above the threshold 400"),
    ],
)
def test_bad_requests_exit_2_and_write_nothing(mricron_templates, tmp_path, capsys, extra, message):
    import re

    extra = [e.format(aal=mricron_templates / "aal.nii.gz") for e in extra]
    out = tmp_path / "never"
    code, _, stderr = run_prepare(capsys, mricron_templates / "ch2.nii.gz", *extra, "--out", out)
    assert code == 2 and re.search(message, stderr), stderr
    assert not out.exists()


def test_mask_file_that_does_not_overlap_via_the_cli(mricron_templates, tmp_path, capsys):
    image = sitk.ReadImage(str(mricron_templates / "aal.nii.gz"))
    image.SetOrigin((500.0, 500.0, 500.0))
    sitk.WriteImage(image, str(tmp_path / "moved.nii.gz"))
    code, _, stderr = run_prepare(capsys, mricron_templates / "ch2.nii.gz", "--slice", "axial:78", "--mask",
                                  f"{tmp_path / 'moved.nii.gz'}:77", "--out", tmp_path / "out")
    assert code == 2 and "the mask file does not overlap the slice" in stderr and not (tmp_path / "out").exists()


def test_roi_alone_and_auto_mask_inside_roi(mricron_templates, tmp_path, capsys):
    code, stdout, _ = run_prepare(capsys, mricron_templates / "ch2bet.nii.gz", "--slice", "k:90", "--roi", "10,20,60,50",
                                  "--out", tmp_path / "box")
    assert code == 0 and "mask:   box columns 10–60, rows 20–50; 1581 pixels" in stdout
    code, stdout, _ = run_prepare(capsys, mricron_templates / "ch2bet.nii.gz", "--slice", "k:90", "--auto-mask",
                                  "--roi", "60,60,120,120", "--out", tmp_path / "auto")
    assert code == 0 and "inside box columns 60–120, rows 60–120" in stdout


def test_dicom_series_from_real_mri_in_several_series_folder(itk_example_data, tmp_path, capsys):
    """An oblique anisotropic DICOM series (shuffled files) next to another series; nothing identifying is written."""
    t1 = read_volume(itk_example_data / "KmeansTest_T1UCharRaw.nii.gz")
    volume = oblique_volume(t1.array.astype(np.int16), spacing=(1.1, 0.9, 2.5), permute=True)
    uid = "1.2.826.0.1.3680043.8.498.60"
    write_dicom_series(volume, tmp_path / "dicom" / "t1", series_uid=uid, description="T1 obl", window=(90, 180))
    write_dicom_series(Volume(volume.array[:5], volume.ijk_to_ras), tmp_path / "dicom" / "other",
                       series_uid="1.2.826.0.1.3680043.8.498.61", description="scout")
    code, _, stderr = run_prepare(capsys, tmp_path / "dicom", "--slice", "coronal:30", "--auto-mask", "--out",
                                  tmp_path / "out")
    assert code == 2 and "holds 2 image series; say which one with --series UID" in stderr and uid in stderr
    code, stdout, _ = run_prepare(capsys, tmp_path / "dicom", "--series", uid, "--slice", "coronal:30", "--auto-mask",
                                  "--out", tmp_path / "out")
    assert code == 0, stdout
    assert "(DICOM MR, 128×128×62 voxels of 1.1×0.9×2.5 mm)" in stdout and "window: center 90, width 180 (DICOM)" in stdout
    assert "resampled to square 0.9 mm pixels" in stdout
    text = (tmp_path / "out" / "frame.json").read_text()
    assert "Doe" not in text and "PATIENT-ID-123" not in text and uid not in text and str(tmp_path) not in text
    frame = json.loads(text)
    assert np.allclose(frame["ijk_to_ras"], volume.ijk_to_ras, atol=1e-6)
