"""Fusion of six anchored height maps and six silhouettes into a signed distance grid.

Data form: heights ``(S, S)`` per view (pixels, the ``w`` of the view pixel frame), a
:class:`~Wonder3DMedLib.reconstruction.view_stack.ViewStack`, and the output
:class:`~Wonder3DMedLib.reconstruction.meshing.SDFGrid` over the box [−1, 1]³ (model frame,
model units, negative inside).

A point is inside when it lies inside every silhouette (the visual hull) and behind every
view's visible surface (depth carving). Per view the carving term is the height difference
along the view's rays, scaled by how squarely that pixel faces the camera, which turns it
into an estimate of the distance to the surface's tangent plane on both sides of the
surface; the hull term is the silhouette's own 2-D signed distance. The field is the
minimum of all of them (a max of the negated terms), so marching cubes finds the surface
without bias.

All six cameras are upright, so a grid point's image row depends on its ``y`` only and its
column and height on ``(x, z)`` only: each view is sampled as (rows interpolated per ``y``) ×
(columns gathered per ``(x, z)``), one vectorised gather per quantity.
"""

from __future__ import annotations

import numpy as np

from Wonder3DMedLib.progress import ProgressCallback, report
from Wonder3DMedLib.reconstruction._images import extend_nearest
from Wonder3DMedLib.reconstruction.cameras import wonder3d_cameras
from Wonder3DMedLib.reconstruction.meshing import SDFGrid
from Wonder3DMedLib.reconstruction.view_stack import ViewStack

__all__ = ["fuse_views", "hull_grid"]

_FAR = 1e4


def _row_sampler(size: int, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = (size / 2.0) * (1.0 - y) - 0.5
    low = np.clip(np.floor(rows), 0, size - 2).astype(np.intp)
    return low, np.clip(rows - low, 0.0, 1.0)


def _column_sampler(size: int, col: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    low = np.floor(col)
    valid = (low >= 0) & (low <= size - 2)
    index = np.clip(low, 0, size - 2).astype(np.intp)
    return index, np.clip(col - low, 0.0, 1.0).astype(np.float32), valid


def _sample(image: np.ndarray, rows: tuple, cols: tuple, fill: float) -> np.ndarray:
    """image (S, S) at every (y) row × (x, z) column -> (ny, nx, nz) float32."""
    low, t = rows
    by_row = (image[low] * (1.0 - t[:, None]) + image[low + 1] * t[:, None]).astype(np.float32)
    index, tc, valid = cols
    values = by_row[:, index] * (1.0 - tc) + by_row[:, index + 1] * tc
    return np.where(valid, values, np.float32(fill))


def _grid(resolution: int) -> np.ndarray:
    return -1.0 + (np.arange(resolution) + 0.5) * (2.0 / resolution)


def hull_grid(stack: ViewStack, resolution: int) -> SDFGrid:
    """The visual hull alone as a signed field (the baseline the benchmark compares with)."""
    return fuse_views(stack, None, resolution=resolution)


def fuse_views(
    stack: ViewStack,
    heights: list[np.ndarray] | None,
    *,
    resolution: int,
    progress: ProgressCallback | None = None,
) -> SDFGrid:
    """Signed distance grid of hull ∩ carving (see module docstring).

    Parameters
    ----------
    stack : ViewStack
    heights : list of 6 (S, S) float, or None
        Anchored heights of each view (pixels); NaN outside the masks and where a view's
        depth is unknown (those pixels carve nothing). None gives the visual hull alone.
    resolution : int
        Grid points along each axis (cell centres of a ``resolution``³ partition of the box).

    Returns
    -------
    SDFGrid
        ``values[i, j, k]`` at ``(x_i, y_j, z_k)``, model units, negative inside.
    """
    size = stack.size
    axis = _grid(resolution)
    x, z = np.meshgrid(axis, axis, indexing="ij")
    rows = _row_sampler(size, axis)
    field = np.full((resolution, resolution, resolution), -np.inf, dtype=np.float32)  # [y, x, z], > 0 outside
    for view, camera in enumerate(wonder3d_cameras()):
        report(progress, view / 6.0, f"fusing view {camera.name}")
        rotation = camera.rotation
        col = (size / 2.0) * (rotation[0, 0] * x + rotation[0, 2] * z) + size / 2.0 - 0.5
        cols = _column_sampler(size, col)
        silhouette = _sample(stack.distance[view], rows, cols, fill=_FAR)
        np.maximum(field, silhouette, out=field)
        del silhouette
        if heights is None:
            continue
        mask = stack.masks[view]
        placed = mask & np.isfinite(heights[view])
        surface = extend_nearest(np.where(placed, heights[view], _FAR), mask)  # unplaced pixels carve nothing
        facing = extend_nearest(np.clip(stack.facing[view], 0.0, 1.0), mask)
        height = ((size / 2.0) * (rotation[2, 0] * x + rotation[2, 2] * z)).astype(np.float32)
        behind = _sample(surface, rows, cols, fill=_FAR) - height  # > 0 behind the visible surface
        behind *= _sample(facing, rows, cols, fill=1.0)
        np.maximum(field, -behind, out=field)
        del behind
    report(progress, 1.0, "fused")
    values = np.ascontiguousarray(field.transpose(1, 0, 2)) * np.float32(2.0 / size)
    spacing = 2.0 / resolution
    return SDFGrid(values=values, origin=np.full(3, -1.0 + spacing / 2.0), spacing=spacing)
