"""The reconstruction cameras are the original's, and every frame rule matches the fixtures README."""

from __future__ import annotations

import json
import re
import tomllib

import numpy as np
import pytest

from conftest import REPO_ROOT
from Wonder3DMedLib.model_frame import model_to_pixel_matrix, pixel_centers_model
from Wonder3DMedLib.reconstruction.cameras import (
    CAMERAS_RESOURCE,
    OPENGL_TO_OPENCV,
    camera_rays,
    color_valid_masks,
    foreground_masks,
    model_to_world_rotation,
    normals_in_camera,
    normals_to_world,
    ray_box_bounds,
    view_weights,
    wonder3d_cameras,
)
from Wonder3DMedLib.views import VIEW_NAMES, MultiviewImages

RESOURCE = REPO_ROOT / "Wonder3DMedLib" / "resources" / CAMERAS_RESOURCE


def test_shipped_poses_are_the_fixture_numbers(reference_dir):
    fixture = json.loads((reference_dir / "wonder3d_recon_poses.json").read_text())
    shipped = json.loads(RESOURCE.read_text())
    assert shipped["views"] == fixture["views"] == list(VIEW_NAMES)
    assert shipped["world_to_camera"] == fixture["world_to_camera"], "poses must be copied number for number"
    for camera in wonder3d_cameras():
        assert np.array_equal(camera.world_to_camera_gl, fixture["world_to_camera"][camera.name])


def test_resource_is_packaged():
    """Listed for Slicer's CMake build and as package data for pip installs."""
    cmake = (REPO_ROOT / "Wonder3DMedLib" / "CMakeLists.txt").read_text()
    assert f"resources/{CAMERAS_RESOURCE}" in cmake
    package_data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = package_data.get("Wonder3DMedLib", [])
    assert any(re.fullmatch(p.replace(".", r"\.").replace("*", ".*"), f"resources/{CAMERAS_RESOURCE}") for p in patterns)


def test_camera_positions_and_azimuths():
    """Front at +z (towards the viewer), right at +x (image-right of the front view), ±45° at 1.3·√2."""
    expected = {
        "front": (0.0, [0, 0, 1.3]),
        "front_right": (45.0, [1.3, 0, 1.3]),
        "right": (90.0, [1.3, 0, 0]),
        "back": (180.0, [0, 0, -1.3]),
        "left": (-90.0, [-1.3, 0, 0]),
        "front_left": (-45.0, [-1.3, 0, 1.3]),
    }
    for camera in wonder3d_cameras():
        azimuth, centre = expected[camera.name]
        assert camera.azimuth_deg == pytest.approx(azimuth, abs=1e-4)
        assert np.allclose(camera.centre, centre, atol=1e-6)
        assert np.allclose(camera.direction, -np.asarray(centre) / np.linalg.norm(centre), atol=1e-6)
        assert camera.rotation[1] == pytest.approx([0, 1, 0], abs=1e-6), "every camera is upright: rows are model y"
        assert np.allclose(camera.rotation @ camera.rotation.T, np.eye(3), atol=1e-12)


def test_front_camera_is_the_model_frame():
    front = wonder3d_cameras()[0]
    assert np.allclose(front.rotation, np.eye(3), atol=1e-6)
    assert np.allclose(front.model_to_pixel(64), model_to_pixel_matrix(64), atol=1e-5)
    # a model point p is the world point R_frontᵀ p: world z-up, the front camera looks along world +y
    assert np.allclose(model_to_world_rotation() @ [0, 1, 0], [0, 0, 1], atol=1e-6)
    assert np.allclose(model_to_world_rotation() @ [0, 0, 1], [0, -1, 0], atol=1e-6)


def test_view_weights_are_the_originals():
    assert view_weights().tolist() == [1.0, 0.8, 0.2, 1.0, 0.4, 0.7]


@pytest.mark.parametrize("size", [8, 256])
def test_rays_follow_the_original_opencv_construction(size):
    """Origins ((2i+1)/W − 1, (2j+1)/H − 1, 0) and direction +z in OpenCV camera axes, mapped by the c2w matrix."""
    cols, rows = np.meshgrid(np.arange(size), np.arange(size), indexing="xy")
    local = np.stack([(2 * cols + 1) / size - 1, (2 * rows + 1) / size - 1, np.zeros_like(cols, float)], axis=-1)
    for camera in wonder3d_cameras():
        c2w = camera.camera_to_world_cv()
        assert np.allclose(camera.world_to_camera_cv(), OPENGL_TO_OPENCV @ camera.world_to_camera_gl)
        expected_origins = local @ c2w[:3, :3].T + c2w[:3, 3]
        expected_direction = c2w[:3, :3] @ [0.0, 0.0, 1.0]
        rays = camera_rays(camera, size, frame="world")
        assert np.allclose(rays.origins, expected_origins, atol=1e-5)
        assert np.allclose(rays.directions, expected_direction, atol=1e-6)
        model = camera_rays(camera, size)
        assert np.allclose(model.origins @ model_to_world_rotation().T, rays.origins, atol=1e-9)


