"""Analytic shapes with exact answers, for the metrics tests and benchmark.

Spheres, axis-aligned ellipsoids and tori in RAS mm: area-weighted dense samples of the
true surfaces, exact point-to-surface distances (bisection for ellipsoids), masks on any
voxel grid (voxel centres inside), triangle meshes, and the true overlap volume of two
shapes by integrating along z exactly (every shape here meets a line along z in one
interval, or two for a torus).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from Wonder3DMedLib.imaging.io import Volume

__all__ = ["Ellipsoid", "Torus", "grid_volume", "voxel_centres", "mask_on", "truth_metrics", "true_dice"]


def _fibonacci_sphere(count: int) -> np.ndarray:
    """(count, 3) nearly uniform points on the unit sphere (equal areas)."""
    index = np.arange(count) + 0.5
    z = 1.0 - 2.0 * index / count
    radius = np.sqrt(1.0 - z * z)
    angle = np.pi * (3.0 - np.sqrt(5.0)) * index
    return np.column_stack([radius * np.cos(angle), radius * np.sin(angle), z])


@dataclass(frozen=True)
class Ellipsoid:
    """Axis-aligned ellipsoid (a sphere when the semi-axes are equal), RAS mm."""

    axes: tuple[float, float, float]
    centre: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def volume(self) -> float:
        return 4.0 / 3.0 * np.pi * float(np.prod(self.axes))

    def inside(self, points: np.ndarray) -> np.ndarray:
        relative = (np.asarray(points) - self.centre) / self.axes
        return np.einsum("...i,...i->...", relative, relative) <= 1.0

    def samples(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Dense surface samples and their areas (mm²): the unit sphere's equal-area points
        mapped onto the ellipsoid, weighted by the area stretch."""
        unit = _fibonacci_sphere(count)
        a, b, c = self.axes
        stretch = np.sqrt((b * c * unit[:, 0]) ** 2 + (a * c * unit[:, 1]) ** 2 + (a * b * unit[:, 2]) ** 2)
        return unit * self.axes + self.centre, stretch * (4.0 * np.pi / count)

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Exact unsigned distance to the surface (closest point by bisection on the Lagrange parameter)."""
        p = np.abs(np.asarray(points, dtype=np.float64) - self.centre)
        axes = np.asarray(self.axes, dtype=np.float64)
        if np.allclose(axes, axes[0]):
            return np.abs(np.linalg.norm(p, axis=1) - axes[0])
        squared = axes**2
        # The closest point is x_i = a_i² p_i / (a_i² + t) with F(t) = Σ (a_i p_i / (a_i² + t))² = 1;
        # F decreases on (−min a_i², ∞).
        p = np.maximum(p, 1e-12)
        low = np.full(len(p), -squared.min() + 1e-12)
        high = np.full(len(p), np.linalg.norm(p * axes, axis=1).max() + 1.0)
        for _ in range(64):
            middle = 0.5 * (low + high)
            value = np.sum((axes * p / (squared + middle[:, None])) ** 2, axis=1) - 1.0
            low = np.where(value > 0, middle, low)
            high = np.where(value > 0, high, middle)
        t = 0.5 * (low + high)
        closest = squared * p / (squared + t[:, None])
        return np.linalg.norm(p - closest, axis=1)

    def z_interval(self, x: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        a, b, c = self.axes
        u = 1.0 - ((x - self.centre[0]) / a) ** 2 - ((y - self.centre[1]) / b) ** 2
        half = c * np.sqrt(np.maximum(u, 0.0))
        half = np.where(u > 0, half, np.nan)
        return [(self.centre[2] - half, self.centre[2] + half)]

    def mesh(self, subdivisions: int = 6) -> trimesh.Trimesh:
        sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
        return trimesh.Trimesh(sphere.vertices * self.axes + self.centre, sphere.faces, process=False)


@dataclass(frozen=True)
class Torus:
    """Torus around the z axis through ``centre``: major radius R, tube radius r (mm)."""

    major: float
    minor: float
    centre: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def volume(self) -> float:
        return 2.0 * np.pi**2 * self.major * self.minor**2

    def _radial(self, points):
        p = np.asarray(points, dtype=np.float64) - self.centre
        return np.sqrt(p[..., 0] ** 2 + p[..., 1] ** 2), p[..., 2]

    def inside(self, points: np.ndarray) -> np.ndarray:
        rho, z = self._radial(points)
        return (rho - self.major) ** 2 + z**2 <= self.minor**2

    def distance(self, points: np.ndarray) -> np.ndarray:
        rho, z = self._radial(points)
        return np.abs(np.sqrt((rho - self.major) ** 2 + z**2) - self.minor)

    def samples(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        ring = int(np.sqrt(count * self.major / self.minor))
        tube = max(8, count // ring)
        u = (np.arange(ring) + 0.5) * 2 * np.pi / ring
        v = (np.arange(tube) + 0.5) * 2 * np.pi / tube
        u, v = np.meshgrid(u, v, indexing="ij")
        radius = self.major + self.minor * np.cos(v)
        points = np.stack([radius * np.cos(u), radius * np.sin(u), self.minor * np.sin(v)], axis=-1).reshape(-1, 3)
        weights = (self.minor * radius * (2 * np.pi / ring) * (2 * np.pi / tube)).ravel()
        return points + self.centre, weights

    def z_interval(self, x, y):
        rho = np.sqrt((x - self.centre[0]) ** 2 + (y - self.centre[1]) ** 2)
        u = self.minor**2 - (rho - self.major) ** 2
        half = np.where(u > 0, np.sqrt(np.maximum(u, 0.0)), np.nan)
        return [(self.centre[2] - half, self.centre[2] + half)]

    def mesh(self, sections: int = 256) -> trimesh.Trimesh:
        mesh = trimesh.creation.torus(self.major, self.minor, major_sections=sections, minor_sections=sections // 4)
        mesh.apply_translation(self.centre)
        return mesh


def grid_volume(shape_kji: tuple[int, int, int], spacing_ijk, *, rotation=None, centre=(0.0, 0.0, 0.0)) -> Volume:
    """An empty grid of the given shape whose middle sits at ``centre`` (RAS mm), optionally rotated."""
    spacing = np.asarray(spacing_ijk, dtype=np.float64)
    axes = (np.eye(3) if rotation is None else np.asarray(rotation)) @ np.diag(spacing)
    middle = (np.array(shape_kji[::-1]) - 1) / 2.0
    matrix = np.eye(4)
    matrix[:3, :3] = axes
    matrix[:3, 3] = np.asarray(centre) - axes @ middle
    return Volume(np.zeros(shape_kji, dtype=bool), matrix)


def voxel_centres(grid: Volume) -> np.ndarray:
    """(K, J, I, 3) RAS mm of every voxel centre."""
    k, j, i = np.meshgrid(*[np.arange(n) for n in grid.array.shape], indexing="ij")
    return grid.ijk_to_ras_points(np.stack([i, j, k], axis=-1).reshape(-1, 3)).reshape(*grid.array.shape, 3)


def mask_on(grid: Volume, shape) -> Volume:
    """The shape's mask (voxel centres inside) on ``grid``."""
    return Volume(shape.inside(voxel_centres(grid)), grid.ijk_to_ras)


