"""The mask rule for generated views, on synthetic views whose true foreground is known."""

from __future__ import annotations

import numpy as np
import pytest

from Wonder3DMedLib.diffusion.masks import background_color, foreground_masks

SIZE = 64


def disc(radius: float, centre=(32.0, 32.0)) -> np.ndarray:
    rows, cols = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def sphere_normals(mask: np.ndarray, radius: float, centre=(32.0, 32.0)) -> np.ndarray:
    """RGB-encoded normals of a sphere seen from the front (x right, y up, z to the viewer)."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    x, y = (cols - centre[1]) / radius, (centre[0] - rows) / radius
    z = np.sqrt(np.clip(1 - x**2 - y**2, 0, 1))
    normals = np.stack([x, y, z], axis=-1)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    return np.where(mask[..., None], (normals + 1) / 2, 1.0).astype(np.float32)


def views(normal: np.ndarray, color: np.ndarray, count: int = 2):
    return np.stack([normal] * count), np.stack([color] * count)


def test_a_sphere_on_white_is_found_exactly():
    truth = disc(20)
    color = np.where(truth[..., None], np.float32([0.6, 0.3, 0.2]), 1.0).astype(np.float32)
    masks = foreground_masks(*views(sphere_normals(truth, 20), color))
    assert masks.shape == (2, SIZE, SIZE) and masks.dtype == bool
    assert np.array_equal(masks[0], truth)


def test_a_white_object_stays_foreground_through_its_normals():
    """The colour view alone cannot see a white object on white; the normal map can (no unit normal is white)."""
    truth = disc(20)
    white = np.ones((SIZE, SIZE, 3), np.float32)
    masks = foreground_masks(*views(sphere_normals(truth, 20), white))
    assert np.array_equal(masks[0], truth)


def test_colour_detail_over_a_pale_normal_region_is_foreground():
    truth = disc(20)
    normal = sphere_normals(truth, 20)
    normal[truth & (np.mgrid[0:SIZE, 0:SIZE][0] < 28)] = 1.0  # a washed-out patch of the normal map
    color = np.where(truth[..., None], np.float32([0.2, 0.5, 0.7]), 1.0).astype(np.float32)
    assert np.array_equal(foreground_masks(*views(normal, color))[0], truth)


def test_specks_are_dropped_pinholes_filled_and_real_openings_kept():
    ring = disc(24) & ~disc(10)
    truth = ring.copy()
    normal = sphere_normals(ring, 24)
    color = np.where(ring[..., None], np.float32([0.5, 0.5, 0.5]), 1.0).astype(np.float32)
    color[3, 60] = 0.2  # a one-pixel speck in the background
    color[32, 18] = 1.0  # a one-pixel pin-hole in the ring (normal map made white there too)
    normal[32, 18] = 1.0
    masks = foreground_masks(*views(normal, color), min_area_fraction=0.002)
    assert np.array_equal(masks[0], truth), "speck kept, pin-hole left open or the ring's opening filled"


def test_grey_background_and_small_noise_are_tolerated():
    generator = np.random.default_rng(0)
    truth = disc(18, centre=(30, 36))
    grey = np.float32(0.5)
    normal = np.where(truth[..., None], sphere_normals(truth, 18, centre=(30, 36)), grey)
    color = np.where(truth[..., None], np.float32([0.9, 0.2, 0.2]), grey)
    noise = generator.normal(0, 0.01, size=(2, SIZE, SIZE, 3)).astype(np.float32)
    normals, colors = views(normal.astype(np.float32), color.astype(np.float32))
    masks = foreground_masks(np.clip(normals + noise, 0, 1), np.clip(colors + noise[::-1], 0, 1))
    np.testing.assert_allclose(background_color(normal), [0.5, 0.5, 0.5])
    # Noise of 1/100 only flips pixels whose true colour is within the tolerance of grey.
    assert (masks[0] != truth).sum() <= 4


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"normals must have shape \(views, H, W, 3\)"):
        foreground_masks(np.ones((2, 8, 8)), np.ones((2, 8, 8)))
    with pytest.raises(ValueError, match="colors must have the shape of normals"):
        foreground_masks(np.ones((2, 8, 8, 3)), np.ones((1, 8, 8, 3)))
