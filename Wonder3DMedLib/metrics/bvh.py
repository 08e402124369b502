"""A bounding-volume hierarchy over triangles for exact nearest-triangle searches.

Data form: triangle corners ``(n, 3, 3) float64`` and query points ``(m, 3) float64`` in
the same frame and unit (mm in this package).

The tree is a complete binary tree built top-down by median splits along each node's
longest axis; its leaves hold :data:`LEAF_SIZE` triangles (the count is padded to a
power-of-two number of leaves with triangles placed far away, which no search reaches).
Upper nodes are bounded by axis-aligned boxes; the lower levels, where a node is a
small, nearly flat patch of surface, by boxes oriented along the patch's mean normal,
which stay tight for points far from a tilted surface.

A search first evaluates the leaf whose box centre is nearest the point (a KD-tree over
leaf centres), which nearly always holds the answer and gives a tight upper bound.
All points then walk the tree together, level by level, so that numpy works on long
arrays; a (point, node) pair is dropped as soon as the node's lower bound reaches the
point's bound, and the triangles of the leaves left are evaluated exactly. Every
pruning step uses a true lower bound, so the answer is the exact nearest triangle.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from Wonder3DMedLib.metrics.triangles import pack_triangles, squared_distances

__all__ = ["LEAF_SIZE", "TriangleBVH"]

#: Triangles per leaf.
LEAF_SIZE = 16
# Levels (0 = leaves) bounded by oriented boxes; above them nodes are large, curved
# patches where an axis-aligned box is as good and cheaper.
_ORIENTED_LEVELS = 6
# Query points searched together; bounds the size of the frontier arrays.
_CHUNK = 2048
# (point, leaf) pairs evaluated together: small enough for the temporaries to stay in cache.
_EXACT_CHUNK = 512


def _median_order(centres: np.ndarray, group: int) -> np.ndarray:
    """Order ``centres`` so that consecutive runs of ``group`` items are compact.

    ``centres`` must already hold ``group * 2**k`` rows (padded by the caller). Each
    level splits every node's items at the median of that node's longest axis.
    """
    total = len(centres)
    columns = np.ascontiguousarray(centres.T)
    order = np.arange(total)
    size = total
    while size > group:
        block = np.take(columns, order, axis=1).reshape(3, -1, size)
        axis = np.argmax(_extent(block), axis=0)
        key = block[axis, np.arange(block.shape[1])]
        halves = np.argpartition(key, size // 2 - 1, axis=1)
        order = np.take_along_axis(order.reshape(-1, size), halves, axis=1).ravel()
        size //= 2
    return order


def _extent(block: np.ndarray) -> np.ndarray:
    """max − min along the last axis (a loop over short axes, where numpy's reduction is slow)."""
    if block.shape[-1] > 64:
        return block.max(axis=-1) - block.min(axis=-1)
    high = block[..., 0].copy()
    low = high.copy()
    for index in range(1, block.shape[-1]):
        np.maximum(high, block[..., index], out=high)
        np.minimum(low, block[..., index], out=low)
    return high - low


def _padded_size(count: int, group: int) -> int:
    return group << max(0, int(np.ceil(np.log2(max(count / group, 1.0)))))


def _oriented_boxes(patch: np.ndarray, normal_sum: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Boxes around patches of points, oriented by each patch's mean normal.

    Parameters
    ----------
    patch : (3, m, p) float64
        Corner points of each patch, coordinate first.
    normal_sum : (m, 3) float64
        Sum of the (area-scaled) face normals of each patch.
    low, high : (m, 3) float64
        Axis-aligned bounds; the first tangent follows the patch's longest world axis.

    Returns
    -------
    (15, m) float64
        Centre (3), axes (normal, tangent, bitangent; 3 rows each), half-extents (3).
        Any orthonormal frame bounds the patch; the normal only makes it tight.
    """
    length = np.linalg.norm(normal_sum, axis=1, keepdims=True)
    normal = np.where(length > 0, normal_sum / np.maximum(length, 1e-300), [1.0, 0.0, 0.0])
    longest = np.eye(3)[np.argmax(high - low, axis=1)]
    tangent = longest - np.einsum("mi,mi->m", longest, normal)[:, None] * normal
    size = np.linalg.norm(tangent, axis=1, keepdims=True)
    fallback = np.eye(3)[(np.argmax(np.abs(normal), axis=1) + 1) % 3]
    tangent = np.where(size > 1e-6, tangent / np.maximum(size, 1e-300), fallback)
    tangent -= np.einsum("mi,mi->m", tangent, normal)[:, None] * normal
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    bitangent = np.cross(normal, tangent)
    axes = np.stack([normal, tangent, bitangent], axis=1)  # (m, axis, xyz)
    lower = np.empty((patch.shape[1], 3))
    upper = np.empty((patch.shape[1], 3))
    for a in range(3):
        along = patch[0] * axes[:, a, 0, None] + patch[1] * axes[:, a, 1, None] + patch[2] * axes[:, a, 2, None]
        lower[:, a], upper[:, a] = along.min(axis=1), along.max(axis=1)
    centre = np.einsum("ma,mai->mi", 0.5 * (lower + upper), axes)
    return np.ascontiguousarray(np.concatenate([centre.T, axes.reshape(-1, 9).T, (0.5 * (upper - lower)).T]))


class TriangleBVH:
    """Hierarchy over a fixed set of triangles.

    Parameters
    ----------
    corners : (n, 3, 3) float
        Triangle corners (mm); ``n >= 1``.
    """

    def __init__(self, corners: np.ndarray):
        corners = np.asarray(corners, dtype=np.float64)
        count = len(corners)
        total = _padded_size(count, LEAF_SIZE)
        far = corners.reshape(-1, 3).max(axis=0) + 1e9
        padded = np.concatenate([corners, np.broadcast_to(far, (total - count, 3, 3))])
        order = _median_order(padded.mean(axis=1), LEAF_SIZE)
        self.depth = int(np.log2(total // LEAF_SIZE))
        #: (leaves, LEAF_SIZE) triangle index, -1 for padding.
        self.leaf_triangles = np.where(order < count, order, -1).reshape(-1, LEAF_SIZE)
        leaf_corners = padded[order].reshape(-1, LEAF_SIZE, 3, 3)
        #: (22, leaves, LEAF_SIZE) packed triangles, see :mod:`.triangles`.
        self.leaf_packed = pack_triangles(leaf_corners)
        self._levels = self._bounds(leaf_corners)
        self._leaf_tree = cKDTree(self._levels[0][0:3].T)

    @staticmethod
    def _bounds(leaf_corners: np.ndarray) -> list[np.ndarray]:
        """Per level (0 = leaves), node bounds as rows: oriented boxes low, axis-aligned high."""
        cross = np.cross(leaf_corners[:, :, 1] - leaf_corners[:, :, 0], leaf_corners[:, :, 2] - leaf_corners[:, :, 0])
        normal_sum = cross.sum(axis=1)
        components = np.ascontiguousarray(np.moveaxis(leaf_corners.reshape(len(leaf_corners), -1, 3), 2, 0))
        low, high = components.min(axis=2).T, components.max(axis=2).T
        levels = []
        while True:
            if len(levels) < _ORIENTED_LEVELS:
                levels.append(_oriented_boxes(components.reshape(3, len(low), -1), normal_sum, low, high))
            else:
                levels.append(np.ascontiguousarray(np.concatenate([low.T, high.T])))
            if len(low) == 1:
                return levels
            low = np.minimum(low[0::2], low[1::2])
            high = np.maximum(high[0::2], high[1::2])
            normal_sum = normal_sum[0::2] + normal_sum[1::2]

    def _lower_bound_sq(self, level: int, nodes: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Squared lower bound of the distance from points to nodes (broadcast pairwise)."""
        bounds = np.take(self._levels[level], nodes, axis=1)
        if len(bounds) == 6:
            dx = np.maximum(bounds[0] - x, 0.0) + np.maximum(x - bounds[3], 0.0)
            dy = np.maximum(bounds[1] - y, 0.0) + np.maximum(y - bounds[4], 0.0)
            dz = np.maximum(bounds[2] - z, 0.0) + np.maximum(z - bounds[5], 0.0)
            return dx * dx + dy * dy + dz * dz
        rx, ry, rz = x - bounds[0], y - bounds[1], z - bounds[2]
        total = None
        for axis in range(3):
            row = 3 + 3 * axis
            along = np.abs(rx * bounds[row] + ry * bounds[row + 1] + rz * bounds[row + 2]) - bounds[12 + axis]
            np.maximum(along, 0.0, out=along)
            total = along * along if total is None else total + along * along
        return total

    # ------------------------------------------------------------------ search
    def nearest(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact nearest triangle of each point.

        Parameters
        ----------
        points : (m, 3) float
            Query points (mm).

        Returns
        -------
        squared : (m,) float64
            Squared distance to the nearest triangle (mm²).
        triangle : (m,) int64
            Its index in the ``corners`` given to the constructor.
        """
        points = np.ascontiguousarray(np.asarray(points, dtype=np.float64).reshape(-1, 3))
        squared = np.empty(len(points))
        triangle = np.empty(len(points), dtype=np.int64)
        for start in range(0, len(points), _CHUNK):
            stop = min(start + _CHUNK, len(points))
            squared[start:stop], triangle[start:stop] = self._nearest_chunk(points[start:stop])
        return squared, triangle

    def _nearest_chunk(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        count = len(points)
        columns = np.ascontiguousarray(points.T)  # (3, n): gathers give contiguous rows
        upper_sq = np.full(count, np.inf)
        best = np.full(count, -1, dtype=np.int64)
        # 1. The leaf whose centre is nearest gives a tight first bound.
        _, first = self._leaf_tree.query(points)
        first = np.asarray(first, dtype=np.int64)
        self._examine(columns, np.arange(count), first, upper_sq, best)
        # 2. Every other leaf whose lower bound is below it is examined exactly.
        query = np.arange(count)
        node = np.zeros(count, dtype=np.int64)
        for level in range(self.depth - 1, -1, -1):
            query = np.repeat(query, 2)
            node = np.repeat(node, 2) * 2
            node[1::2] += 1
            x, y, z = np.take(columns, query, axis=1)
            keep = self._lower_bound_sq(level, node, x, y, z) < upper_sq[query]
            query, node = query[keep], node[keep]
        keep = node != first[query]
        self._examine(columns, query[keep], node[keep], upper_sq, best)
        return upper_sq, best

    def _examine(self, columns: np.ndarray, query: np.ndarray, leaf: np.ndarray, upper_sq: np.ndarray, best: np.ndarray) -> None:
        """Exact distances to the triangles of (point, leaf) pairs; keep improvements in place.

        ``columns`` holds the points as rows x, y, z; ``query`` must be sorted (pairs of
        one point next to each other).
        """
        for start in range(0, len(query), _EXACT_CHUNK):
            q, l = query[start : start + _EXACT_CHUNK], leaf[start : start + _EXACT_CHUNK]
            x, y, z = np.take(columns, q, axis=1)[:, :, None]
            squared = squared_distances(x, y, z, np.take(self.leaf_packed, l, axis=1))
            column = np.argmin(squared, axis=1)
            found = np.take_along_axis(squared, column[:, None], axis=1)[:, 0]
            starts = np.flatnonzero(np.r_[True, q[1:] != q[:-1]])
            owners = q[starts]
            lowest = np.minimum.reduceat(found, starts)
            improved = lowest < upper_sq[owners]
            upper_sq[owners[improved]] = lowest[improved]
            winners = found == upper_sq[q]
            best[q[winners]] = self.leaf_triangles[l[winners], column[winners]]
