"""Edge cases defined, not crashed; the report's keys, definitions, strict JSON and CSV."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import trimesh

from analytic_shapes import Ellipsoid, grid_volume, mask_on
from Wonder3DMedLib.errors import InputError, OutputError
from Wonder3DMedLib.metrics import DEFINITIONS, METRIC_KEYS, compare_surfaces, format_table, write_report
from Wonder3DMedLib.metrics.report import json_safe
from Wonder3DMedLib.metrics.surface import weighted_quantile

ISSUE_KEYS = {
    "hausdorff_mm", "hd95_mm", "assd_mm", "mean_dist_pred_to_ref_mm", "mean_dist_ref_to_pred_mm", "chamfer_mm",
    "surface_dice", "volume_pred_mm3", "volume_ref_mm3", "volume_diff_rel", "dice", "iou", "centroid_offset_mm",
}


@pytest.fixture(scope="module")
def pair():
    return Ellipsoid((10, 8, 6)).mesh(4), Ellipsoid((11, 8, 5), (1, 0, 0.5)).mesh(4)


@pytest.fixture(scope="module")
def result(pair):
    return compare_surfaces(*pair, tolerances_mm=(0.5, 1, 2), align="rigid",
                            inputs={"prediction": {"file": "pred.ply", "kind": "mesh"},
                                    "reference": {"file": "seg.nii.gz", "kind": "labelmap", "label": "label 3 (x)"}})


def test_report_has_the_issue_keys_with_definitions(result, tmp_path):
    assert set(METRIC_KEYS) == ISSUE_KEYS
    path = write_report(result, tmp_path / "report.json")
    report = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"non-standard JSON {name}"))
    assert ISSUE_KEYS <= set(report)
    assert set(report["surface_dice"]) == {"0.5", "1.0", "2.0"}
    assert ISSUE_KEYS <= set(report["definitions"])
    assert report["units"] == {"length": "mm", "area": "mm2", "volume": "mm3", "frame": "RAS"}
    assert report["inputs"]["reference"]["label"] == "label 3 (x)"
    assert "diagnosis" in report["notice"]
    assert ISSUE_KEYS <= set(report["aligned"]) and report["alignment"]["mode"] == "rigid"
    assert report["dice_grid"]["kind"] == "isotropic grid over both surfaces"
    for key in ("hd95_pred_to_ref_mm", "hd95_ref_to_pred_mm", "hd95_mean_of_directions_mm"):
        assert math.isfinite(report["directed"][key])


def test_csv_is_one_row_with_the_same_numbers(result, tmp_path):
    path = write_report(result, tmp_path / "report.csv")
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 1
    row = rows[0]
    assert float(row["hd95_mm"]) == pytest.approx(result.hd95_mm)
    assert float(row["surface_dice_1.0"]) == pytest.approx(result.surface_dice["1.0"])
    assert float(row["aligned_assd_mm"]) == pytest.approx(result.aligned.assd_mm)
    assert row["prediction"] == "pred.ply" and row["reference"] == "seg.nii.gz [label 3 (x)]"
    with pytest.raises(OutputError, match="json or .csv"):
        write_report(result, tmp_path / "report.txt")


def test_table_lists_every_metric(result):
    table = format_table(result)
    for text in ("Hausdorff", "HD95", "ASSD", "Chamfer", "surface Dice @ 1.0 mm", "Dice", "IoU", "centroid", "aligned"):
        assert text in table


@pytest.mark.parametrize("empty_side", ["prediction", "reference", "both"])
def test_empty_inputs_have_documented_values_and_flags(pair, empty_side, tmp_path):
    empty = trimesh.Trimesh()
    prediction = empty if empty_side in ("prediction", "both") else pair[0]
    reference = empty if empty_side in ("reference", "both") else pair[1]
    result = compare_surfaces(prediction, reference)
    assert result.flags["empty_prediction"] == (empty_side != "reference")
    assert result.flags["empty_reference"] == (empty_side != "prediction")
    if empty_side == "both":
        assert all(math.isnan(getattr(result, k)) for k in ("hausdorff_mm", "hd95_mm", "assd_mm", "dice", "iou"))
        assert all(math.isnan(v) for v in result.surface_dice.values())
        assert result.volume_pred_mm3 == result.volume_ref_mm3 == 0.0
    else:
        assert all(math.isinf(getattr(result, k)) for k in ("hausdorff_mm", "hd95_mm", "assd_mm", "chamfer_mm"))
        assert result.surface_dice == {"1.0": 0.0, "2.0": 0.0}
        assert result.dice == 0.0 and result.iou == 0.0
        assert result.volume_diff_rel == (-1.0 if empty_side == "prediction" else math.inf)
        # the other side's volume is still reported, consistent with the relative difference
        other = pair[1] if empty_side == "prediction" else pair[0]
        shown = result.volume_ref_mm3 if empty_side == "prediction" else result.volume_pred_mm3
        assert shown == pytest.approx(abs(other.volume), rel=1e-6)
    assert math.isnan(result.centroid_offset_mm)
    report = json.loads(write_report(result, tmp_path / "r.json").read_text())
    expected = None if empty_side == "both" else "inf"
    assert report["hausdorff_mm"] == expected and report["centroid_offset_mm"] is None


def test_empty_label_of_a_labelmap_reference():
    grid = grid_volume((20, 20, 20), (1, 1, 1))
    from Wonder3DMedLib.metrics import surface_from_labelmap

    result = compare_surfaces(Ellipsoid((5, 5, 5)).mesh(3), surface_from_labelmap(grid), reference_volume=grid)
    assert result.flags["empty_reference"] and math.isinf(result.hd95_mm)


def test_open_mesh_keeps_distances_and_drops_volumes(pair):
    closed = pair[0]
    open_mesh = closed.copy()
    open_mesh.update_faces(open_mesh.face_normals[:, 2] < 0.9)  # cut off the top cap
    result = compare_surfaces(open_mesh, pair[1])
    assert not result.flags["prediction_closed"]
    assert math.isfinite(result.hd95_mm) and math.isfinite(result.assd_mm)
    assert math.isnan(result.volume_pred_mm3) and math.isnan(result.dice) and math.isnan(result.volume_diff_rel)
    assert result.directed["centroid_kind"] == "surface"
    assert any("not closed" in w for w in result.warnings)
    assert "unavailable" in result.dice_grid["kind"]


def test_inward_and_inconsistently_wound_meshes_are_fixed_on_a_copy(pair):
    inward = pair[0].copy()
    inward.invert()
    mixed = pair[0].copy()
    mixed.faces[::7] = mixed.faces[::7, ::-1]
    reference = compare_surfaces(pair[0], pair[1])
    for variant in (inward, mixed):
        faces = variant.faces.copy()
        result = compare_surfaces(variant, pair[1])
        assert result.volume_pred_mm3 == pytest.approx(reference.volume_pred_mm3)
        assert result.dice == pytest.approx(reference.dice)
        np.testing.assert_array_equal(variant.faces, faces)
    assert any("re-wound" in w for w in compare_surfaces(mixed, pair[1]).warnings)


def test_different_units_are_refused_with_a_hint(pair):
    in_metres = pair[0].copy()
    in_metres.apply_scale(0.001)
    with pytest.raises(InputError, match="different units") as error:
        compare_surfaces(in_metres, pair[1])
    assert "metres" in error.value.hint


def test_surfaces_that_do_not_overlap_are_measured_with_a_warning(pair):
    far = pair[0].copy()
    far.apply_translation([200, 0, 0])
    result = compare_surfaces(far, pair[1])
    assert result.hausdorff_mm > 180 and any("do not overlap" in w for w in result.warnings)


def test_bad_arguments_are_refused(pair):
    with pytest.raises(ValueError, match="tolerances_mm"):
        compare_surfaces(*pair, tolerances_mm=())
    with pytest.raises(ValueError, match="align"):
        compare_surfaces(*pair, align="affine")


def test_inputs_are_not_modified(pair):
    before = [m.vertices.copy() for m in pair]
    compare_surfaces(*pair, align="similarity")
    for mesh, vertices in zip(pair, before):
        np.testing.assert_array_equal(mesh.vertices, vertices)


def test_signed_distances_per_prediction_vertex(pair):
    result = compare_surfaces(*pair)
    prediction, _ = pair
    assert result.signed_distance_pred_mm.shape == (len(prediction.vertices),)
    inside = Ellipsoid((11, 8, 5), (1, 0, 0.5)).inside(prediction.vertices)
    # Away from the faces' 0.02 mm sagitta, where the mesh and the true ellipsoid disagree.
    clear = np.abs(result.signed_distance_pred_mm) > 0.05
    assert np.all((result.signed_distance_pred_mm < 0)[clear] == inside[clear])


def test_weighted_quantile_and_json_safety():
    assert weighted_quantile([1, 2, 3, 4], [1, 1, 1, 1], 0.5) == 2
    assert weighted_quantile([1, 2, 3, 4], [1, 1, 1, 7], 0.5) == 4
    assert weighted_quantile([5.0], [2.0], 0.95) == 5.0
    assert math.isnan(weighted_quantile([], [], 0.95))
    assert json_safe({"a": float("nan"), "b": [float("inf"), -np.inf], "c": np.float32(1.5), "d": np.bool_(True)}) == {
        "a": None, "b": ["inf", "-inf"], "c": 1.5, "d": True}
    assert all(isinstance(text, str) and len(text) > 20 for text in DEFINITIONS.values())
