"""The CPU backend end to end on shapes with known truth, and its anchoring steps on exact depths.

End-to-end tests use 128² views and a 128³ grid (about 4 s each on two cores); the
thresholds leave margin over what that resolution reaches (sphere IoU 0.994, CD/diag 0.0018;
the 256² targets of the benchmark are tighter). One anatomical case runs at 256² (slow).
CD/diag is measured with 100 000 samples each way, which by itself gives ≈ 0.0016 for a
perfect reconstruction of these shapes (sampling floor).
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.recon_metrics import surface_scores
from Wonder3DMedLib.reconstruction.anchoring import (
    contour_crossings,
    drop_contradicted,
    free_space_clamp,
    Landings,
    landings_on,
    outside_hull,
    piece_offsets,
    segment_pieces,
)
from Wonder3DMedLib.reconstruction.fast import FastOptions, reanchor_unplaced_parts, reconstruct_field
from Wonder3DMedLib.reconstruction.fusion import hull_grid
from Wonder3DMedLib.reconstruction.integration import integrate_normals
from Wonder3DMedLib.reconstruction.meshing import extract_mesh
from Wonder3DMedLib.reconstruction.render import rasterize, render_views
from Wonder3DMedLib.reconstruction.shapes import frame_mesh, label_surface, sphere, torus
from Wonder3DMedLib.reconstruction.view_stack import ViewStack
from Wonder3DMedLib.reconstruction.cameras import wonder3d_cameras
from Wonder3DMedLib.views import MultiviewImages


_DROP_RULE = {"lift_px": 2.0, "max_fraction": 0.2, "min_facing": 0.5}


def _clamp_and_drop(stack, heights, *, with_attribution=True):
    labels = [np.where(mask, 0, -1) for mask in stack.masks]
    lifted = free_space_clamp(stack, heights, confidence=0.3, tolerance=1.0)
    kept = []
    for view, (before, after) in enumerate(zip(heights, lifted)):
        landings = landings_on(stack, view, before, heights, confidence=0.3, lift_px=2.0) if with_attribution else None
        kept.append(drop_contradicted(before, after, labels[view], 1, facing=stack.facing[view], landings=landings,
                                      **_DROP_RULE))
    return kept


@pytest.mark.parametrize("with_attribution", [False, True])
def test_a_piece_the_clamp_lifts_in_many_places_carves_nothing(sphere_case, with_attribution):
    """A view sunken 8 px is lifted only where other views' points land; the rest would carve spikes.

    Several views lift it, so knowing which view lifts where does not spare it.
    """
    mesh, views = sphere_case
    stack = ViewStack.from_views(views)
    truth = _true_heights(mesh, 128)
    kept = _clamp_and_drop(stack, [truth[0] - 8.0] + truth[1:], with_attribution=with_attribution)
    assert np.isnan(kept[0]).all(), "the sunken view carves nothing"
    for view in range(1, 6):
        assert np.array_equal(np.isfinite(kept[view]), np.isfinite(truth[view])), f"view {view} stays placed"
    for view, again in enumerate(_clamp_and_drop(stack, truth, with_attribution=with_attribution)):
        assert np.array_equal(np.isfinite(again), np.isfinite(truth[view])), f"exact view {view} is kept"


def test_a_piece_lifted_by_one_bulging_view_keeps_its_place(sphere_case):
    """A view bulging 5 px towards its camera (noisy normals do that) lifts the views it overlaps.

    Dropping those correct views would leave the hull there; with the lifting attributed, only
    the bulging view stands against them and they stay placed.
    """
    mesh, views = sphere_case
    stack = ViewStack.from_views(views)
    truth = _true_heights(mesh, 128)
    bulging = list(truth)
    bulging[1] = truth[1] + 5.0
    without = _clamp_and_drop(stack, bulging, with_attribution=False)
    assert not np.isfinite(without[0]).any(), "without attribution the correct front view is dropped"
    kept = _clamp_and_drop(stack, bulging)
    for view in range(6):
        assert np.array_equal(np.isfinite(kept[view]), np.isfinite(truth[view])), f"view {view} stays placed"


def test_points_several_views_see_free_space_at_lift_nothing(sphere_case):
    """A view bulging 5 px towards its camera stands in front of both neighbours' correct surfaces.

    Without a limit the clamp lifts them to the bulge (the object is carved too little there);
    with ``max_dissenting_views=1`` those points, contradicted by two views, lift nothing, while
    a view sunk 6 px, which only its own surface contradicts, is still lifted back. Two views
    sunk together are then no longer lifted, but the drop rule still unplaces both.
    """
    mesh, views = sphere_case
    stack = ViewStack.from_views(views)
    truth = _true_heights(mesh, 128)
    bulging = [truth[0], truth[1] + 5.0] + truth[2:]

    def clamp(heights, limit):
        return free_space_clamp(stack, heights, confidence=0.3, tolerance=1.0, max_dissenting_views=limit)

    def error(lifted, view):
        return np.median(np.abs(lifted[view] - truth[view])[stack.masks[view]])

    def lifted_share(lifted, heights, view):
        return np.mean((lifted[view] - heights[view])[stack.masks[view]] > 2.0)

    unlimited, limited = clamp(bulging, None), clamp(bulging, 1)
    for view in (0, 2):
        assert error(unlimited, view) > 2.0 and lifted_share(unlimited, bulging, view) > 0.2, view
        assert error(limited, view) < 0.1 and lifted_share(limited, bulging, view) < 0.05, view
    sunken = [truth[0] - 6.0] + truth[1:]
    assert error(clamp(sunken, 1), 0) < 0.1
    two_sunken = [truth[0] - 6.0, truth[1], truth[2] - 6.0] + truth[3:]
    lifted = clamp(two_sunken, 1)
    assert error(lifted, 2) > 2.0
    for view in (0, 2):
        landings = landings_on(stack, view, two_sunken[view], two_sunken, confidence=0.3, lift_px=2.0)
        kept = drop_contradicted(two_sunken[view], lifted[view], np.where(stack.masks[view], 0, -1), 1,
                                 facing=stack.facing[view], landings=landings, **_DROP_RULE)
        assert np.isnan(kept).all(), f"sunken view {view} carves nothing"


def test_other_views_land_on_an_exact_surface_and_stick_out_of_a_sunken_one(sphere_case):
    """The other views' points reach most of a sphere view (the back view 41 %: only its
    neighbours at 90° see it) and lie on it; sunk 5 px, the same pixels have points in front."""
    mesh, views = sphere_case
    stack = ViewStack.from_views(views)
    truth = _true_heights(mesh, 128)
    for view in range(6):
        counted = stack.facing[view] >= 0.5
        exact = landings_on(stack, view, truth[view], truth, confidence=0.3, lift_px=2.0)
        assert not exact.sticking_out[:, counted].any() and exact.on_surface[counted].mean() > 0.35
        sunken = list(truth)
        sunken[view] = truth[view] - 5.0
        sunk = landings_on(stack, view, sunken[view], sunken, confidence=0.3, lift_px=2.0)
        assert not sunk.on_surface[counted].any()
        reached = exact.on_surface[counted].mean()
        assert sunk.sticking_out[:, counted].any(axis=0).mean() == pytest.approx(reached, abs=0.02)


def _sparsely_reached_piece(lifting_views):
    """A 10 x 10 piece lifted by 5 px at 18 pixels, reached by other views' points at 24.

    The 18 lifted pixels have a point in front from ``lifting_views`` in turn; the other 6
    reached pixels have one on the surface.
    """
    size = 12
    labels = np.full((size, size), -1)
    labels[1:11, 1:11] = 0
    before = np.where(labels == 0, 0.0, np.nan)
    rows, cols = np.nonzero(labels == 0)
    after = before.copy()
    after[rows[:18], cols[:18]] += 5.0
    sticking_out = np.zeros((6, size, size), bool)
    for i in range(18):
        sticking_out[lifting_views[i % len(lifting_views)], rows[i], cols[i]] = True
    on_surface = np.zeros((size, size), bool)
    on_surface[rows[18:24], cols[18:24]] = True
    return before, after, labels, Landings(sticking_out=sticking_out, on_surface=on_surface)


def test_a_piece_contradicted_wherever_other_views_reach_it_carves_nothing():
    """Other views that see a piece only obliquely reach few of its pixels.

    Lifted at 18 % of its pixels, it passes the 20 % rule; but 18 of the 24 pixels reached
    have a point in front, from three views, so it is dropped. One view alone against it is
    the likelier to be wrong (the bulging-view rule), and a piece with only a minority of
    reached pixels contradicted stays.
    """
    rule = dict(_DROP_RULE, facing=np.ones((12, 12)))
    before, after, labels, landings = _sparsely_reached_piece([1, 2, 3])
    assert np.isfinite(drop_contradicted(before, after, labels, 1, **rule)[labels == 0]).all(), "below the 20 % rule"
    assert np.isnan(drop_contradicted(before, after, labels, 1, landings=landings, **rule)).all()
    before, after, labels, landings = _sparsely_reached_piece([1])
    assert np.isfinite(drop_contradicted(before, after, labels, 1, landings=landings, **rule)[labels == 0]).all()
    before, after, labels, landings = _sparsely_reached_piece([1, 2, 3])
    landings.on_surface[labels == 0] = True
    assert np.isfinite(drop_contradicted(before, after, labels, 1, landings=landings, **rule)[labels == 0]).all()


def test_only_the_contradicted_part_of_a_piece_carves_nothing():
    """A piece joined across a depth step is often anchored right on one side of it.

    Examined again part by part (a finer split), the half that the other views contradict
    is dropped and the half nothing contradicts keeps its heights.
    """
    before, after, labels, landings = _sparsely_reached_piece([1, 2, 3])
    parts = np.where(labels == 0, 0, -1)
    parts[6:11, 1:11] = 1  # the contradicted pixels are all in rows 1-3
    kept = drop_contradicted(before, after, labels, 1, landings=landings, parts=parts,
                             **dict(_DROP_RULE, facing=np.ones((12, 12))))
    assert np.isnan(kept[parts == 0]).all() and np.isfinite(kept[parts == 1]).all()


@pytest.mark.parametrize("error", ["sunken", "tilted"])
def test_an_unplaced_part_is_anchored_again_if_one_offset_fits_it(sphere_case, error):
    """An unplaced part keeps its integrated shape; anchored on its own against the other views'
    surfaces, a part that was only misplaced (sunk 8 px, then dropped) finds its place, and a
    part whose shape is wrong (tilted by 30 px across) fits nowhere and stays unplaced."""
    mesh, views = sphere_case
    stack = ViewStack.from_views(views)
    truth = _true_heights(mesh, 128)
    ramp = np.linspace(-15.0, 15.0, 128)[None, :]
    integrated = [truth[0] - 8.0 if error == "sunken" else truth[0] + ramp] + truth[1:]
    clamped = [np.full((128, 128), np.nan)] + truth[1:]
    crossings = [contour_crossings(stack, view, grazing=0.3) for view in range(6)]
    parts = [np.where(mask, 0, -1) for mask in stack.masks]
    again = reanchor_unplaced_parts(stack, integrated, clamped, parts, crossings, FastOptions())
    for view in range(1, 6):
        assert np.array_equal(again[view], truth[view], equal_nan=True)
    if error == "sunken":
        assert np.isfinite(again[0][stack.masks[0]]).all()
        assert np.median(np.abs(again[0] - truth[0])[stack.masks[0]]) < 0.25
    else:
        assert np.isnan(again[0]).all()


def test_an_unplaced_part_without_clear_evidence_stays_unplaced(sphere_case):
    """The sunken part of the test above, re-anchored with a required score above what any
    placement can reach (contour votes ≤ 2, agreement ≤ 5 other views): it stays unplaced."""
    mesh, views = sphere_case
    stack = ViewStack.from_views(views)
    truth = _true_heights(mesh, 128)
    clamped = [np.full((128, 128), np.nan)] + truth[1:]
    crossings = [contour_crossings(stack, view, grazing=0.3) for view in range(6)]
    parts = [np.where(mask, 0, -1) for mask in stack.masks]
    options = FastOptions(reanchor_min_score=7.0)
    again = reanchor_unplaced_parts(stack, [truth[0] - 8.0] + truth[1:], clamped, parts, crossings, options)
    assert np.isnan(again[0]).all()


def _flat_view_with_a_grazing_band(size: int = 40):
    """A flat square view facing its camera, crossed by a band of grazing pixels at row 20."""
    mask = np.zeros((size, size), bool)
    mask[4:36, 4:36] = True
    normals = np.zeros((size, size, 3))
    normals[..., 2] = 1.0
    integration = integrate_normals(normals, mask, iterations=1)
    facing = np.where(mask, 1.0, 0.0)
    facing[20, :] = np.where(mask[20], 0.1, 0.0)
    return size, mask, integration, facing


def test_gaps_in_a_grazing_band_are_closed():
    """A band of grazing pixels across a flat view, interrupted by a 2-pixel gap: closing it cuts the view in two."""
    size, _, integration, facing = _flat_view_with_a_grazing_band()
    facing[20, 17:19] = 0.6  # noisy pixels above the threshold bridge the band
    _, bridged = segment_pieces(integration, facing, grazing=0.3, cut=0.2, min_pixels=10)
    labels, closed = segment_pieces(integration, facing, grazing=0.3, cut=0.2, min_pixels=10, close_gaps_px=1)
    assert bridged == 1 and closed == 2
    assert labels[10, 20] != labels[30, 20] and labels[20, 17] == -1
    _, wide = segment_pieces(integration, np.where(np.arange(size)[None, :] < 22, facing, facing.T), grazing=0.3,
                             cut=0.2, min_pixels=10, close_gaps_px=1)
    assert wide >= 1


def test_a_limb_facing_the_camera_a_little_still_cuts():
    """A band across a flat view: grazing pixels, then a 10-pixel stretch whose last pixel
    faces the camera by 0.33 (a tightly curved limb sampled before it turns away).

    Closing does not bridge 10 pixels, so only the limb threshold cuts the view in two;
    scattered pixels below it elsewhere (noise) are not closed into bands and cut nothing.
    """
    size, mask, integration, facing = _flat_view_with_a_grazing_band()
    facing[20, 15:25] = 0.33
    scattered = np.random.default_rng(0).random((size, size)) < 0.05
    facing[scattered & mask & (np.abs(np.arange(size)[:, None] - 20) > 2)] = 0.33
    options = dict(grazing=0.3, cut=0.2, min_pixels=10, close_gaps_px=3)
    _, joined = segment_pieces(integration, facing, **options)
    labels, cut = segment_pieces(integration, facing, **options, limb_grazing=0.35)
    assert joined == 1 and cut == 2
    assert labels[10, 20] != labels[30, 20]


def test_a_limb_band_goes_on_through_pixels_noise_lifted_a_little():
    """The limb stretch of the test above, with noise lifting two of its pixels to 0.45.

    Without continuation those pixels join the two sides; with a continuation of 0.15 the band
    goes on through them (they touch pixels below the limb threshold) and the view stays cut
    in two. Pixels at 0.45 scattered elsewhere touch no band and cut nothing; a pixel lifted
    beyond the continuation (0.6) still bridges the band.
    """
    size, mask, integration, facing = _flat_view_with_a_grazing_band()
    facing[20, 15:25] = 0.33
    facing[20, 18] = facing[20, 21] = 0.45
    scattered = np.random.default_rng(0).random((size, size)) < 0.05
    facing[scattered & mask & (np.abs(np.arange(size)[:, None] - 20) > 2)] = 0.45
    options = dict(grazing=0.3, cut=0.2, min_pixels=10, close_gaps_px=3, limb_grazing=0.35)
    _, gapped = segment_pieces(integration, facing, **options)
    labels, cut = segment_pieces(integration, facing, **options, limb_continuation=0.15)
    assert gapped == 1 and cut == 2
    assert labels[10, 20] != labels[30, 20] and labels[20, 18] == -1
    assert (labels[scattered & mask & (np.abs(np.arange(size)[:, None] - 20) > 2)] >= 0).all()
    facing[20, 21] = 0.6
    _, bridged = segment_pieces(integration, facing, **options, limb_continuation=0.15)
    assert bridged == 1


def test_edges_cut_by_given_weights_split_pieces():
    """Weights passed in (the smaller of two integrations') cut where the integration's own do not."""
    size, mask, integration, facing = _flat_view_with_a_grazing_band()
    facing = np.where(mask, 1.0, 0.0)
    options = dict(grazing=0.3, cut=0.2, min_pixels=10)
    _, whole = segment_pieces(integration, facing, **options)
    graph = integration.graph
    rows = np.nonzero(graph.mask)[0]
    across = (rows[graph.edge_a] == 19) & (rows[graph.edge_b] == 20)  # vertical edges between rows 19 and 20
    weights = np.minimum(integration.edge_weights(), np.where(across, 0.0, 1.0))
    labels, split = segment_pieces(integration, facing, **options, edge_weights=weights)
    assert whole == 1 and split == 2 and labels[10, 20] != labels[30, 20]


@pytest.mark.slow
def test_oracle_hippocampus_with_a_sharp_shelf(mricron_templates):
    """The left hippocampus as the product's oracle mode builds it from the AAL labelmap.

    Its surface keeps the atlas's sharp shelf (a flat face between two slabs drawn on
    different slices); in the side views the depth step along it has no grazing band, so one
    piece joined both slabs and was anchored ~30 px too deep in part, and the free-space clamp
    lifted it only in places: a comb of spikes (measured IoU 0.868, CD/diag 0.0075, surface
    area ×1.28). Dropping such pieces gives IoU ≈ 0.91, CD/diag ≈ 0.004.
    """
    from Wonder3DMedLib.metrics.surfaces import load_surface

    surface = load_surface(mricron_templates / "aal.nii.gz", 37).mesh
    coronal = np.array([[-1.0, 0, 0], [0, 0, 1], [0, 1, 0]])
    mesh = frame_mesh(surface, rotation=coronal)
    reconstructed, _ = _reconstruct(render_views(mesh, size=256), resolution=192)
    scores = surface_scores(reconstructed, mesh)
    assert scores.iou > 0.89 and scores.chamfer_over_diagonal < 0.0055, scores
    assert reconstructed.area < 1.1 * mesh.area, "no comb of spikes"


@pytest.mark.slow
def test_a_gyrus_seen_from_behind_keeps_its_depth_steps(mricron_templates):
    """The left postcentral gyrus (AAL 57) seen as a coronal slice shows it.

    From behind and from the sides its crowns occlude the sulci behind them by 15–24 px. The
    last pixel of such a tightly curved limb faces the camera by 0.30–0.38, so with pieces
    separated only below a facing of 0.3 the grazing bands had gaps, one piece spanned each
    depth step, and four of the six views were anchored wrongly in part and dropped (measured
    IoU 0.876, CD/diag 0.0057; visual hull 0.743 / 0.0123). With the limb threshold (0.35):
    0.972 / 0.0019.
    """
    from benchmarks.recon_cases import reference_shape

    mesh = reference_shape("aal:57", atlas_path=mricron_templates / "aal.nii.gz")
    reconstructed, _ = _reconstruct(render_views(mesh, size=256), resolution=192)
    scores = surface_scores(reconstructed, mesh)
    assert scores.iou > 0.95 and scores.chamfer_over_diagonal < 0.003, scores


@pytest.mark.slow
def test_a_gyrus_seen_from_the_feet_is_anchored_part_by_part(mricron_templates):
    """The left lingual gyrus (AAL 47) seen as an axial slice, from below.

    Its back view is one piece over a depth step of about 14 px; anchored for the smaller
    side, 73 % of it lay too deep. The other views reach that part at only a fifth of its
    pixels, so the clamp lifted 14 % of the piece, it stayed, and carved the object: IoU
    0.631, worse than the visual hull (0.725). Now most reached pixels contradicting it drop
    it, the side anchored right keeps its heights (0.862), and the other side, anchored on
    its own, finds its place (measured 0.946 / 0.0026).
    """
    from benchmarks.recon_cases import reference_shape

    mesh = reference_shape("aal:47@axial", atlas_path=mricron_templates / "aal.nii.gz")
    reconstructed, _ = _reconstruct(render_views(mesh, size=256), resolution=192)
    scores = surface_scores(reconstructed, mesh)
    assert scores.iou > 0.93 and scores.chamfer_over_diagonal < 0.004, scores


def _reconstruct(views, resolution=128):
    field = reconstruct_field(views, resolution=resolution)
    return extract_mesh(field.sdf), field


def _assert_noise_targets(mricron_templates, name: str, seeds: tuple[int, ...] = (7,)) -> None:
    """The issue's noise targets on one benchmark shape: σ = 0.15 normal noise at 256² (by
    default the benchmark's seed 7) changes IoU by less than 0.03 and Chamfer by less than 25 %."""
    from benchmarks.recon_cases import perturb_views, reference_shape

    mesh = reference_shape(name, atlas_path=mricron_templates / "aal.nii.gz")
    views = render_views(mesh, size=256)
    clean = surface_scores(_reconstruct(views, resolution=192)[0], mesh)
    for seed in seeds:
        noisy = surface_scores(_reconstruct(perturb_views(views, noise=0.15, seed=seed), resolution=192)[0], mesh)
        assert abs(noisy.iou - clean.iou) < 0.03, (name, seed, clean, noisy)
        assert noisy.chamfer_over_diagonal < 1.25 * clean.chamfer_over_diagonal, (name, seed, clean, noisy)