def test_rays_cross_the_whole_box_and_project_back_to_their_pixel():
    size = 32
    x, y = pixel_centers_model(size)
    for camera in wonder3d_cameras():
        rays = camera_rays(camera, size)
        near, far = ray_box_bounds(rays.origins, rays.directions)
        assert np.all(near > 0), "the image plane lies outside the box"
        assert np.all(far > near), "every ray crosses the box"
        if camera.name in ("front", "right", "back", "left"):
            assert np.allclose(far - near, 2.0)
        points = rays.origins + 0.9 * rays.directions
        projected = camera.project(points.reshape(-1, 3), size).reshape(size, size, 3)
        cols, rows = np.meshgrid(np.arange(size), np.arange(size), indexing="xy")
        assert np.allclose(projected[..., 0], cols, atol=1e-6) and np.allclose(projected[..., 1], rows, atol=1e-6)
        assert np.allclose(camera.ray_depth(points), 0.9)
        back = projected.reshape(-1, 3) @ camera.pixel_to_model(size)[:3, :3].T + camera.pixel_to_model(size)[:3, 3]
        assert np.allclose(back, points.reshape(-1, 3), atol=1e-9)
        # image-right/up in camera axes follow the pixel rule of the fixtures README
        local = (rays.origins - camera.centre) @ camera.rotation.T
        assert np.allclose(local[0, :, 0], x) and np.allclose(local[:, 0, 1], y)


def test_ray_box_bounds_misses():
    near, far = ray_box_bounds(np.array([[0.0, 3.0, 5.0]]), np.array([[0.0, 0.0, -1.0]]))
    assert near[0] > far[0]


def test_normal_decoding_matches_the_original_route():
    """Original: decoded GL normal -> negate y, z (OpenCV) -> rotate with the front camera's OpenCV c2w."""
    rng = np.random.default_rng(1)
    normals = rng.normal(size=(50, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    front_c2w = wonder3d_cameras()[0].camera_to_world_cv()[:3, :3]
    original = (normals * [1, -1, -1]) @ front_c2w.T
    assert np.allclose(normals_to_world(normals), original, atol=1e-6)


def _views(size: int = 16) -> MultiviewImages:
    normals = np.zeros((6, size, size, 3), np.float32)
    normals[..., 2] = 1.0  # every pixel faces the front camera
    colors = np.ones((6, size, size, 3), np.float32)
    colors[:, :2] = 0.2
    masks = np.zeros((6, size, size), bool)
    masks[:, 4:12, 4:12] = True
    return MultiviewImages.from_normal_vectors(normals, colors, masks, source="files")


def test_normals_in_each_camera_frame():
    camera_normals = normals_in_camera(_views())
    # a model +z normal is +z for the front camera, −z for the back, ±x for the sides
    expected = {"front": [0, 0, 1], "back": [0, 0, -1], "right": [-1, 0, 0], "left": [1, 0, 0],
                "front_right": [-0.70710678, 0, 0.70710678], "front_left": [0.70710678, 0, 0.70710678]}
    for k, name in enumerate(VIEW_NAMES):
        assert np.allclose(camera_normals[k, 8, 8], expected[name], atol=1e-5)
        assert np.all(camera_normals[k, 0, 0] == 0), "background decodes to zero"


def test_masks_and_colour_validity():
    views = _views()
    assert np.array_equal(foreground_masks(views), views.masks)
    eroded = foreground_masks(views, erode_px=1)
    assert eroded.sum() == 6 * 36 and not np.shares_memory(eroded, views.masks)
    valid = color_valid_masks(views)
    assert valid[:, :2].all(), "dark background pixels still count (Wonder3D drops only white background)"
    assert not valid[:, 14, 14].any() and valid[:, 8, 8].all()
    with pytest.raises(ValueError, match="erode_px"):
        foreground_masks(views, erode_px=-1)
