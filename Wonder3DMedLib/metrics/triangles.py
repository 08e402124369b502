"""Exact point-to-triangle distances, vectorised over many (point, triangle) pairs.

Data form: triangles packed as a ``(22, ...) float64`` structure of arrays (one row per
quantity, so every operation runs on contiguous arrays): corner ``a`` (3 rows), edges
``e0 = b − a`` and ``e1 = c − a`` (3 + 3), unit normal (3), the three coefficients that
turn the dot products ``(p − a)·e0`` and ``(p − a)·e1`` into barycentric coordinates
(3), the inverse squared lengths of the edges ab, ac, bc (3) and the products
``e0·e0``, ``e1·e1``, ``e0·e1``, ``e2·e2`` with ``e2 = c − b`` (4). Coordinates are in
the unit of the mesh (mm in this package). Distances to the edges are written in terms
of the two dot products so that each (point, triangle) pair costs about fifty
elementwise operations.

The closest point of a triangle to ``p`` is the projection of ``p`` onto the
triangle's plane when that projection falls inside the triangle, otherwise the
closest point on one of its three edges. Degenerate (zero-area) triangles are
treated through their edges only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PACKED_ROWS", "pack_triangles", "squared_distances", "closest_points"]

#: Number of rows of a packed triangle array.
PACKED_ROWS = 22


def _safe_inverse(values: np.ndarray) -> np.ndarray:
    return np.divide(1.0, values, out=np.zeros_like(values), where=values > 0)


def pack_triangles(corners: np.ndarray) -> np.ndarray:
    """Pack triangles for :func:`squared_distances`.

    Parameters
    ----------
    corners : (..., 3, 3) float
        Triangle corners ``[..., corner, xyz]``.

    Returns
    -------
    (22, ...) float64
        Packed rows (see the module docstring); a degenerate triangle has ``-1`` in
        its first barycentric row, which disables the plane projection.
    """
    corners = np.asarray(corners, dtype=np.float64)
    a = corners[..., 0, :]
    e0 = corners[..., 1, :] - a
    e1 = corners[..., 2, :] - a
    e2 = e1 - e0
    d00 = np.einsum("...i,...i->...", e0, e0)
    d01 = np.einsum("...i,...i->...", e0, e1)
    d11 = np.einsum("...i,...i->...", e1, e1)
    d22 = np.einsum("...i,...i->...", e2, e2)
    cross = np.cross(e0, e1)
    double_area = np.linalg.norm(cross, axis=-1)
    denominator = d00 * d11 - d01 * d01
    degenerate = (double_area <= 1e-12 * np.maximum(d00 + d11, 1e-300)) | (denominator <= 0)
    safe = np.where(degenerate, 1.0, denominator)
    normal = cross / np.where(degenerate, 1.0, double_area)[..., None]
    normal[degenerate] = 0.0
    rows = [
        *np.moveaxis(a, -1, 0),
        *np.moveaxis(e0, -1, 0),
        *np.moveaxis(e1, -1, 0),
        *np.moveaxis(normal, -1, 0),
        np.where(degenerate, -1.0, d11 / safe),
        np.where(degenerate, 0.0, d01 / safe),
        np.where(degenerate, 0.0, d00 / safe),
        _safe_inverse(d00),
        _safe_inverse(d11),
        _safe_inverse(d22),
        d00,
        d11,
        d01,
        d22,
    ]
    return np.ascontiguousarray(np.stack(rows))


def _barycentric_and_edges(x, y, z, packed):
    """Shared first steps: offsets from corner a, projections, edge parameters."""
    wx, wy, wz = x - packed[0], y - packed[1], z - packed[2]
    d20 = wx * packed[3] + wy * packed[4] + wz * packed[5]
    d21 = wx * packed[6] + wy * packed[7] + wz * packed[8]
    v = packed[12] * d20 - packed[13] * d21
    u = packed[14] * d21 - packed[13] * d20
    inside = (v >= 0) & (u >= 0) & (u + v <= 1) & (packed[12] >= 0)
    return wx, wy, wz, d20, d21, u, v, inside


def squared_distances(x: np.ndarray, y: np.ndarray, z: np.ndarray, packed: np.ndarray) -> np.ndarray:
    """Squared distances between points and triangles, element by element.

    Parameters
    ----------
    x, y, z : ndarray
        Point coordinates, broadcastable against ``packed[0]``.
    packed : (22, ...) float64
        From :func:`pack_triangles` (or a gather of it along its trailing axes).

    Returns
    -------
    ndarray
        Squared distance for every broadcast (point, triangle) pair.
    """
    wx, wy, wz, d20, d21, _, _, inside = _barycentric_and_edges(x, y, z, packed)
    plane = wx * packed[9] + wy * packed[10] + wz * packed[11]
    ww = wx * wx + wy * wy + wz * wz
    d00, d11, d01, d22 = packed[18], packed[19], packed[20], packed[21]
    # |w − t e|² = |w|² − t (2 w·e − t |e|²) with t clamped to the edge.
    t = np.clip(d20 * packed[15], 0.0, 1.0)
    best = ww - t * (2.0 * d20 - t * d00)
    t = np.clip(d21 * packed[16], 0.0, 1.0)
    np.minimum(best, ww - t * (2.0 * d21 - t * d11), out=best)
    # Edge bc from corner b: w_b = w − e0, w_b·e2 = (d21 − d20) − (e0·e1 − e0·e0).
    along = (d21 - d20) - (d01 - d00)
    t = np.clip(along * packed[17], 0.0, 1.0)
    np.minimum(best, (ww - 2.0 * d20 + d00) - t * (2.0 * along - t * d22), out=best)
    return np.maximum(np.where(inside, plane * plane, best), 0.0)


def closest_points(points: np.ndarray, packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest point on one triangle per point.

    Parameters
    ----------
    points : (n, 3) float
    packed : (22, n) float64
        The triangle of each point.

    Returns
    -------
    closest : (n, 3) float64
        The closest point on the triangle.
    weights : (n, 3) float64
        Its barycentric coordinates on corners (a, b, c); a zero weight means the
        point lies on the opposite edge, two zeros on a corner.
    """
    points = np.asarray(points, dtype=np.float64)
    x, y, z = points.T
    wx, wy, wz, d20, d21, u, v, inside = _barycentric_and_edges(x, y, z, packed)
    e0 = packed[3:6]
    e1 = packed[6:9]
    t_ab = np.clip(d20 * packed[15], 0.0, 1.0)
    t_ac = np.clip(d21 * packed[16], 0.0, 1.0)
    e2 = e1 - e0
    t_bc = np.clip(((wx - e0[0]) * e2[0] + (wy - e0[1]) * e2[1] + (wz - e0[2]) * e2[2]) * packed[17], 0.0, 1.0)
    zero = np.zeros_like(t_ab)
    # Barycentric weights (on b, c) of each candidate point, then (a) = 1 - b - c.
    candidates = np.stack(
        [
            np.stack([v, u]),
            np.stack([t_ab, zero]),
            np.stack([zero, t_ac]),
            np.stack([1.0 - t_bc, t_bc]),
        ]
    )  # (4, 2, n)
    offsets = (
        np.stack([wx, wy, wz])[None]
        - candidates[:, 0, None] * e0[None]
        - candidates[:, 1, None] * e1[None]
    )  # (4, 3, n)
    squared = np.einsum("kin,kin->kn", offsets, offsets)
    squared[0] = np.where(inside, squared[0], np.inf)
    pick = np.argmin(squared, axis=0)
    chosen = candidates[pick, :, np.arange(len(pick))]  # (n, 2)
    weights = np.column_stack([1.0 - chosen.sum(axis=1), chosen])
    closest = packed[0:3].T + chosen[:, :1] * e0.T + chosen[:, 1:] * e1.T
    return closest, weights
