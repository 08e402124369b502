"""Normal integration (BiNI, orthographic) against analytic heights, with a real depth discontinuity."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from Wonder3DMedLib.reconstruction.cameras import normals_in_camera, wonder3d_cameras
from Wonder3DMedLib.reconstruction.integration import PixelGraph, PointConstraints, integrate_normals
from Wonder3DMedLib.reconstruction.render import rasterize, render_views


def _plane(size=48, slope=(0.3, -0.2)):
    """Heights w = a·col + b·row of a tilted plane and its unit normals (camera frame, rows down)."""
    a, b = slope
    rows, cols = np.mgrid[0:size, 0:size].astype(float)
    heights = a * cols + b * rows
    # ∂w/∂col = −nx/nz and ∂w/∂row = +ny/nz
    normal = np.array([-a, b, 1.0]) / np.linalg.norm([-a, b, 1.0])
    normals = np.broadcast_to(normal, (size, size, 3)).copy()
    mask = (rows - size / 2) ** 2 + (cols - size / 2) ** 2 < (size / 2.5) ** 2
    return heights, normals, mask


def test_plane_is_integrated_exactly_up_to_a_constant():
    heights, normals, mask = _plane()
    direct = integrate_normals(normals, mask, iterations=1)  # one direct solve
    assert np.ptp((direct.heights - heights)[mask]) < 5e-3, "only the default 1e-6 prior towards 0 bends it"
    assert np.all(np.isnan(direct.heights[~mask]))
    reweighted = integrate_normals(normals, mask, iterations=5)  # later solves: CG to a relative 1e-4
    assert np.ptp((reweighted.heights - heights)[mask]) < 1e-2


def test_point_constraints_and_prior_fix_the_offset():
    heights, normals, mask = _plane()
    graph = PixelGraph(mask)
    rows, cols = np.nonzero(mask[:, :-1] & mask[:, 1:])
    pick = np.arange(0, len(rows), 97)
    t = np.full(len(pick), 0.25)
    constraints = PointConstraints(
        left=graph.index[rows[pick], cols[pick]],
        right=graph.index[rows[pick], cols[pick] + 1],
        fraction=t,
        height=heights[rows[pick], cols[pick]] + 0.25 * 0.3 + 7.0,
        weight=np.full(len(pick), 0.5),
    )
    result = integrate_normals(normals, mask, constraints=constraints, iterations=3, graph=graph)
    assert np.abs((result.heights - heights - 7.0)[mask]).max() < 1e-2, "CG tolerance"
    prior = integrate_normals(normals, mask, prior=heights - 3.0, prior_weight=1e-3, iterations=1)
    assert np.abs((prior.heights - heights + 3.0)[mask]).max() < 1e-6


def test_sphere_heights_follow_the_analytic_cap():
    size, radius = 96, 36.0
    rows, cols = np.mgrid[0:size, 0:size].astype(float)
    x, y = cols - 47.5, -(rows - 47.5)
    inside = x**2 + y**2 < (0.97 * radius) ** 2
    z = np.sqrt(np.clip(radius**2 - x**2 - y**2, 0, None))
    normals = np.stack([x, y, z], axis=-1) / radius
    result = integrate_normals(normals, inside, iterations=10)
    error = (result.heights - z)[inside]
    error -= np.median(error)
    core = (x**2 + y**2 < (0.8 * radius) ** 2)[inside]
    assert np.abs(error[core]).max() < 0.1, "in pixels, away from the grazing rim"


def test_noisy_normals_flatten_plain_bini_and_unbiased_weights_do_not():
    """A plane at 55° to the camera (n_z 0.57) with noise of 0.15 on each normal component, then
    renormalised (the benchmark's perturbation): the plain equations' slope is ``Σ n_z n_x / Σ n_z²``,
    which the noise variance in ``n_z²`` flattens; weights ``1 / n_z`` make it ``Σ n_x / Σ n_z``."""
    size, slope = 96, np.array([1.2, -0.8])
    heights, normals, mask = _plane(size=size, slope=tuple(slope))
    noisy = normals + np.random.default_rng(0).normal(0.0, 0.15, normals.shape)
    noisy /= np.linalg.norm(noisy, axis=-1, keepdims=True)
    rows, cols = np.nonzero(mask)
    design = np.stack([cols, rows, np.ones(len(rows))], axis=1).astype(float)

    def fitted_steepness(unbiased_above):
        result = integrate_normals(noisy, mask, unbiased_above=unbiased_above).heights[mask]
        fitted = np.linalg.lstsq(design, result, rcond=None)[0][:2]
        return np.linalg.norm(fitted) / np.linalg.norm(slope)

    assert fitted_steepness(None) < 0.98, "3.5 % flatter: about 4 px of the 110 px the plane rises across its mask"
    assert fitted_steepness(0.5) == pytest.approx(1.0, abs=0.01)
    clean = integrate_normals(normals, mask, unbiased_above=0.5)
    assert np.ptp((clean.heights - heights)[mask]) < 0.1, "exact normals stay exact, but for the 1e-6 prior towards 0"


def test_bilateral_weights_keep_a_depth_discontinuity():
    """A block in front of a plate, both facing the camera, with a weak prior of the true heights
    (as anchoring provides): least squares ramps the plate up to the block, BiNI keeps both flat."""
    plate = trimesh.creation.box(extents=(1.7, 1.7, 0.1), transform=trimesh.transformations.translation_matrix([0, 0, -0.5]))
    block = trimesh.creation.box(extents=(0.7, 0.5, 0.3), transform=trimesh.transformations.translation_matrix([0.1, 0.05, 0.2]))
    scene = trimesh.util.concatenate([plate, block])
    size = 96
    views = render_views(scene, size=size, shading="flat")
    raster = rasterize(scene, wonder3d_cameras()[0], size)
    on_plate = raster.mask & (raster.face < len(plate.faces))
    normals = normals_in_camera(views)[0]
    truth = (wonder3d_cameras()[0].distance - raster.depth) * size / 2
    spreads = {}
    for name, iterations in (("least squares", 1), ("bilateral", 60)):
        result = integrate_normals(normals, views.masks[0], prior=truth, prior_weight=1e-2, iterations=iterations)
        plate_heights = result.heights[on_plate]
        spreads[name] = np.percentile(plate_heights, 95) - np.percentile(plate_heights, 5)
    assert spreads["least squares"] > 3.0, "the jump (38 pixels) leaks into the plate"
    assert spreads["bilateral"] < 0.2 * spreads["least squares"], spreads
    assert result.edge_weights().min() < 0.05, "edges across the block's border lose their weight"


def test_empty_mask_is_refused():
    with pytest.raises(ValueError, match="empty"):
        integrate_normals(np.zeros((8, 8, 3)), np.zeros((8, 8), bool))
