"""``wonder3dmed compare`` end to end on files: reports, the distance mesh, clear errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from analytic_shapes import Ellipsoid, grid_volume, mask_on
from Wonder3DMedLib import NOT_FOR_DIAGNOSIS
from Wonder3DMedLib.cli import main
from Wonder3DMedLib.imaging.io import Volume, write_volume
from Wonder3DMedLib.mesh_io import read_mesh, write_mesh


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    grid = grid_volume((40, 48, 48), (0.9, 0.9, 1.4), centre=(10.0, -20.0, 5.0))
    labels = mask_on(grid, Ellipsoid((14, 11, 9), (11, -20, 5))).array.astype(np.uint8) * 5
    labels[mask_on(grid, Ellipsoid((4, 4, 4), (0, -32, 5))).array] = 2
    write_volume(Volume(labels, grid.ijk_to_ras), folder / "seg.nii.gz")
    (folder / "seg.txt").write_text("2 Small\n5 Organ\n")
    prediction = Ellipsoid((13, 12, 9), (10, -20, 5.5)).mesh(4)
    write_mesh(prediction, folder / "pred.ply", space="LPS")
    prediction.export(folder / "untagged.stl")
    metres = prediction.copy()
    metres.apply_scale(0.001)
    write_mesh(metres, folder / "metres.stl")
    return folder


def test_compare_mesh_with_labelmap_writes_reports_and_distance_mesh(files, tmp_path, capsys):
    code = main(["compare", str(files / "pred.ply"), f"{files / 'seg.nii.gz'}:Organ", "--tolerance", "1", "2", "3",
                 "--align", "--out", str(tmp_path / "r.json"), "--distance-mesh", str(tmp_path / "d.ply")])
    out = capsys.readouterr().out
    assert code == 0
    assert "HD95" in out and "surface Dice @ 3.0 mm" in out and "aligned" in out and NOT_FOR_DIAGNOSIS in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["inputs"]["reference"]["label"] == "label 5 (Organ)"
    assert report["inputs"]["prediction"]["file"] == "pred.ply" and report["inputs"]["prediction"]["space_in_file"] == "LPS"
    assert report["dice_grid"]["kind"] == "reference labelmap grid"
    assert 0.7 < report["dice"] < 1 and 0 < report["hd95_mm"] < 5 and set(report["surface_dice"]) == {"1.0", "2.0", "3.0"}
    assert report["aligned"]["assd_mm"] <= report["assd_mm"]
    mesh = read_mesh(tmp_path / "d.ply")
    assert mesh.space_tagged and len(mesh.mesh.vertices) == 2562
    header = (tmp_path / "d.ply").read_bytes().split(b"end_header")[0]
    assert b"property float signed_distance_mm" in header and b"property uchar red" in header
    assert str(files) not in (tmp_path / "r.json").read_text(), "only file names, never folders, go into reports"


def test_compare_two_labels_writes_csv_and_vtk(files, tmp_path, capsys):
    code = main(["compare", f"{files / 'seg.nii.gz'}:2", f"{files / 'seg.nii.gz'}:5", "--out", str(tmp_path / "r.csv"),
                 "--distance-mesh", str(tmp_path / "d.vtk")])
    assert code == 0
    row = next(csv.DictReader((tmp_path / "r.csv").open()))
    assert row["prediction"] == "seg.nii.gz [label 2 (Small)]" and float(row["hausdorff_mm"]) > 5
    assert b"signed_distance_mm" in (tmp_path / "d.vtk").read_bytes()


def test_untagged_mesh_is_read_as_lps_with_a_warning(files, tmp_path, capsys):
    assert main(["compare", str(files / "untagged.stl"), f"{files / 'seg.nii.gz'}:5", "--out", str(tmp_path / "r.json")]) == 0
    assert "no SPACE= tag" in capsys.readouterr().err


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["{f}/pred.ply", "{f}/seg.nii.gz:Liver", "--out", "{t}/r.json"], "labels present: 2 (Small), 5 (Organ)"),
        (["{f}/pred.ply", "{f}/seg.nii.gz", "--out", "{t}/r.json"], "holds 2 labels"),
        (["{f}/metres.stl", "{f}/seg.nii.gz:5", "--out", "{t}/r.json"], "different units"),
        (["{f}/pred.ply", "{f}/seg.nii.gz:5", "--out", "{t}/r.txt"], "must end in .json or .csv"),
        (["{f}/pred.ply", "{f}/seg.nii.gz:5", "--out", "{t}/r.json", "--distance-mesh", "{t}/d.stl"], "per-vertex"),
        (["{f}/pred.ply", "{f}/seg.nii.gz:5", "--out", "{t}/r.json", "--align-scale"], "only makes sense with --align"),
        (["{f}/missing.ply", "{f}/seg.nii.gz:5", "--out", "{t}/r.json"], "not found"),
        (["{f}/pred.ply", "{f}/seg.nii.gz:5", "--out", "{f}/pred.ply"], "must end in"),
        (["{f}/pred.ply", "{f}/seg.nii.gz:5", "--out", "{t}/r.json", "--smoothing", "-1"], "between 0 and 10"),
        (["{f}/pred.ply", "{f}/seg.nii.gz:5", "--out", "{t}/r.json", "--tolerance", "nan"], ">= 0 mm"),
    ],
)
def test_bad_input_gets_a_clear_error(files, tmp_path, capsys, arguments, message):
    arguments = [a.format(f=files, t=tmp_path) for a in arguments]
    assert main(["compare", *arguments]) == 2
    assert message in capsys.readouterr().err


def test_existing_outputs_are_kept_unless_overwrite(files, tmp_path, capsys):
    out = tmp_path / "r.json"
    out.write_text("keep me")
    arguments = ["compare", str(files / "pred.ply"), f"{files / 'seg.nii.gz'}:5", "--out", str(out)]
    assert main(arguments) == 2
    assert out.read_text() == "keep me" and "--overwrite" in capsys.readouterr().err
    assert main([*arguments, "--overwrite"]) == 0
    assert json.loads(out.read_text())["hd95_mm"] > 0


def test_metrics_import_without_torch():
    """The metrics run in Slicer's own Python: no torch, diffusers or Slicer at import."""
    import subprocess
    import sys

    from conftest import REPO_ROOT

    code = ("import sys, Wonder3DMedLib.metrics, Wonder3DMedLib.cli.compare\n"
            "print(','.join(m for m in ('torch', 'diffusers', 'slicer', 'qt', 'monai') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