def _true_heights(mesh, size):
    heights = []
    for camera in wonder3d_cameras():
        raster = rasterize(mesh, camera, size)
        heights.append(np.where(raster.mask, (camera.distance - raster.depth) * size / 2, np.nan))
    return heights


@pytest.fixture(scope="module")
def sphere_case():
    mesh = frame_mesh(sphere())
    return mesh, render_views(mesh, size=128)


@pytest.fixture(scope="module")
def thalamus(mricron_templates):
    """The left thalamus of the AAL atlas, smoothed 1 mm, seen from the front (coronal)."""
    from benchmarks.recon_cases import reference_shape

    return reference_shape("thalamus_l", atlas_path=mricron_templates / "aal.nii.gz")


def test_sphere(sphere_case):
    mesh, views = sphere_case
    reconstructed, field = _reconstruct(views)
    scores = surface_scores(reconstructed, mesh)
    assert reconstructed.is_watertight and scores.components == 1
    assert scores.iou >= 0.985 and scores.chamfer_over_diagonal <= 0.0025, scores
    assert field.method == "fast" and field.details["pieces"] == [1] * 6


def test_torus_with_its_hole_facing_the_front():
    mesh = frame_mesh(torus())
    reconstructed, _ = _reconstruct(render_views(mesh, size=128))
    scores = surface_scores(reconstructed, mesh)
    assert reconstructed.is_watertight
    assert scores.iou >= 0.96 and scores.chamfer_over_diagonal <= 0.003, scores


