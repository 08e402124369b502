"""The ground-truth renderer against analytic boxes and spheres, in every view and at several sizes."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.model_frame import pixel_centers_model
from Wonder3DMedLib.reconstruction.cameras import (
    camera_rays,
    model_to_world_rotation,
    normals_to_world,
    ray_box_bounds,
    wonder3d_cameras,
)
from Wonder3DMedLib.reconstruction.render import procedural_albedo, rasterize, render_views
from Wonder3DMedLib.views import load_views, save_views

BOX_CENTRE = np.array([0.053, -0.031, 0.027])
BOX_EXTENTS = np.array([0.913, 0.617, 0.489])


def _box() -> trimesh.Trimesh:
    return trimesh.creation.box(extents=BOX_EXTENTS, transform=trimesh.transformations.translation_matrix(BOX_CENTRE))


def _analytic_box_hits(camera, size):
    """Ray parameters where each pixel's ray enters the box (slab method in box-normalised coordinates)."""
    rays = camera_rays(camera, size)
    half = BOX_EXTENTS / 2
    near, far = ray_box_bounds((rays.origins - BOX_CENTRE) / half, rays.directions / half)
    return rays, near, far


@pytest.mark.parametrize("size", [17, 64, 200])
def test_box_silhouettes_depths_and_normals_are_exact(size):
    """Silhouettes to the pixel, depths to rounding, flat normals equal to the face normals."""
    box = _box()
    views = render_views(box, size=size, shading="flat")
    normals = views.decoded_normals()
    for k, camera in enumerate(wonder3d_cameras()):
        rays, near, far = _analytic_box_hits(camera, size)
        expected_mask = far > near
        assert np.array_equal(views.masks[k], expected_mask), camera.name
        raster = rasterize(box, camera, size)
        assert np.allclose(raster.depth[expected_mask], near[expected_mask], atol=1e-9)
        hits = rays.origins + np.where(expected_mask, near, 0.0)[..., None] * rays.directions
        local = (hits[expected_mask] - BOX_CENTRE) / (BOX_EXTENTS / 2)
        axis = np.argmax(np.abs(local), axis=1)
        expected_normals = np.zeros_like(local)
        expected_normals[np.arange(len(local)), axis] = np.sign(local[np.arange(len(local)), axis])
        assert np.allclose(normals[k][expected_mask], expected_normals, atol=1e-6), camera.name
        assert np.all(views.normals[k][~expected_mask] == 1.0), "white background"


@pytest.mark.parametrize("size", [32, 128, 256])
def test_sphere_silhouettes_match_the_disk(size):
    """Inside r·cos(half the icosphere's edge angle) always covered, outside r never."""
    radius, centre = 0.62, np.array([0.04, -0.07, 0.05])
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=radius)
    sphere.apply_translation(centre)
    edge_angle = np.max(sphere.edges_unique_length) / radius
    inner = radius * np.cos(edge_angle)
    views = render_views(sphere, size=size)
    x, y = pixel_centers_model(size)
    for k, camera in enumerate(wonder3d_cameras()):
        local = centre @ camera.rotation.T
        distance = np.hypot(x[None, :] - local[0], y[:, None] - local[1])
        assert views.masks[k][distance < inner].all(), camera.name
        assert not views.masks[k][distance > radius].any(), camera.name


