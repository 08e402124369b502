"""Signed distance -> closed, outward, cleaned, coloured meshes; test shapes framed like the product frames objects."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from Wonder3DMedLib.errors import Wonder3DMedError
from Wonder3DMedLib.model_frame import MODEL_IMAGE_SIZE
from Wonder3DMedLib.reconstruction.cameras import ORTHO_SCALE, wonder3d_cameras
from Wonder3DMedLib.reconstruction.meshing import SDFGrid, color_vertices, extract_mesh, sample_sdf
from Wonder3DMedLib.reconstruction.render import render_views
from Wonder3DMedLib.reconstruction.shapes import FRONT_FILL, bumpy_blob, frame_mesh, label_surface, sphere, torus


def _sphere_sdf(centre=(0.1, -0.05, 0.08), radius=0.6):
    centre = np.asarray(centre)
    return lambda points: np.linalg.norm(points - centre, axis=1) - radius


def test_grid_of_a_sphere_gives_a_closed_outward_sphere():
    """Cell-centred samples of an exact SDF: vertices within a small fraction of a cell of the sphere."""
    grid = sample_sdf(_sphere_sdf(), resolution=64)
    assert grid.values.shape == (64, 64, 64) and grid.origin == pytest.approx([-1 + 1 / 64] * 3)
    mesh = extract_mesh(grid)
    assert mesh.is_watertight and mesh.volume > 0
    radius = np.linalg.norm(mesh.vertices - [0.1, -0.05, 0.08], axis=1)
    # linear interpolation of a curved SDF: error ≈ h²/(8r) ≈ 1e-4 for h = 1/32
    assert np.abs(radius - 0.6).max() < 2e-3
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * 0.6**3, rel=0.01)


def test_function_with_refinement_pass_is_finer():
    coarse = extract_mesh(_sphere_sdf(), resolution=24)
    refined = extract_mesh(_sphere_sdf(), resolution=24, refine=True)
    error = [np.abs(np.linalg.norm(m.vertices - [0.1, -0.05, 0.08], axis=1) - 0.6).mean() for m in (coarse, refined)]
    assert refined.is_watertight and error[1] < error[0]
    assert len(refined.faces) > len(coarse.faces)


def test_surface_leaving_the_box_is_still_closed():
    """Padding with outside values closes a surface that the box cuts (a sphere of radius 1.2)."""
    mesh = extract_mesh(lambda p: np.linalg.norm(p, axis=1) - 1.2, resolution=32)
    assert mesh.is_watertight and mesh.volume > 0
    assert np.all(np.abs(mesh.vertices) <= 1.0 + 1e-6)


def test_largest_piece_is_kept():
    def two_spheres(points):
        big = np.linalg.norm(points - [-0.4, 0, 0], axis=1) - 0.45
        small = np.linalg.norm(points - [0.6, 0, 0], axis=1) - 0.2
        return np.minimum(big, small)

    mesh = extract_mesh(two_spheres, resolution=48)
    assert len(mesh.split(only_watertight=False)) == 1
    assert mesh.centroid[0] == pytest.approx(-0.4, abs=0.01)
    both = extract_mesh(two_spheres, resolution=48, keep_largest=False)
    assert len(both.split(only_watertight=False)) == 2


def test_smoothing_and_decimation_keep_a_closed_surface():
    grid = sample_sdf(_sphere_sdf(), resolution=64)
    plain = extract_mesh(grid)
    smooth = extract_mesh(grid, smoothing_iterations=10)
    assert smooth.is_watertight and smooth.volume == pytest.approx(plain.volume, rel=0.01), "Taubin keeps volume"
    small = extract_mesh(grid, target_faces=2000)
    assert small.is_watertight and len(small.faces) <= 2100 and small.volume > 0


def test_exact_zero_samples_do_not_break_the_surface():
    """Samples exactly on the level (a flat face on grid nodes) must not give non-manifold edges."""
    axis = -1 + (np.arange(40) + 0.5) / 20
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    cube = np.maximum(np.maximum(np.abs(x), np.abs(y)), np.abs(z)) - axis[30]  # faces exactly on grid nodes
    mesh = extract_mesh(SDFGrid(cube, origin=[axis[0]] * 3, spacing=0.05))
    assert mesh.is_watertight


def test_empty_field_is_a_clear_error():
    with pytest.raises(Wonder3DMedError, match="empty"):
        extract_mesh(lambda p: np.ones(len(p)), resolution=16)
    with pytest.raises(ValueError, match="3-D grid"):
        SDFGrid(np.zeros((4, 4)), origin=[0, 0, 0], spacing=0.1)


def test_vertex_colours_come_from_the_views_that_see_each_vertex():
    """A sphere red on its right half (+x) and blue on its left: the blended colours keep the halves."""
    ball = trimesh.creation.icosphere(subdivisions=4, radius=0.6)
    colours = np.where(ball.vertices[:, :1] > 0, [[220, 30, 30, 255]], [[30, 30, 220, 255]]).astype(np.uint8)
    painted = ball.copy()
    painted.visual.vertex_colors = colours
    views = render_views(painted, size=96)
    coloured = color_vertices(ball, views)
    rgb = coloured.visual.vertex_colors[:, :3].astype(int)
    right, left = ball.vertices[:, 0] > 0.15, ball.vertices[:, 0] < -0.15
    assert np.mean(rgb[right, 0] > rgb[right, 2] + 100) > 0.95
    assert np.mean(rgb[left, 2] > rgb[left, 0] + 100) > 0.95
    assert ball.visual.kind is None, "the input mesh is not modified"


def test_product_framing_fills_192_of_256_pixels():
    blob = bumpy_blob()
    blob.apply_scale(37.0)  # any units
    framed = frame_mesh(blob)
    extents = framed.extents
    assert max(extents[0], extents[1]) == pytest.approx(2 * FRONT_FILL) and FRONT_FILL == 192 / MODEL_IMAGE_SIZE
    assert np.allclose(framed.bounds.mean(axis=0), 0, atol=1e-9)
    assert framed.volume == pytest.approx(blob.volume * (2 * FRONT_FILL / max(blob.extents[:2])) ** 3, rel=1e-6)


def test_training_framing_and_the_extent_limit():
    framed = frame_mesh(torus(), mode="training")
    assert np.linalg.norm(framed.extents) == pytest.approx(2 / ORTHO_SCALE)
    rod = trimesh.creation.cylinder(radius=0.05, height=3.0)  # seen end-on by the front camera
    framed = frame_mesh(rod)
    for camera in wonder3d_cameras():
        local = framed.vertices @ camera.rotation.T
        assert np.ptp(local, axis=0).max() <= 1.9 + 1e-9, "no view is clipped"


def test_label_surface_of_a_voxel_ball():
    index = np.indices((30, 30, 30)) - 14.5
    ball = (index**2).sum(axis=0) < 10**2
    mesh = label_surface(ball, (2.0, 1.0, 1.0), smoothing_mm=1.0)
    assert mesh.is_watertight and mesh.volume > 0
    assert mesh.extents == pytest.approx([40, 20, 20], rel=0.08)
    assert sphere(radius=0.5).is_watertight
