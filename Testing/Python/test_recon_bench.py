"""The benchmark's own helpers: reference shapes, perturbed views, the hull baseline, the table."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_recon import floor_case, format_markdown, format_table, main, measure
from benchmarks.recon_cases import perturb_views, reference_shape, visual_hull_mesh
from benchmarks.recon_metrics import surface_scores
from Wonder3DMedLib.reconstruction.render import render_views


@pytest.fixture(scope="module")
def sphere_case():
    mesh = reference_shape("sphere")
    return mesh, render_views(mesh, size=96)


def test_perturbations_leave_the_input_alone_and_do_what_they_say(sphere_case):
    _, views = sphere_case
    before = views.normals.copy(), views.masks.copy()
    noisy = perturb_views(views, noise=0.15, seed=1)
    grown, shrunk = perturb_views(views, mask_px=1), perturb_views(views, mask_px=-1)
    assert np.array_equal(views.normals, before[0]) and np.array_equal(views.masks, before[1])
    error = noisy.decoded_normals()[views.masks] - views.decoded_normals()[views.masks]
    assert 0.1 < error.std() < 0.2, "σ 0.15 per component, renormalised"
    ring = grown.masks & ~views.masks
    assert ring.any() and (grown.masks | views.masks).sum() == grown.masks.sum()
    assert np.all(np.abs(np.linalg.norm(grown.decoded_normals()[ring], axis=-1) - 1) < 0.02), "ring gets real normals"
    assert shrunk.masks.sum() < views.masks.sum() and not (shrunk.masks & ~views.masks).any()


def test_the_hull_of_a_sphere_is_the_octagonal_prism_predicted(sphere_case):
    """Six views see four directions: every horizontal slice of the hull is a regular octagon."""
    mesh, views = sphere_case
    scores = surface_scores(visual_hull_mesh(views, resolution=96), mesh, samples=30_000)
    assert scores.watertight
    assert scores.iou == pytest.approx(np.pi / (8 * np.tan(np.pi / 8)), abs=0.02)


def test_shape_names():
    assert reference_shape("torus").is_watertight
    with pytest.raises(ValueError, match="unknown shape"):
        reference_shape("liver")
    with pytest.raises(ValueError, match="orientation"):
        reference_shape("thalamus_l@oblique")
    with pytest.raises(ValueError, match="surface"):
        reference_shape("thalamus_l~rough")


def test_atlas_surfaces_and_orientations(mricron_templates):
    """Staircase, smoothed and oracle surfaces of one label; sagittal turns the same surface."""
    atlas = mricron_templates / "aal.nii.gz"
    smooth, staircase, oracle = (reference_shape(f"caudate_l{kind}", atlas_path=atlas) for kind in ("", "~staircase", "~oracle"))
    assert all(mesh.is_watertight for mesh in (smooth, staircase, oracle))
    assert all(mesh.volume > 0 for mesh in (smooth, staircase, oracle)), "outward winding, like the product's surfaces"
    assert staircase.area > 1.1 * smooth.area, "voxel steps add area"
    def lattice_share(mesh):  # faces whose normal is a voxel-lattice direction (axis, face or body diagonal)
        largest = np.abs(mesh.face_normals).max(axis=1)
        return np.mean(np.isclose(largest[:, None], [1.0, 0.5**0.5, 3**-0.5], atol=1e-3).any(axis=1))

    assert lattice_share(staircase) > 0.9 and lattice_share(smooth) < 0.2
    sagittal = reference_shape("caudate_l@sagittal", atlas_path=atlas)
    # coronal (x = left, y = superior, z = anterior) -> sagittal (x = posterior, y = superior, z = left),
    # each framed to its own front silhouette, so compare proportions
    coronal_shape, sagittal_shape = smooth.extents / smooth.extents[1], sagittal.extents / sagittal.extents[1]
    assert sagittal_shape == pytest.approx(coronal_shape[[2, 1, 0]], rel=1e-3)


def test_table_gives_ratios_against_the_hull_of_the_same_views():
    common = {"shape": "s", "views": "clean", "cd_over_side": 0.0, "f_score": 1.0, "watertight": True,
              "components": 1, "seconds": 1.0, "cpu_seconds": 1.0}
    rows = [{**common, "method": "hull", "cd_over_diag": 0.01, "iou": 0.9},
            {**common, "method": "fast", "cd_over_diag": 0.002, "iou": 0.98}]
    last = format_table(rows).splitlines()[-1].split()
    assert last[-2:] == ["0.20", "+0.080"]
    assert format_markdown(rows).splitlines()[-1].endswith("| 0.20 | +0.080 |")


def test_unknown_backend_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--backends", "fast,magic"])
    assert "unknown backend" in capsys.readouterr().err


def test_floor_row_is_the_sampling_spacing_of_a_perfect_mesh():
    """A perfect mesh does not score 0: two independent 100 k sample sets on the benchmark
    sphere (area ≈ 7.1) lie ≈ 0.004 units apart on average, 0.0016 of the diagonal."""
    sphere = reference_shape("sphere")
    floor = floor_case(sphere, samples=100_000)
    assert floor["iou"] == 1.0 and floor["watertight"]
    assert 0.0012 < floor["cd_over_diag"] < 0.0020
    grown = sphere.copy()
    grown.vertices *= 1.01
    assert measure(grown, sphere, samples=100_000)["cd_over_diag"] > floor["cd_over_diag"] + 0.001
