"""Rigid (or similarity) ICP alignment of a predicted surface onto a reference surface.

Data form: area-weighted samples of the moving surface (RAS mm) and the fixed surface as
a :class:`~.distance.MeshDistance`; the result is a 4×4 matrix acting on RAS mm points.

Each iteration pairs every moving sample with its exact closest point on the fixed
surface. The first iterations solve the weighted least-squares rigid (or similarity)
transform between the pairs (point-to-point, Umeyama via
:func:`trimesh.registration.procrustes`, reflections excluded), which converges from
far but slowly; the last ones minimise the distances to the tangent planes at the
closest points (point-to-plane, linearised), which converges fast near the answer.
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
# Point-to-point steps stop once an iteration improves the RMS by less than this fraction.
_SLOW_PHASE = 0.1
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


def _rms(fixed: MeshDistance, points: np.ndarray, weights: np.ndarray, matrix: np.ndarray):
    found = fixed.closest(_transform(points, matrix))
    return found, float(np.sqrt(np.dot(weights, found.distance**2) / weights.sum()))


def _plane_step(moved: np.ndarray, found, normals: np.ndarray, weights: np.ndarray, scale: bool) -> np.ndarray:
    """One linearised point-to-plane update (small rotation ω, translation t, scale 1 + s)."""
    offset = np.einsum("ij,ij->i", moved - found.point, normals)
    columns = [np.cross(moved, normals), normals]
    if scale:
        columns.append(np.einsum("ij,ij->i", moved, normals)[:, None])
    design = np.hstack(columns)
    solution = np.linalg.lstsq(design * np.sqrt(weights)[:, None], -offset * np.sqrt(weights), rcond=None)[0]
    omega, translation = solution[:3], solution[3:6]
    angle = np.linalg.norm(omega)
    step = np.eye(4)
    if angle > 0:
        step = trimesh.transformations.rotation_matrix(angle, omega / angle)
    if scale:
        step[:3, :3] *= 1.0 + solution[6]
    step[:3, 3] = translation
    return step


def _symmetric_cost(reference: tuple[np.ndarray, np.ndarray], moving: MeshDistance):
    """``cost(matrix, forward_rms, forward_weight)``: RMS over both directions (the reference
    samples measured to the moved surface, pooled with the moving samples' RMS).

    One-sided closest-point distances reward shrinking the moving surface onto a patch of
    the reference (every moved point lands on it); the reverse direction forbids that.
    """
    points, weights = reference

    def cost(matrix: np.ndarray, forward_rms: float, forward_weight: float) -> float:
        scale = float(np.cbrt(abs(np.linalg.det(matrix[:3, :3]))))
        if not scale > 0:
            return float("inf")
        # the distance to M(S) of a point x is scale · the distance to S of M⁻¹x
        back = moving.unsigned(_transform(points, np.linalg.inv(matrix))) * scale
        total = forward_rms**2 * forward_weight + np.dot(weights, back**2)
        return float(np.sqrt(total / (forward_weight + weights.sum())))

    return cost


def _icp(points, weights, fixed, start, scale, max_iterations, tolerance_mm, progress, share, cost=None):
    """ICP from ``start``; candidates are kept when ``cost`` (default: the one-sided RMS) improves."""
    weight = float(weights.sum())

    def evaluate(candidate):
        found, rms = _rms(fixed, points, weights, candidate)
        return found, rms, (rms if cost is None else cost(candidate, rms, weight))

    matrix = start.copy()
    face_normals = fixed.face_normals
    found, rms, value = evaluate(matrix)
    iteration = 0
    converged = False
    planes = False
    for iteration in range(1, max_iterations + 1):
        moved = _transform(points, matrix)
        if planes:
            step = _plane_step(moved, found, face_normals[found.triangle], weights, scale)
        else:
            step, _, _ = trimesh.registration.procrustes(
                moved, found.point, weights=weights, reflection=False, translation=True, scale=scale, return_cost=True
            )
        candidate = step @ matrix
        candidate_found, candidate_rms, candidate_value = evaluate(candidate)
        improvement = value - candidate_value
        if improvement > 0:
            matrix, found, rms, value = candidate, candidate_found, candidate_rms, candidate_value
        if planes and improvement < tolerance_mm:
            converged = True
            break
        # Point-to-point has reached its slow phase: finish with point-to-plane.
        planes = planes or improvement < _SLOW_PHASE * value
        report(progress, share[0] + share[1] * iteration / max_iterations, f"ICP iteration {iteration}, RMS {rms:.3f} mm")
    return matrix, rms, iteration, converged, value


def align_icp(
    points: np.ndarray,
    weights: np.ndarray,
    fixed: MeshDistance,
    *,
    mode: str = "rigid",
    moving: MeshDistance | None = None,
    reference_samples: tuple[np.ndarray, np.ndarray] | None = None,
    max_iterations: int = 60,
    tolerance_mm: float = 1e-6,
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
    moving : MeshDistance, optional
        The moving surface itself; with ``reference_samples``, required for 'similarity'.
    reference_samples : ((m, 3), (m,)) float, optional
        Reference surface samples and their areas. A similarity transform is judged by the
        RMS distance in both directions, so it cannot shrink the surface onto a patch of
        the reference (which drives a one-sided distance to zero).
    max_iterations : int
    tolerance_mm : float
        Switch from point-to-point to point-to-plane, then stop, when the RMS improves
        by less than this.

    Returns
    -------
    Alignment
    """
    if mode not in ALIGN_MODES:
        raise ValueError(f"mode must be one of {ALIGN_MODES}, got {mode!r}")
    if mode == "similarity" and (moving is None or reference_samples is None):
        raise ValueError("similarity alignment needs the moving surface and reference samples")
    points = np.asarray(points, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if len(points) > 2 * _ICP_SAMPLES:
        points, weights = _stratified(points, weights, _ICP_SAMPLES)
    cost = None
    if mode == "similarity":
        reference_points = np.asarray(reference_samples[0], dtype=np.float64)
        reference_weights = np.asarray(reference_samples[1], dtype=np.float64)
        if len(reference_points) > 2 * _ICP_SAMPLES:
            reference_points, reference_weights = _stratified(reference_points, reference_weights, _ICP_SAMPLES)
        cost = _symmetric_cost((reference_points, reference_weights), moving)
    before = fixed.closest(points)
    rms_before = float(np.sqrt(np.dot(weights, before.distance**2) / weights.sum()))
    centroid_shift = np.eye(4)
    centroid_shift[:3, 3] = np.average(before.point, axis=0, weights=weights) - np.average(points, axis=0, weights=weights)
    starts = {"as given": np.eye(4), "centroids matched": centroid_shift}
    best = None
    for number, (name, start) in enumerate(starts.items()):
        result = _icp(points, weights, fixed, start, mode == "similarity", max_iterations, tolerance_mm, progress,
                      (number / len(starts), 1 / len(starts)), cost)
        if best is None or result[4] < best[1][4]:
            best = (name, result)
    name, (matrix, rms, iterations, converged, _) = best
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
