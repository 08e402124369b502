"""The metrics against analytic truth (and MONAI) on the cases of the design note, scaled to test size.

Truth comes from dense equal-area samples of the true surfaces with exact point-to-surface
distances (analytic_shapes.py). Grids are smaller than the benchmark's 256 x 256 x 160 (the
objects are cropped, not shrunk, where the tolerance allows) to keep the suite quick on two cores.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import trimesh

from analytic_shapes import Ellipsoid, Torus, grid_volume, mask_on, true_dice, truth_metrics
from Wonder3DMedLib.metrics import compare_surfaces, surface_from_labelmap

OBLIQUE = trimesh.transformations.rotation_matrix(0.6, [1.0, 2.0, 3.0])[:3, :3]


def compare_masks(prediction_mask, reference_mask, **options):
    return compare_surfaces(
        surface_from_labelmap(prediction_mask),
        surface_from_labelmap(reference_mask),
        reference_volume=reference_mask,
        prediction_volume=prediction_mask,
        **options,
    )


def monai_hd95_assd(prediction_mask, reference_mask) -> tuple[float, float]:
    """MONAI 1.6 on the same masks, with the spacing in array-axis (k, j, i) order."""
    pytest.importorskip("monai", reason="MONAI is the voxel baseline (pip install '.[test]')")
    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    spacing = tuple(float(s) for s in prediction_mask.spacing[::-1])  # MONAI takes no direction matrix
    p = torch.from_numpy(prediction_mask.array)[None, None]
    r = torch.from_numpy(reference_mask.array)[None, None]
    hd95 = compute_hausdorff_distance(p, r, percentile=95, spacing=spacing)
    assd = compute_average_surface_distance(p, r, symmetric=True, spacing=spacing)
    return float(hd95), float(assd)


def test_concentric_fine_meshes_are_exact():
    """Every true distance is 3 mm. The icospheres' faces sit at most 0.005 mm inside the
    spheres (chord sagitta of 1.1 mm edges), so each metric is within 0.02 mm of 3."""
    inner = trimesh.creation.icosphere(subdivisions=5, radius=30.0)
    outer = trimesh.creation.icosphere(subdivisions=5, radius=33.0)
    result = compare_surfaces(inner, outer, tolerances_mm=(1.0, 2.0, 2.9, 3.1))
    for value in (result.hausdorff_mm, result.hd95_mm, result.assd_mm, result.chamfer_mm,
                  result.mean_dist_pred_to_ref_mm, result.mean_dist_ref_to_pred_mm):
        assert value == pytest.approx(3.0, abs=0.02)
    assert result.surface_dice == {"1.0": 0.0, "2.0": 0.0, "2.9": 0.0, "3.1": 1.0}
    assert result.centroid_offset_mm < 1e-6
    # Dice of r 30 in r 33: 2 * 30^3 / (30^3 + 33^3), on the isotropic grid over both.
    assert result.dice == pytest.approx(2 * 30**3 / (30**3 + 33**3), abs=0.002)
    assert result.dice_grid["kind"] == "isotropic grid over both surfaces"


def test_closed_sphere_mesh_volume():
    """Within 0.5 % of 4/3 pi r^3: a fine icosphere (0.05 % low, inscribed), and the labelmap surface of a ball."""
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=30.0)
    result = compare_surfaces(mesh, mesh)
    assert result.volume_pred_mm3 == pytest.approx(4 / 3 * np.pi * 30**3, rel=0.005)
    grid = grid_volume((48, 80, 80), (0.9, 0.9, 1.5), centre=(0.2, 0.1, 0.3))
    surface = surface_from_labelmap(mask_on(grid, Ellipsoid((30, 30, 30))))
    assert surface.volume == pytest.approx(4 / 3 * np.pi * 30**3, rel=0.005)


CASES = {
    # The design note's case 2 (sphere 30 vs ellipsoid 36/30/24 shifted 3,0,2 at 0.9 x 0.9 x 1.5), cropped grid.
    "note case 2": (Ellipsoid((30, 30, 30)), Ellipsoid((36, 30, 24), (3, 0, 2)), (0.9, 0.9, 1.5), (60, 96, 96), None),
    "shifted sphere 0.8x0.8x1.3": (Ellipsoid((20, 20, 20)), Ellipsoid((20, 20, 20), (2.5, -1.5, 2)),
                                   (0.8, 0.8, 1.3), (50, 70, 70), None),
    "ellipsoid, oblique grid": (Ellipsoid((20, 20, 20)), Ellipsoid((24, 20, 16), (2, 0, 1.5)),
                                (0.8, 0.8, 1.3), (64, 64, 64), OBLIQUE),
}


@functools.lru_cache(maxsize=None)
def labelmap_case(name):
    """Masks, truth and our result for one case (shared by the truth and the MONAI tests)."""
    prediction, reference, spacing, shape, rotation = CASES[name]
    grid = grid_volume(shape, spacing, rotation=rotation, centre=(0.3, 0.2, 0.1))
    prediction_mask, reference_mask = mask_on(grid, prediction), mask_on(grid, reference)
    truth = truth_metrics(prediction, reference, samples=150_000)
    truth["dice"] = true_dice(prediction, reference)
    return prediction_mask, reference_mask, truth, compare_masks(prediction_mask, reference_mask)


@pytest.mark.parametrize("name", list(CASES))
def test_labelmaps_within_two_percent_of_truth(name):
    _, _, truth, ours = labelmap_case(name)
    assert ours.hd95_mm == pytest.approx(truth["hd95_mm"], rel=0.02)
    assert ours.assd_mm == pytest.approx(truth["assd_mm"], rel=0.02)
    # Surface Dice from smooth surfaces: within 0.01 of the truth (voxel edge sets are 0.05-0.1 off).
    for tau in ("1.0", "2.0"):
        assert ours.surface_dice[tau] == pytest.approx(truth["surface_dice"][tau], abs=0.01)
    # Volumetric Dice on the reference grid (voxel counts): within 0.005 of the exact overlap.
    assert ours.dice == pytest.approx(truth["dice"], abs=0.005)
    assert ours.dice_grid["kind"] == "reference labelmap grid"


@pytest.mark.filterwarnings("ignore::FutureWarning")  # MONAI 1.6's own deprecation notice
@pytest.mark.parametrize("name", list(CASES))
def test_labelmaps_closer_to_truth_than_monai(name):
    prediction_mask, reference_mask, truth, ours = labelmap_case(name)
    monai_hd95, monai_assd = monai_hd95_assd(prediction_mask, reference_mask)
    for value, monai, key in ((ours.hd95_mm, monai_hd95, "hd95_mm"), (ours.assd_mm, monai_assd, "assd_mm")):
        assert abs(value - truth[key]) < abs(monai - truth[key]), key


def test_volumetric_dice_of_meshes_and_of_a_mesh_on_a_labelmap_grid():
    sphere, ellipsoid = Ellipsoid((30, 30, 30)), Ellipsoid((36, 30, 24), (3, 0, 2))
    truth = true_dice(sphere, ellipsoid)
    meshes = compare_surfaces(sphere.mesh(5), ellipsoid.mesh(5))
    assert meshes.dice == pytest.approx(truth, abs=0.005)
    assert meshes.iou == pytest.approx(truth / (2 - truth), abs=0.005)
    grid = grid_volume((60, 96, 96), (0.9, 0.9, 1.5), rotation=OBLIQUE)
    reference = mask_on(grid, ellipsoid)
    on_grid = compare_surfaces(sphere.mesh(5), surface_from_labelmap(reference), reference_volume=reference)
    assert on_grid.dice == pytest.approx(truth, abs=0.005)
    assert on_grid.dice_grid["prediction"].startswith("prediction surface voxelised")


def test_metrics_do_not_depend_on_the_grid_orientation():
    """The same physical shapes on an axis-aligned and on a rotated 0.8 x 0.8 x 1.3 grid give the same
    metrics to within what the grids resolve (surfaces differ by ~0.07 mm on average)."""
    prediction, reference = Ellipsoid((20, 20, 20), (0.5, 0, 0)), Ellipsoid((24, 20, 16), (2, 0, 1.5))
    results = []
    for rotation in (None, OBLIQUE):
        grid = grid_volume((64, 64, 64), (0.8, 0.8, 1.3), rotation=rotation, centre=(0.3, 0.2, 0.1))
        results.append(compare_masks(mask_on(grid, prediction), mask_on(grid, reference)))
    a, b = results
    assert a.hd95_mm == pytest.approx(b.hd95_mm, abs=0.1)
    assert a.hausdorff_mm == pytest.approx(b.hausdorff_mm, abs=0.15)
    for key in ("assd_mm", "chamfer_mm", "mean_dist_pred_to_ref_mm", "mean_dist_ref_to_pred_mm"):
        assert getattr(a, key) == pytest.approx(getattr(b, key), abs=0.03), key
    for tau in a.surface_dice:
        assert a.surface_dice[tau] == pytest.approx(b.surface_dice[tau], abs=0.01)
    assert a.volume_pred_mm3 == pytest.approx(b.volume_pred_mm3, rel=0.005)
    assert a.volume_ref_mm3 == pytest.approx(b.volume_ref_mm3, rel=0.005)
    assert a.dice == pytest.approx(b.dice, abs=0.003)
    assert a.centroid_offset_mm == pytest.approx(b.centroid_offset_mm, abs=0.03)


def test_mesh_against_labelmap_of_a_torus():
    """A shape with saddle regions, mesh vs oblique labelmap: within 0.05 mm of the truth on
    HD95 and ASSD (the labelmap surface is ~0.1 mm from the true torus on average)."""
    prediction, reference = Torus(17, 7, (1.0, 0.5, 1.0)), Torus(18, 6)
    grid = grid_volume((64, 64, 64), (0.8, 0.8, 1.3), rotation=OBLIQUE)
    reference_mask = mask_on(grid, reference)
    result = compare_surfaces(prediction.mesh(256), surface_from_labelmap(reference_mask),
                              reference_volume=reference_mask)
    truth = truth_metrics(prediction, reference, samples=150_000)
    assert result.hd95_mm == pytest.approx(truth["hd95_mm"], abs=0.05)
    assert result.assd_mm == pytest.approx(truth["assd_mm"], abs=0.05)
    assert result.dice == pytest.approx(true_dice(prediction, reference), abs=0.01)


def test_identical_inputs_give_zeros():
    mesh = Ellipsoid((12, 9, 7), (1, 2, 3)).mesh(4)
    result = compare_surfaces(mesh, mesh.copy())
    for key in ("hausdorff_mm", "hd95_mm", "assd_mm", "chamfer_mm", "centroid_offset_mm", "volume_diff_rel"):
        assert abs(getattr(result, key)) < 1e-9, key
    assert result.surface_dice == {"1.0": 1.0, "2.0": 1.0}
    assert result.dice == 1.0 and result.iou == 1.0
    assert np.abs(result.signed_distance_pred_mm).max() < 1e-9
    grid = grid_volume((40, 40, 40), (0.8, 0.8, 1.3), rotation=OBLIQUE)
    mask = mask_on(grid, Ellipsoid((10, 8, 7)))
    same = compare_masks(mask, mask)
    assert same.hausdorff_mm < 1e-9 and same.dice == 1.0


@pytest.mark.parametrize("offset_mm", [15.0, 21.0, 30.0])
def test_similarity_alignment_does_not_shrink_a_distant_surface_onto_the_reference(offset_mm):
    """Two identical 10 mm spheres apart: a one-sided ICP shrinks the moving one to a dot on the other."""
    reference = trimesh.creation.icosphere(subdivisions=4, radius=10.0)
    prediction = reference.copy()
    prediction.apply_translation([offset_mm, 0.0, 0.0])
    result = compare_surfaces(prediction, reference, align="similarity")
    assert result.alignment["scale"] == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(result.alignment["translation_mm"], [-offset_mm, 0.0, 0.0], atol=0.02)
    assert result.aligned.hausdorff_mm < 0.05 and result.aligned.dice > 0.99


def test_rigid_alignment_recovers_a_known_motion():
    ellipsoid = Ellipsoid((20, 14, 9))
    reference = ellipsoid.mesh(4)
    motion = trimesh.transformations.rotation_matrix(np.radians(6.0), [0.2, 1.0, 0.3])
    motion[:3, 3] = [2.0, -1.5, 3.0]
    prediction = reference.copy()
    prediction.apply_transform(motion)
    result = compare_surfaces(prediction, reference, align="rigid")
    assert result.assd_mm > 1.0, "the unaligned metrics measure the displacement"
    assert result.aligned.assd_mm < 0.01 and result.aligned.hausdorff_mm < 0.05
    np.testing.assert_allclose(result.alignment["matrix_ras"] @ motion, np.eye(4), atol=2e-3)
    assert result.alignment["rotation_deg"] == pytest.approx(6.0, abs=0.05)
    similar = compare_surfaces(prediction.copy().apply_scale(1.1), reference, align="similarity")
    assert similar.alignment["scale"] == pytest.approx(1 / 1.1, rel=1e-3)