def test_anatomy_beats_the_visual_hull(thalamus):
    views = render_views(thalamus, size=128)
    reconstructed, _ = _reconstruct(views)
    hull = extract_mesh(hull_grid(ViewStack.from_views(views), 128))
    scores, baseline = surface_scores(reconstructed, thalamus), surface_scores(hull, thalamus)
    assert reconstructed.is_watertight
    assert scores.iou >= 0.95 and scores.chamfer_over_diagonal <= 0.004, scores
    assert scores.chamfer_over_diagonal <= 0.4 * baseline.chamfer_over_diagonal, (scores, baseline)


@pytest.mark.slow
def test_caudate_at_256_pixels(mricron_templates):
    from Wonder3DMedLib.imaging.io import read_volume

    atlas = read_volume(mricron_templates / "aal.nii.gz")
    surface = label_surface(np.asarray(atlas.array) == 71, atlas.spacing[::-1], smoothing_mm=1.0)
    surface.vertices = atlas.ijk_to_ras_points(np.asarray(surface.vertices)[:, ::-1] / atlas.spacing)
    mesh = frame_mesh(surface)  # axial: seen from above
    views = render_views(mesh, size=256)
    reconstructed, _ = _reconstruct(views, resolution=192)
    hull = extract_mesh(hull_grid(ViewStack.from_views(views), 192))
    scores, baseline = surface_scores(reconstructed, mesh), surface_scores(hull, mesh)
    assert scores.iou >= 0.95 and scores.chamfer_over_diagonal <= 0.003, scores
    assert scores.chamfer_over_diagonal <= 0.4 * baseline.chamfer_over_diagonal