def test_sphere_world_normals_after_png_round_trip_are_radial(tmp_path):
    """Decoded (8-bit, front frame) normals rotated to the original's world frame equal the radial direction."""
    radius, centre, size = 0.7, np.array([0.03, 0.02, -0.04]), 256
    sphere = trimesh.creation.icosphere(subdivisions=6, radius=radius)
    sphere.apply_translation(centre)
    save_views(render_views(sphere, size=size), tmp_path, sheet=False)
    loaded = load_views(tmp_path)
    to_world = model_to_world_rotation()
    for k, camera in enumerate(wonder3d_cameras()):
        rays = camera_rays(camera, size)
        offset = rays.origins - centre
        b = np.einsum("hwd,hwd->hw", offset, rays.directions)
        disc = b**2 - (np.einsum("hwd,hwd->hw", offset, offset) - radius**2)
        inside = disc > (0.05 * radius) ** 2  # away from the rim, where the polygon differs most from the sphere
        t = -b - np.sqrt(np.where(inside, disc, 0.0))
        radial_world = ((rays.origins + t[..., None] * rays.directions - centre) / radius) @ to_world.T
        decoded = normals_to_world(loaded.decoded_normals()[k])
        decoded /= np.linalg.norm(decoded, axis=-1, keepdims=True).clip(1e-9)
        cosine = np.einsum("hwd,hwd->hw", decoded, radial_world)[inside & loaded.masks[k]]
        assert np.degrees(np.arccos(np.clip(cosine, -1, 1))).max() < 2.0, camera.name
        # and the depth of the rasterised sphere is the analytic depth (up to the polygon's sagitta)
        # a radial error of at most the sagitta is a depth error of at most sagitta / cos(incidence)
        raster = rasterize(sphere, camera, size)
        sagitta = radius * (1 - np.cos(np.max(sphere.edges_unique_length) / radius))
        facing = disc > (0.5 * radius) ** 2
        assert np.abs(raster.depth[facing] - t[facing]).max() < 2 * sagitta


def test_views_round_trip_through_the_folder_layout(tmp_path):
    views = render_views(_box(), size=48, description="box")
    save_views(views, tmp_path)
    loaded = load_views(tmp_path)
    assert loaded.source == "oracle" and loaded.description == "box"
    assert np.array_equal(loaded.masks, views.masks)
    assert np.abs(loaded.normals - views.normals).max() <= 0.5 / 255 + 1e-6
    assert np.abs(loaded.colors - views.colors).max() <= 0.5 / 255 + 1e-6


def test_inverted_and_open_meshes_show_normals_facing_the_camera():
    box = _box()
    inverted = box.copy()
    inverted.invert()
    assert np.array_equal(render_views(inverted, size=32).normals, render_views(box, size=32).normals)
    plane = trimesh.Trimesh([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], [[0, 2, 1], [0, 3, 2]])
    views = render_views(plane, size=32, shading="flat")
    normals = views.decoded_normals()
    assert np.allclose(normals[0][views.masks[0]], [0, 0, 1]) and np.allclose(normals[3][views.masks[3]], [0, 0, -1])
    assert not views.masks[2].any(), "a plane seen edge-on covers no pixel centre"


def test_colours_vertex_colours_and_procedural_albedo():
    box = _box()
    coloured = box.copy()
    coloured.visual.vertex_colors = np.tile([200, 40, 10, 255], (len(box.vertices), 1))
    views = render_views(coloured, size=32)
    assert np.allclose(views.colors[views.masks], np.array([200, 40, 10]) / 255)
    plain = render_views(box, size=32)
    assert np.all(plain.colors[~plain.masks] == 1.0)
    shown = plain.colors[plain.masks]
    assert shown.min() >= 0 and shown.max() <= 1 and shown.std(axis=0).min() > 0.005, "albedo varies over the surface"
    assert procedural_albedo(np.zeros((1, 3))).shape == (1, 3)


def test_the_same_surface_point_has_the_same_colour_in_two_views():
    """Albedo and lighting are fixed to the model frame, so colour is view-consistent (as a texture is)."""
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=0.7)
    size = 128
    views = render_views(sphere, size=size)
    point = 0.7 * np.array([np.sin(np.radians(20)), 0.2, np.cos(np.radians(20))])
    point *= 0.7 / np.linalg.norm(point)
    colours = []
    for k in (0, 1):  # front and front_right both see a point at azimuth 20°
        col, row, _ = np.rint(wonder3d_cameras()[k].project(point[None], size)[0]).astype(int)
        colours.append(views.colors[k, row, col])
    assert np.abs(colours[0] - colours[1]).max() < 0.03


def test_bad_meshes_are_refused():
    with pytest.raises(InputError, match="empty"):
        render_views(trimesh.Trimesh(), size=16)
    with pytest.raises(ValueError, match="shading"):
        render_views(_box(), size=16, shading="phong")
