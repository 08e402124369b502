"""Volumes, centroids and volumetric overlap of closed surfaces, in millimetres.

Data form: closed :class:`trimesh.Trimesh` surfaces in RAS mm, and boolean masks
``(K, J, I)`` on a voxel grid given by a :class:`~Wonder3DMedLib.imaging.io.Volume`.

- Volume (mm³): the divergence theorem over the triangles, exact for the closed mesh.
- Centroid (RAS mm): of the enclosed solid, from the same signed tetrahedra.
- Voxelisation (:func:`voxelize`): a voxel is inside when its centre is, by the even–odd
  rule along rays parallel to the grid's k axis, cast in index space so that spacing and
  direction are exact. Rays are offset by ~10⁻⁵ voxel so that they never graze the
  vertices and edges that a mesh from the same grid has exactly on grid lines.
- Dice = 2|P ∩ R| / (|P| + |R|) and IoU = |P ∩ R| / |P ∪ R| over voxel centres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from Wonder3DMedLib.imaging.io import Volume

__all__ = [
    "DEFAULT_GRID_VOXELS",
    "mesh_volume",
    "solid_centroid",
    "volume_and_centroid",
    "surface_centroid",
    "voxelize",
    "overlap_grid",
    "Overlap",
    "overlap",
]

#: Voxels of the grid built over two meshes for their Dice and IoU.
DEFAULT_GRID_VOXELS = 8_000_000
# Ray offsets in voxels (i, j): tiny, and irrational in ratio to each other.
_RAY_OFFSET = (1.17e-5 * np.sqrt(2.0), 1.03e-5 * np.sqrt(3.0))
# Lattice points tested per batch while voxelising.
_BATCH = 2_000_000


def _signed_tetrahedra(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    corners = np.asarray(mesh.vertices, dtype=np.float64)[np.asarray(mesh.faces, dtype=np.int64)]
    volumes = np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])) / 6.0
    return volumes, corners.sum(axis=1) / 4.0


def mesh_volume(mesh: trimesh.Trimesh) -> float:
    """Enclosed volume (mm³) of a closed mesh; positive when its faces are wound outwards."""
    if len(mesh.faces) == 0:
        return 0.0
    return float(_signed_tetrahedra(mesh)[0].sum())


def solid_centroid(mesh: trimesh.Trimesh) -> np.ndarray:
    """(3,) centroid of the solid enclosed by a closed mesh (RAS mm); NaN if it has no volume."""
    return volume_and_centroid(mesh)[1]


def volume_and_centroid(mesh: trimesh.Trimesh) -> tuple[float, np.ndarray]:
    """Enclosed volume (mm³) and solid centroid (RAS mm) of a closed mesh, in one pass."""
    if len(mesh.faces) == 0:
        return 0.0, np.full(3, np.nan)
    volumes, centres = _signed_tetrahedra(mesh)
    total = float(volumes.sum())
    if total == 0:
        return 0.0, np.full(3, np.nan)
    return total, volumes @ centres / total


def surface_centroid(mesh: trimesh.Trimesh) -> np.ndarray:
    """(3,) area-weighted centroid of the surface itself (RAS mm); NaN if it has no area."""
    if len(mesh.faces) == 0 or mesh.area <= 0:
        return np.full(3, np.nan)
    return np.asarray(mesh.triangles_center).T @ mesh.area_faces / mesh.area


def _lattice_hits(ij: np.ndarray, k: np.ndarray, shape_ji: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where rays through lattice points (i + δi, j + δj) cross the triangles.

    Parameters
    ----------
    ij : (t, 3, 2) float
        Triangle corners projected on the (i, j) plane, index units.
    k : (t, 3) float
        Their k index coordinates.

    Returns
    -------
    i, j : (h,) int64
        Lattice point of each crossing (inside the grid).
    k_cross : (h,) float64
        k coordinate of the crossing.
    """
    offset = np.asarray(_RAY_OFFSET)
    low = np.ceil(ij.min(axis=1) - offset).astype(np.int64)
    high = np.floor(ij.max(axis=1) - offset).astype(np.int64)
    low = np.maximum(low, 0)
    high = np.minimum(high, np.array([shape_ji[1] - 1, shape_ji[0] - 1]))
    span = np.maximum(high - low + 1, 0)
    counts = span[:, 0] * span[:, 1]
    found_i, found_j, found_k = [], [], []
    triangle_ids = np.flatnonzero(counts)
    # Batches of triangles so that the lattice points of one batch stay bounded.
    cumulative = np.cumsum(counts[triangle_ids])
    cuts = np.searchsorted(cumulative, np.arange(_BATCH, cumulative[-1] if len(cumulative) else 0, _BATCH))
    for group in np.split(triangle_ids, cuts):
        if len(group) == 0:
            continue
        per = counts[group]
        owner = np.repeat(group, per)
        rank = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
        width = span[owner, 0]
        pi = low[owner, 0] + rank % width
        pj = low[owner, 1] + rank // width
        x = pi + offset[0]
        y = pj + offset[1]
        a, b, c = ij[owner, 0], ij[owner, 1], ij[owner, 2]
        # Barycentric coordinates of the lattice point in the projected triangle.
        denominator = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
        usable = denominator != 0
        safe = np.where(usable, denominator, 1.0)
        wa = ((b[:, 1] - c[:, 1]) * (x - c[:, 0]) + (c[:, 0] - b[:, 0]) * (y - c[:, 1])) / safe
        wb = ((c[:, 1] - a[:, 1]) * (x - c[:, 0]) + (a[:, 0] - c[:, 0]) * (y - c[:, 1])) / safe
        wc = 1.0 - wa - wb
        hit = usable & (wa >= 0) & (wb >= 0) & (wc >= 0)
        kk = k[owner]
        found_i.append(pi[hit])
        found_j.append(pj[hit])
        found_k.append((wa * kk[:, 0] + wb * kk[:, 1] + wc * kk[:, 2])[hit])
    if not found_i:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0)
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_k)


