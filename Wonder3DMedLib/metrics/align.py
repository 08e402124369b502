"""Rigid (or similarity) ICP alignment of a predicted surface onto a reference surface.

Data form: area-weighted samples of the moving surface (RAS mm) and the fixed surface as
a :class:`~.distance.MeshDistance`; the result is a 4×4 matrix acting on RAS mm points.

Each iteration pairs every moving sample with its exact closest point on the fixed
surface and solves the weighted least-squares rigid (or similarity) transform between
the pairs (Umeyama, via :func:`trimesh.registration.procrustes`, reflections excluded).
ICP needs a starting pose: it runs from the pose as given and from the pose with the
centroids matched, and keeps the one that ends with the smaller residual. The
iterations use a few thousand samples, one per cell of a grid over the moving surface
(the sample nearest the cell's area-weighted mean, carrying the cell's area), so the
subsample is deterministic and keeps the area weighting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from Wonder3DMedLib.metrics.distance import MeshDistance
from Wonder3DMedLib.progress import ProgressCallback, report

__all__ = ["ALIGN_MODES", "Alignment", "align_icp"]

#: Alignment modes: rigid (rotation + translation) or similarity (plus a uniform scale).
ALIGN_MODES = ("rigid", "similarity")
# About this many samples are used by the iterations.
_ICP_SAMPLES = 5000


@dataclass(frozen=True, eq=False)
class Alignment:
    """Result of :func:`align_icp`.

    Attributes
    ----------
    matrix : (4, 4) float64
        Moving RAS mm → aligned RAS mm.
    mode : {'rigid', 'similarity'}
    rotation_deg : float
        Angle of the rotation part.
    translation_mm : (3,) float64
    scale : float
        1 for rigid.
    rms_before_mm, rms_after_mm : float
        Area-weighted RMS closest-point distance of the ICP samples.
    iterations : int
    converged : bool
    start : {'as given', 'centroids matched'}
    """

    matrix: np.ndarray
    mode: str
    rotation_deg: float
    translation_mm: np.ndarray
    scale: float
    rms_before_mm: float
    rms_after_mm: float
    iterations: int
    converged: bool
    start: str

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "matrix_ras": np.round(self.matrix, 9).tolist(),
            "rotation_deg": self.rotation_deg,
            "translation_mm": [float(v) for v in self.translation_mm],
            "scale": self.scale,
            "rms_before_mm": self.rms_before_mm,
            "rms_after_mm": self.rms_after_mm,
            "iterations": self.iterations,
            "converged": self.converged,
            "start": self.start,
        }


def _stratified(points: np.ndarray, weights: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """About ``target`` representative samples: one per grid cell, carrying the cell's weight."""
    cell = np.sqrt(weights.sum() / target)
    keys = np.floor((points - points.min(axis=0)) / cell).astype(np.int64)
    _, group, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    group = group.ravel()
    total = np.bincount(group, weights=weights)
    centre = np.stack([np.bincount(group, weights=weights * points[:, a]) for a in range(3)], axis=1) / total[:, None]
    gap = np.linalg.norm(points - centre[group], axis=1)
    order = np.lexsort((gap, group))
    chosen = order[np.r_[True, group[order][1:] != group[order][:-1]]]
    return points[chosen], total[group[chosen]]


def _transform(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def _icp(points, weights, fixed, start, scale, max_iterations, tolerance_mm, progress, share):
    matrix = start.copy()
    previous = np.inf
    rms = np.inf
    iteration = 0
    converged = False
    for iteration in range(1, max_iterations + 1):
        moved = _transform(points, matrix)
        found = fixed.closest(moved)
        rms = float(np.sqrt(np.dot(weights, found.distance**2) / weights.sum()))
        if previous - rms < tolerance_mm:
            converged = True
            break
        previous = rms
        step, _, _ = trimesh.registration.procrustes(
            moved, found.point, weights=weights, reflection=False, translation=True, scale=scale, return_cost=True
        )
        matrix = step @ matrix
        report(progress, share[0] + share[1] * iteration / max_iterations, f"ICP iteration {iteration}, RMS {rms:.3f} mm")
    if not converged:
        found = fixed.closest(_transform(points, matrix))
        rms = float(np.sqrt(np.dot(weights, found.distance**2) / weights.sum()))
    return matrix, rms, iteration, converged


def align_icp(
    points: np.ndarray,
    weights: np.ndarray,
    fixed: MeshDistance,
    *,
    mode: str = "rigid",
    max_iterations: int = 60,
    tolerance_mm: float = 1e-5,
    progress: ProgressCallback | None = None,
) -> Alignment:
    """Align moving surface samples to a fixed surface by ICP.

    Parameters
    ----------
    points : (n, 3) float
        Moving surface samples, RAS mm.
    weights : (n,) float
        Their areas (mm²).
    fixed : MeshDistance
        The fixed (reference) surface.
    mode : {'rigid', 'similarity'}
    max_iterations : int
    tolerance_mm : float
        Stop when the RMS improves by less than this.

    Returns
    -------
    Alignment
    """
    if mode not in ALIGN_MODES:
        raise ValueError(f"mode must be one of {ALIGN_MODES}, got {mode!r}")
    points = np.asarray(points, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if len(points) > 2 * _ICP_SAMPLES:
        points, weights = _stratified(points, weights, _ICP_SAMPLES)
    before = fixed.closest(points)
    rms_before = float(np.sqrt(np.dot(weights, before.distance**2) / weights.sum()))
    centroid_shift = np.eye(4)
    centroid_shift[:3, 3] = np.average(before.point, axis=0, weights=weights) - np.average(points, axis=0, weights=weights)
    starts = {"as given": np.eye(4), "centroids matched": centroid_shift}
    best = None
    for number, (name, start) in enumerate(starts.items()):
        result = _icp(points, weights, fixed, start, mode == "similarity", max_iterations, tolerance_mm, progress,
                      (number / len(starts), 1 / len(starts)))
        if best is None or result[1] < best[1][1]:
            best = (name, result)
    name, (matrix, rms, iterations, converged) = best
    linear = matrix[:3, :3]
    scale = float(np.cbrt(np.linalg.det(linear)))
    rotation = linear / scale
    angle = float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0))))
    report(progress, 1.0, "aligned")
    return Alignment(
        matrix=matrix,
        mode=mode,
        rotation_deg=angle,
        translation_mm=matrix[:3, 3].copy(),
        scale=scale if mode == "similarity" else 1.0,
        rms_before_mm=rms_before,
        rms_after_mm=rms,
        iterations=iterations,
        converged=converged,
        start=name,
    )