def truth_metrics(prediction, reference, *, samples: int = 400_000, tolerances=(1.0, 2.0)) -> dict:
    """The metrics of the continuous shapes, from dense exact samples (same definitions as the library)."""
    from Wonder3DMedLib.metrics.surface import DirectedDistances, surface_distance_metrics

    pred_points, pred_weights = prediction.samples(samples)
    ref_points, ref_weights = reference.samples(samples)
    metrics = surface_distance_metrics(
        DirectedDistances(reference.distance(pred_points), pred_weights),
        DirectedDistances(prediction.distance(ref_points), ref_weights),
        tolerances_mm=tolerances,
    )
    return metrics.__dict__


def true_dice(a, b, *, step: float = 0.05) -> float:
    """Exact-in-z, midpoint-in-(x, y) overlap Dice of two shapes (step in mm)."""
    lows, highs = [], []
    for shape in (a, b):
        points, _ = shape.samples(20_000)
        lows.append(points.min(axis=0))
        highs.append(points.max(axis=0))
    low, high = np.minimum(*lows) - 1, np.maximum(*highs) + 1
    x = np.arange(low[0], high[0], step) + step / 2
    y = np.arange(low[1], high[1], step) + step / 2
    x, y = np.meshgrid(x, y, indexing="ij")

    def length(intervals):
        return sum(np.nan_to_num(top - bottom) for bottom, top in intervals)

    ia, ib = a.z_interval(x, y), b.z_interval(x, y)
    common = 0.0
    for bottom_a, top_a in ia:
        for bottom_b, top_b in ib:
            common = common + np.nan_to_num(np.maximum(np.minimum(top_a, top_b) - np.maximum(bottom_a, bottom_b), 0.0))
    cell = step * step
    return float(2.0 * common.sum() * cell / ((length(ia).sum() + length(ib).sum()) * cell))