def voxelize(mesh: trimesh.Trimesh, grid: Volume) -> np.ndarray:
    """Voxels of ``grid`` whose centres lie inside a closed mesh.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Closed surface, RAS mm (winding does not matter).
    grid : Volume
        The voxel grid (only its shape and ``ijk_to_ras`` are used).

    Returns
    -------
    (K, J, I) bool
    """
    shape = grid.array.shape
    inside = np.zeros(shape, dtype=bool)
    if len(mesh.faces) == 0:
        return inside
    ijk = grid.ras_to_ijk_points(np.asarray(mesh.vertices, dtype=np.float64))
    corners = ijk[np.asarray(mesh.faces, dtype=np.int64)]
    pi, pj, kc = _lattice_hits(corners[:, :, :2], corners[:, :, 2], shape[1:])
    if len(pi) == 0:
        return inside
    # A crossing at k flips every voxel centre above it in its column.
    first = np.clip(np.ceil(kc), 0, shape[0]).astype(np.int64)
    keep = first < shape[0]
    flat = (first[keep] * shape[1] + pj[keep]) * shape[2] + pi[keep]
    cells, counts = np.unique(flat, return_counts=True)
    flips = np.zeros(shape, dtype=np.uint8)
    flips.reshape(-1)[cells] = counts & 1
    np.cumsum(flips, axis=0, dtype=np.uint8, out=flips)
    return (flips & 1).astype(bool)


def overlap_grid(meshes: list[trimesh.Trimesh], *, voxels: int = DEFAULT_GRID_VOXELS) -> Volume:
    """An axis-aligned RAS grid of about ``voxels`` isotropic voxels around all meshes (2-voxel margin)."""
    points = np.concatenate([np.asarray(m.vertices, dtype=np.float64) for m in meshes if len(m.vertices)])
    low, high = points.min(axis=0), points.max(axis=0)
    spacing = float(np.cbrt(np.prod(np.maximum(high - low, 1e-6)) / voxels))
    spacing = max(spacing, 1e-3 * float(np.max(high - low)))
    shape_ijk = np.ceil((high - low) / spacing).astype(np.int64) + 5
    matrix = np.eye(4)
    matrix[:3, :3] *= spacing
    matrix[:3, 3] = low - 2 * spacing
    return Volume(np.zeros(shape_ijk[::-1], dtype=bool), matrix)


@dataclass(frozen=True)
class Overlap:
    """Volumetric overlap of two masks on one grid."""

    dice: float
    iou: float
    intersection_mm3: float
    prediction_mm3: float
    reference_mm3: float


def overlap(prediction: np.ndarray, reference: np.ndarray, *, voxel_mm3: float) -> Overlap:
    """Dice and IoU of two masks on the same grid (NaN when both are empty)."""
    intersection = int(np.count_nonzero(prediction & reference))
    a, b = int(np.count_nonzero(prediction)), int(np.count_nonzero(reference))
    union = a + b - intersection
    dice = 2.0 * intersection / (a + b) if a + b else float("nan")
    iou = intersection / union if union else float("nan")
    return Overlap(dice, iou, intersection * voxel_mm3, a * voxel_mm3, b * voxel_mm3)
