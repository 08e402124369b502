"""The yardstick of the reconstruction benchmark and tests: surface distance and volume overlap.

Data form: two closed :class:`trimesh.Trimesh` in the same frame and units (the model
frame here). Independent of the code under test: surface samples come from trimesh,
nearest neighbours from a scipy KD-tree, and the inside test is a ray-parity
voxelisation written here (not the renderer's rasteriser).

* **Chamfer distance** ``CD = ½ (mean d(pred → ref) + mean d(ref → pred))`` over
  area-uniform surface samples (100 000 each way by default), plain (not squared)
  distances, divided by the reference's bounding-box diagonal (``chamfer_over_diagonal``)
  and by its longest side (``chamfer_over_max_side``, SyncDreamer's unit).
* **F-score** at ``τ = 1 %`` of the reference diagonal: harmonic mean of the fraction of
  predicted samples within τ of the reference and vice versa.
* **Volume IoU** on a grid of cubic cells (``iou_cells`` along the longest side of the
  union bounding box): inside = odd number of surface crossings along a z column through the
  cell centre; columns are offset by an irrational fraction of a cell so that no column
  passes through a vertex or edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from scipy.spatial import cKDTree

__all__ = ["SurfaceScores", "inside_grid", "volume_iou", "surface_scores"]


@dataclass(frozen=True)
class SurfaceScores:
    """Accuracy of a reconstructed mesh against its reference (all distances relative)."""

    chamfer_over_diagonal: float
    chamfer_over_max_side: float
    f_score: float
    iou: float
    watertight: bool
    components: int


def inside_grid(mesh: trimesh.Trimesh, lower: np.ndarray, cell: float, shape: tuple[int, int, int]) -> np.ndarray:
    """Which cell centres ``lower + (i + ½, j + ½, k + ½)·cell`` lie inside a closed mesh.

    Returns
    -------
    (nx, ny, nz) bool
    """
    nx, ny, nz = shape
    jitter = np.array([np.sqrt(2.0) - 1.0, np.sqrt(3.0) - 1.5]) * 1e-3 * cell
    tri = np.asarray(mesh.vertices)[np.asarray(mesh.faces)]
    # column coordinates of the triangle corners (cell-index units, centres at integers)
    u = (tri[:, :, 0] - lower[0] - jitter[0]) / cell - 0.5
    v = (tri[:, :, 1] - lower[1] - jitter[1]) / cell - 0.5
    i_lo = np.maximum(np.ceil(u.min(axis=1)), 0).astype(np.int64)
    i_hi = np.minimum(np.floor(u.max(axis=1)), nx - 1).astype(np.int64)
    j_lo = np.maximum(np.ceil(v.min(axis=1)), 0).astype(np.int64)
    j_hi = np.minimum(np.floor(v.max(axis=1)), ny - 1).astype(np.int64)
    e1u, e1v = u[:, 1] - u[:, 0], v[:, 1] - v[:, 0]
    e2u, e2v = u[:, 2] - u[:, 0], v[:, 2] - v[:, 0]
    det = e1u * e2v - e1v * e2u
    crossings = np.zeros((nx * ny, nz + 1), dtype=np.int32)
    width, height = i_hi - i_lo + 1, j_hi - j_lo + 1
    usable = (width > 0) & (height > 0) & (det != 0)
    span = np.maximum(width, height)
    for size in np.unique(span[usable]):
        faces = np.flatnonzero(usable & (span == size))
        for start in range(0, len(faces), max(1, 2_000_000 // int(size * size))):
            chunk = faces[start : start + max(1, 2_000_000 // int(size * size))]
            oi, oj = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
            ci = i_lo[chunk, None] + oi.ravel()[None]
            cj = j_lo[chunk, None] + oj.ravel()[None]
            valid = (ci <= i_hi[chunk, None]) & (cj <= j_hi[chunk, None])
            du, dv = ci - u[chunk, 0, None], cj - v[chunk, 0, None]
            b1 = (du * e2v[chunk, None] - dv * e2u[chunk, None]) / det[chunk, None]
            b2 = (e1u[chunk, None] * dv - e1v[chunk, None] * du) / det[chunk, None]
            hit = valid & (b1 >= 0) & (b2 >= 0) & (b1 + b2 <= 1)
            f = np.broadcast_to(chunk[:, None], hit.shape)[hit]
            b1, b2 = b1[hit], b2[hit]
            z = tri[f, 0, 2] * (1 - b1 - b2) + tri[f, 1, 2] * b1 + tri[f, 2, 2] * b2
            cell_index = np.clip(np.ceil((z - lower[2]) / cell - 0.5), 0, nz).astype(np.int64)
            np.add.at(crossings, (ci[hit] * ny + cj[hit], cell_index), 1)
    parity = np.cumsum(crossings, axis=1)[:, :nz] % 2
    return parity.reshape(nx, ny, nz).astype(bool)


def volume_iou(prediction: trimesh.Trimesh, reference: trimesh.Trimesh, *, cells: int = 160) -> float:
    """Intersection over union of two closed meshes' volumes on a shared grid."""
    lower = np.minimum(prediction.bounds[0], reference.bounds[0])
    upper = np.maximum(prediction.bounds[1], reference.bounds[1])
    cell = float(np.max(upper - lower)) / cells
    lower = lower - 2 * cell
    shape = tuple(int(n) for n in np.ceil((upper - lower) / cell) + 2)
    a = inside_grid(prediction, lower, cell, shape)
    b = inside_grid(reference, lower, cell, shape)
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 1.0


def surface_scores(
    prediction: trimesh.Trimesh, reference: trimesh.Trimesh, *, samples: int = 100_000, iou_cells: int = 160, seed: int = 0
) -> SurfaceScores:
    """Chamfer / F-score / IoU of ``prediction`` against ``reference`` (see module docstring)."""
    ref_points, _ = trimesh.sample.sample_surface(reference, samples, seed=seed)
    pred_points, _ = trimesh.sample.sample_surface(prediction, samples, seed=seed + 1)
    to_ref, _ = cKDTree(ref_points).query(pred_points)
    to_pred, _ = cKDTree(pred_points).query(ref_points)
    extent = reference.bounds[1] - reference.bounds[0]
    diagonal = float(np.linalg.norm(extent))
    chamfer = 0.5 * (to_ref.mean() + to_pred.mean())
    tau = 0.01 * diagonal
    precision, recall = float(np.mean(to_ref < tau)), float(np.mean(to_pred < tau))
    f_score = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return SurfaceScores(
        chamfer_over_diagonal=float(chamfer / diagonal),
        chamfer_over_max_side=float(chamfer / extent.max()),
        f_score=f_score,
        iou=volume_iou(prediction, reference, cells=iou_cells),
        watertight=bool(prediction.is_watertight),
        components=len(prediction.split(only_watertight=False)),
    )