def test_normal_noise_changes_little(sphere_case):
    """Gaussian noise σ = 0.15 on every normal component (then renormalised)."""
    mesh, views = sphere_case
    rng = np.random.default_rng(7)
    noisy = views.decoded_normals() + rng.normal(0.0, 0.15, views.normals.shape).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=-1, keepdims=True)
    noisy_views = MultiviewImages.from_normal_vectors(noisy, views.colors, views.masks, source="oracle")
    clean = surface_scores(_reconstruct(views)[0], mesh)
    perturbed = surface_scores(_reconstruct(noisy_views)[0], mesh)
    assert abs(perturbed.iou - clean.iou) < 0.03
    assert perturbed.chamfer_over_diagonal < 1.25 * clean.chamfer_over_diagonal


@pytest.mark.slow
def test_normal_noise_on_structures_that_one_wrong_view_used_to_drag_down(mricron_templates):
    """σ = 0.15 normal noise at 256² on the left caudate and the left amygdala seen axially.

    Without the discount of one dissenting view, a single view anchored a few pixels too deep
    vetoed the right depth of the pieces it overlapped (measured: caudate Chamfer ×1.26;
    amygdala IoU −0.055 with only the smoothed grazing cut); both now meet the issue's
    targets (< 0.03 IoU, < 25 % Chamfer).
    """
    for name in ("caudate_l", "amygdala_l@axial"):
        _assert_noise_targets(mricron_templates, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hippocampus_r", "pallidum_l"])
def test_normal_noise_across_a_grazing_band_and_from_one_bulging_view(mricron_templates, name):
    """σ = 0.15 normal noise at 256² (neither structure is used by the benchmark's tuning of these rules).

    Right hippocampus: in the front view the head lies in front of the body behind a grazing
    band 1–2 px wide; noisy pixels bridged it, integration joined both and the piece was
    anchored ~7 px deep (measured IoU 0.965 → 0.884, Chamfer ×1.84). Gaps in grazing bands
    are now closed. Left pallidum: the noisy left view bulges 2–4 px towards its camera and
    alone lifted the correct back view, which was then dropped (Chamfer ×1.28); a piece lifted
    by one view only now keeps its place.
    """
    _assert_noise_targets(mricron_templates, name)


@pytest.mark.slow
def test_normal_noise_on_a_gyrus_crown(mricron_templates):
    """σ = 0.15 normal noise at 256² on the left postcentral gyrus (AAL 57, coronal).

    Seen from behind, its crown ends in a limb whose last pixels face the camera by 0.3–0.5;
    noise lifted single pixels of that band above the limb threshold and the back view became
    one piece over an 18 px depth step (measured IoU 0.972 → 0.833, Chamfer ×3.3). The band
    now goes on through such pixels (hysteresis): measured 0.971, ×1.02. With seed 1 the band
    ends where the crown's fold fades out, and only BiNI's bilateral cuts separate the two
    surfaces there: the reweighted equations (``FastOptions.unbiased_above``) alone settled
    them elsewhere and joined the pieces (0.867, ×2.87); pieces now split wherever either
    weighting cuts (measured 0.974, ×0.96).
    """
    _assert_noise_targets(mricron_templates, "aal:57", seeds=(7, 1))


@pytest.mark.slow
def test_normal_noise_along_a_long_piece(mricron_templates):
    """σ = 0.15 normal noise at 256² on the left hippocampus seen as a sagittal slice.

    Noise flattened the slopes BiNI's plain equations integrate, so heights drifted along the
    structure: integrated over the right view (free offset removed), 10 % of the pixels facing
    it lay 9.6 px or more in front of the truth (1.8 px without noise), the anchored right and
    front-right views stood on average 3–4 px in front of the surface and carved too little
    (IoU 0.972 → 0.943, Chamfer ×1.82). The first integration now weights its equations by
    ``1 / max(n_z, 0.6)`` (1.9 px; measured IoU 0.973, Chamfer ×1.00).
    """
    _assert_noise_targets(mricron_templates, "hippocampus_l@sagittal")


@pytest.mark.slow
def test_normal_noise_does_not_push_surfaces_outwards(mricron_templates):
    """σ = 0.15 normal noise at 256² on the left inferior parietal gyrus (AAL 61, coronal).

    Noise leaves some points of every view a few pixels outside the object; the free-space
    clamp let each of them lift the surfaces of the views it stood in front of, so every view
    ended 1.2–4.2 px (mean) in front of the truth and the object was carved too little (IoU
    0.961 → 0.947, Chamfer ×1.29). A point that two or more views see free space at now lifts
    nothing (``FastOptions.clamp_max_dissenting_views``): 0.972 → 0.965, ×1.12.
    """
    _assert_noise_targets(mricron_templates, "aal:61")


@pytest.mark.slow
def test_normal_noise_on_a_piece_only_its_own_view_sees_squarely(mricron_templates):
    """σ = 0.15 normal noise (seed 1) on the left orbital middle frontal gyrus (AAL 9) seen as
    an axial slice.

    The back view's one piece (16 000 px) is bent by the noise, so at its right place a few of
    its rim points leave the hull or hide a side view's surface; the second anchoring round
    then put it 6 px deeper, where a little chance agreement and no penalty scored 0.045
    against 0.044, and it carved the back away (IoU 0.971 → 0.908, Chamfer ×2.16). No other
    view sees that surface squarely, so nothing lifted it. A piece now moves more than 1 px
    deeper in the second round only where the deeper place scores at least twice its first:
    measured 0.965, ×1.15.
    """
    _assert_noise_targets(mricron_templates, "aal:9@axial", seeds=(1,))


@pytest.mark.slow
def test_normal_noise_on_a_part_that_only_chance_agreement_places(mricron_templates):
    """σ = 0.15 normal noise (the benchmark's seed 7) on the left inferior parietal gyrus
    (AAL 61) seen as a sagittal slice.

    A 936-px piece of the back view, placed right by its contours in the first round, hides a
    noisy side view's surface there in the second and finds no place; re-anchored on its own,
    its 861-px part's best place was 13 px too deep with a score of 0.020 (agreement of 2 % of
    its pixels, no contour votes), and no other view sees the back view's surface squarely to
    contradict it: a hole (IoU 0.963 → 0.933, Chamfer ×1.41). Re-anchoring now needs a score
    of 0.1: measured 0.953, ×1.18.
    """
    _assert_noise_targets(mricron_templates, "aal:61@sagittal")


@pytest.mark.slow
def test_views_too_deep_together_are_still_unplaced(mricron_templates):
    """The right middle frontal gyrus (AAL 8) seen as an axial slice, clean views.

    Pieces of its front and front-left views (6 000 px each) are anchored too deep together:
    the other views' points stand in front of both, so they lift neither of them. When the
    drop rule saw only those lifts it kept both pieces, 2 000 and 1 300 of their pixels more
    than 5 px too deep (IoU 0.950 → 0.925, CD/diag 0.0029 → 0.0040); it now tests the lifts
    of every point, and unplaces them as before (measured 0.954 / 0.0027).
    """
    from benchmarks.recon_cases import reference_shape

    mesh = reference_shape("aal:8@axial", atlas_path=mricron_templates / "aal.nii.gz")
    scores = surface_scores(_reconstruct(render_views(mesh, size=256), resolution=192)[0], mesh)
    assert scores.iou > 0.93 and scores.chamfer_over_diagonal < 0.004, scores


@pytest.mark.slow
def test_a_crown_seen_from_the_feet_keeps_its_limb_band(mricron_templates):
    """The right precentral gyrus (AAL 2) seen as an axial slice.

    The last pixels before its crown turns away from the back camera face it by 0.35–0.5;
    the band below 0.35 had gaps there, the back view joined the crown with the surface
    behind it, and that piece (60 % of it 17 px too deep, contradicted by the left view
    alone) was kept: IoU 0.874, CD/diag 0.0054. With the band continued through those
    pixels: measured 0.965 / 0.0022.
    """
    from benchmarks.recon_cases import reference_shape

    mesh = reference_shape("aal:2@axial", atlas_path=mricron_templates / "aal.nii.gz")
    scores = surface_scores(_reconstruct(render_views(mesh, size=256), resolution=192)[0], mesh)
    assert scores.iou > 0.93 and scores.chamfer_over_diagonal < 0.004, scores


@pytest.mark.slow
def test_normal_noise_on_the_putamen(mricron_templates):
    """σ = 0.15 normal noise at 256² on the left putamen (benchmark seed 7).

    With the normals for detection smoothed by 1 px its Chamfer grew ×1.27 (×1.12–1.28 over
    five seeds): spurious contour crossings anchored a lateral piece of the front-left view
    ≈ 5 px too close to its camera. With 2 px: ×1.15.
    """
    _assert_noise_targets(mricron_templates, "putamen_l")


@pytest.mark.parametrize("mask_px", [-1, 1])
def test_masks_one_pixel_off_keep_the_surface_close(sphere_case, mask_px):
    """Masks eroded or dilated by 1 px (issue target at 256²: CD/diag ≤ 0.009; 1 px is twice as large here)."""
    from benchmarks.recon_cases import perturb_views

    mesh, views = sphere_case
    reconstructed, _ = _reconstruct(perturb_views(views, mask_px=mask_px))
    scores = surface_scores(reconstructed, mesh)
    assert reconstructed.is_watertight
    assert scores.chamfer_over_diagonal <= 0.009, scores


def test_contours_point_at_the_true_depth(sphere_case):
    """On exact heights, the nearest silhouette candidate of nearly every contour crossing is the truth."""
    mesh, views = sphere_case
    stack = ViewStack.from_views(views)
    truth = _true_heights(mesh, 128)
    crossings = contour_crossings(stack, 0, grazing=0.3)
    assert len(crossings.rows) > 100
    gap = crossings.candidates - crossings.heights_at(np.nan_to_num(truth[0]))[:, None]
    nearest = np.nanmin(np.abs(gap), axis=1)
    assert np.mean(nearest < 0.75) > 0.9


def test_a_crossing_its_own_piece_reaches_beyond_is_not_on_the_silhouette():
    """Two bumps of one piece in the same rows, seen by a view at 90° (``slope`` 0): both tops
    are contour crossings, but only the higher one can lie on that view's silhouette; the lower
    one is 2 px inside it. Another piece's pixels in the row do not count (its depth is unknown)."""
    from Wonder3DMedLib.reconstruction.anchoring import Crossings

    columns = np.arange(40, dtype=np.float64)[None, :].repeat(20, axis=0)
    heights = np.maximum(5.0 - 0.05 * (columns - 10.0) ** 2, 3.0 - 0.05 * (columns - 26.0) ** 2)
    labels = np.zeros(heights.shape, dtype=np.int64)
    labels[:, 34:] = 1
    heights[:, 34:] = 50.0

    def crossings(cols, slope, extreme):
        return Crossings(rows=np.array([5, 5, 12]), cols=np.array(cols), fraction=np.zeros(3),
                         candidates=np.zeros((3, 1)), slope=np.full(3, slope), extreme=np.full(3, extreme))

    assert crossings([10, 26, 10], 0.0, 1.0).beyond_in_row(heights, labels) == pytest.approx([0.0, 2.0, 0.0])
    lowest = crossings([10, 26, 0], 0.0, -1.0).beyond_in_row(heights, labels)
    assert lowest[2] == pytest.approx(0.0)
    assert lowest[0] == pytest.approx(5.0 - heights[5, :34].min())
    tilted = crossings([10, 26, 10], -0.25, 1.0)
    expected = np.max(heights[5, :34] + 0.25 * columns[5, :34]) - (5.0 + 0.25 * 10)
    assert tilted.beyond_in_row(heights, labels)[0] == pytest.approx(expected)


def test_crossings_kept_point_at_the_true_depth_on_a_folded_gyrus(mricron_templates):
    """The right middle cingulum (AAL 34) at 256², exact heights, each view as one piece.

    Its folds give most rows several contour crossings for the same other view; only the
    outermost can lie on that view's silhouette, and putting an inner one on it moves the
    piece towards the camera. Nearly every crossing the rule keeps points at the true depth
    (measured 0.97), of the crossings it sets aside only a few do (0.20)."""
    from benchmarks.recon_cases import reference_shape

    mesh = reference_shape("aal:34", atlas_path=mricron_templates / "aal.nii.gz")
    stack = ViewStack.from_views(render_views(mesh, size=256))
    truth = _true_heights(mesh, 256)
    kept, set_aside = [], []
    for view in range(6):
        crossings = contour_crossings(stack, view, grazing=0.3)
        gap = crossings.candidates - crossings.heights_at(np.nan_to_num(truth[view]))[:, None]
        right = np.nanmin(np.where(np.isfinite(gap), np.abs(gap), np.inf), axis=1) < 0.75
        beyond = crossings.beyond_in_row(truth[view], np.where(stack.masks[view], 0, -1))
        kept.append(right[beyond <= 0.25])
        set_aside.append(right[beyond > 0.25])
    kept, set_aside = np.concatenate(kept), np.concatenate(set_aside)
    assert len(set_aside) > 0.3 * (len(kept) + len(set_aside))
    assert kept.mean() > 0.9 and set_aside.mean() < 0.5, (kept.mean(), set_aside.mean())


def test_noise_adds_few_contour_crossings(sphere_case):
    """Contour crossings are sign changes of the smoothed normals; noise must not multiply them.

    σ = 0.15 normal noise flips the sign of ``n · d`` back and forth wherever it is small:
    with the normals smoothed by 1 px a noisy sphere had 24 % more crossings at 128² (97 % at
    256²; on the putamen the share pointing at the true depth fell from 0.79 to 0.65), and the
    spurious ones anchor pieces off their depth. With 2 px they stay within a few per cent.
    """
    from benchmarks.recon_cases import perturb_views

    mesh, views = sphere_case
    truth = _true_heights(mesh, 128)
    smoothing = FastOptions().smoothing_px

    def crossings(images):
        stack = ViewStack.from_views(images, smoothing_px=smoothing)
        found = [contour_crossings(stack, view, grazing=0.3) for view in range(6)]
        near = [np.nanmin(np.abs(c.candidates - c.heights_at(np.nan_to_num(truth[view]))[:, None]), axis=1) < 0.75
                for view, c in enumerate(found)]
        return sum(len(c.rows) for c in found), np.mean(np.concatenate(near))

    clean_count, _ = crossings(views)
    noisy_count, noisy_near = crossings(perturb_views(views, noise=0.15, seed=7))
    assert noisy_count < 1.1 * clean_count, (clean_count, noisy_count)
    assert noisy_near > 0.98


def test_a_shifted_piece_is_put_back_and_a_sunken_view_is_lifted(sphere_case):
    mesh, views = sphere_case
    stack = ViewStack.from_views(views)
    truth = _true_heights(mesh, 128)
    labels = np.where(stack.masks[0], 0, -1)
    shifted = truth[0] - 17.0
    offsets = piece_offsets(stack, 0, shifted, labels, 1, contour_crossings(stack, 0, grazing=0.3), truth, grazing=0.3)
    assert offsets[0] == pytest.approx(17.0, abs=0.6)
    sunken = [truth[0] - 6.0] + truth[1:]
    lifted = free_space_clamp(stack, sunken, confidence=0.3, tolerance=1.0)
    gain = (lifted[0] - sunken[0])[stack.masks[0]]
    assert np.all(gain >= 0), "the clamp only ever lifts"
    assert np.median(np.abs(lifted[0] - truth[0])[stack.masks[0]]) < 1.5
    assert np.nanmax(outside_hull(stack, 0, truth[0])) < 1.5, "the true surface lies in the hull"


def test_a_second_round_moves_a_piece_deeper_only_on_twice_the_evidence(sphere_case):
    """The front view's piece of a sphere, shifted 17 px and tilted ±4 px at its rims (as noise
    bends a large piece); exact surfaces of the other views.

    At the place that is right on average one rim stands 4 px in front of the others' surfaces,
    so the round on its own prefers a place 2 px deeper. From a first place there, which keeps
    more than half of that score, the piece is not moved; from one 8 px in front, which leaves
    the hull, it is. Moves towards the camera are the round's own.
    """
    mesh, views = sphere_case
    stack = ViewStack.from_views(views)
    truth = _true_heights(mesh, 128)
    labels = np.where(stack.masks[0], 0, -1)
    crossings = contour_crossings(stack, 0, grazing=0.3)
    columns = np.arange(128)[None, :]
    tilted = truth[0] - 17.0 + 4.0 * (columns - 63.5) / 40.0

    def second_round(previous):
        return piece_offsets(stack, 0, tilted, labels, 1, crossings, truth, grazing=0.3,
                             previous=None if previous is None else np.array([previous]))[0]

    assert second_round(None) < 16.0
    assert second_round(17.0) == 17.0
    assert second_round(25.0) == pytest.approx(second_round(None))
    assert second_round(14.0) == pytest.approx(second_round(None))


@pytest.mark.parametrize("wrong_view", [1, 5])
def test_one_sunken_view_cannot_drag_a_correct_piece_down(sphere_case, wrong_view):
    """Agreement and contours put the piece back even when one other view lies 6 px too deep."""
    mesh, views = sphere_case
    stack = ViewStack.from_views(views)
    truth = _true_heights(mesh, 128)
    depths = list(truth)
    depths[wrong_view] = truth[wrong_view] - 6.0
    labels = np.where(stack.masks[0], 0, -1)
    crossings = contour_crossings(stack, 0, grazing=0.3)
    offsets = piece_offsets(stack, 0, truth[0] - 17.0, labels, 1, crossings, depths, grazing=0.3)
    assert offsets[0] == pytest.approx(17.0, abs=0.6)
