"""Small per-pixel helpers shared by the CPU backend: sampling, signed distance, masked smoothing.

Data form: single-view images ``(H, W)`` or ``(H, W, C)`` with pixel centres at integer
``(row, col)``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["bilinear", "signed_distance", "extend_nearest", "smooth_normals"]


def bilinear(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, *, fill: float) -> np.ndarray:
    """Bilinear samples of ``image`` at fractional ``(rows, cols)``; ``fill`` outside the pixel centres' hull.

    Parameters
    ----------
    image : (H, W) float
    rows, cols : array_like, broadcastable to each other

    Returns
    -------
    ndarray of the broadcast shape, float64
    """
    height, width = image.shape
    rows = np.asarray(rows, dtype=np.float64)
    cols = np.asarray(cols, dtype=np.float64)
    r0 = np.floor(rows)
    c0 = np.floor(cols)
    valid = (r0 >= 0) & (r0 <= height - 2) & (c0 >= 0) & (c0 <= width - 2)  # False for NaN too
    r0 = np.where(valid, r0, 0.0)
    c0 = np.where(valid, c0, 0.0)
    ri = np.clip(r0, 0, height - 2).astype(np.intp)
    ci = np.clip(c0, 0, width - 2).astype(np.intp)
    tr, tc = np.where(valid, rows - r0, 0.0), np.where(valid, cols - c0, 0.0)
    top = image[ri, ci] * (1.0 - tc) + image[ri, ci + 1] * tc
    bottom = image[ri + 1, ci] * (1.0 - tc) + image[ri + 1, ci + 1] * tc
    return np.where(valid, top * (1.0 - tr) + bottom * tr, fill)


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Signed distance (pixels) to a binary mask's boundary, positive outside, negative inside.

    The boundary of a pixel mask lies half-way between an inside and an outside pixel centre,
    so the zero level of the bilinearly interpolated result is that half-way line.

    Returns
    -------
    (H, W) float32
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return np.full(mask.shape, float(max(mask.shape)), dtype=np.float32)
    inside = ndimage.distance_transform_edt(mask)
    outside = ndimage.distance_transform_edt(~mask)
    return np.where(mask, 0.5 - inside, outside - 0.5).astype(np.float32)


def extend_nearest(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Copy of ``values`` where pixels outside ``mask`` take the value of the nearest mask pixel."""
    mask = np.asarray(mask, dtype=bool)
    if mask.all() or not mask.any():
        return values.copy()
    nearest = ndimage.distance_transform_edt(~mask, return_distances=False, return_indices=True)
    return values[tuple(nearest)]


def smooth_normals(normals: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smoothed unit normals inside a mask (normalised convolution; background ignored).

    Parameters
    ----------
    normals : (H, W, 3) float
    mask : (H, W) bool
    sigma : float — pixels; 0 returns a copy

    Returns
    -------
    (H, W, 3) float64, zero outside the mask
    """
    normals = np.asarray(normals, dtype=np.float64)
    if sigma <= 0:
        return np.where(mask[..., None], normals, 0.0)
    weight = mask.astype(np.float64)
    density = ndimage.gaussian_filter(weight, sigma)
    smoothed = np.stack(
        [ndimage.gaussian_filter(normals[..., c] * weight, sigma) for c in range(3)], axis=-1
    ) / np.maximum(density, 1e-12)[..., None]
    length = np.linalg.norm(smoothed, axis=-1, keepdims=True)
    smoothed = np.divide(smoothed, length, out=np.zeros_like(smoothed), where=length > 1e-12)
    return np.where(mask[..., None], smoothed, 0.0)
