"""Signed distance field -> one closed, cleaned, outward-wound, coloured mesh in the model frame.

Data form: an :class:`SDFGrid` (regular samples, model units, negative inside) or an
:data:`SDFFunction` (points ``(n, 3)`` -> values ``(n,)``) over the box [−1, 1]³ of the model
frame, in; a :class:`trimesh.Trimesh` with vertices in the model frame out.

Steps (:func:`extract_mesh`): sample a function on a grid (optionally a second, finer pass
over the first surface's bounding box, as the original Wonder3D export does); pad the grid
with outside values so marching cubes (scikit-image) always closes the surface; keep the
largest connected piece; optional Taubin smoothing (volume-preserving) and quadric
decimation (fast-simplification), undone if it would open the surface; wind faces outwards.
:func:`color_vertices` blends the colour views into vertex colours by visibility.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import trimesh

from Wonder3DMedLib.errors import Wonder3DMedError
from Wonder3DMedLib.progress import ProgressCallback, report
from Wonder3DMedLib.reconstruction.cameras import BOX_HALF_SIZE, view_weights, wonder3d_cameras
from Wonder3DMedLib.views import MultiviewImages

__all__ = ["SDFFunction", "SDFGrid", "sample_sdf", "extract_mesh", "color_vertices"]

#: A signed distance function of the model frame: ``(n, 3)`` float points -> ``(n,)`` values, negative inside.
SDFFunction = Callable[[np.ndarray], np.ndarray]

_PAD_VALUE = 1.0  # model units, far outside
_CHUNK = 262_144


@dataclass(frozen=True, eq=False)
class SDFGrid:
    """Signed distances sampled on a regular grid of the model frame.

    Attributes
    ----------
    values : (nx, ny, nz) float32
        Signed distance in model units, **negative inside**; ``values[i, j, k]`` is at
        ``origin + (i, j, k) · spacing``.
    origin : (3,) float64
        Model-frame position of ``values[0, 0, 0]``.
    spacing : float
        Distance between neighbouring samples (model units).
    """

    values: np.ndarray
    origin: np.ndarray
    spacing: float

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float32)
        if values.ndim != 3 or min(values.shape) < 2:
            raise ValueError(f"SDF values must be a 3-D grid of at least 2 samples per axis, got shape {values.shape}")
        if not (np.isfinite(self.spacing) and self.spacing > 0):
            raise ValueError(f"spacing must be a positive number, got {self.spacing}")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "origin", np.asarray(self.origin, dtype=np.float64).reshape(3))

    @property
    def upper(self) -> np.ndarray:
        """(3,): model-frame position of the last sample."""
        return self.origin + (np.asarray(self.values.shape) - 1) * self.spacing


def sample_sdf(
    function: SDFFunction,
    *,
    resolution: int = 192,
    lower: np.ndarray | tuple = (-BOX_HALF_SIZE,) * 3,
    upper: np.ndarray | tuple = (BOX_HALF_SIZE,) * 3,
    progress: ProgressCallback | None = None,
) -> SDFGrid:
    """Sample a signed distance function at the cell centres of a ``resolution``-cell grid over a box.

    The box is split into cubic cells (``resolution`` along its longest side); chunks of
    points are evaluated in order.
    """
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    spacing = float(np.max(upper - lower)) / resolution
    counts = np.maximum(np.ceil((upper - lower) / spacing - 1e-9).astype(int), 2)
    origin = (lower + upper) / 2.0 - (counts - 1) * spacing / 2.0
    axes = [origin[d] + np.arange(counts[d]) * spacing for d in range(3)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    values = np.empty(len(points), dtype=np.float32)
    for start in range(0, len(points), _CHUNK):
        report(progress, start / len(points), "evaluating the signed distance")
        chunk = np.asarray(function(points[start : start + _CHUNK]), dtype=np.float32).reshape(-1)
        if len(chunk) != min(_CHUNK, len(points) - start):
            raise ValueError(f"the SDF function returned {len(chunk)} values for {min(_CHUNK, len(points) - start)} points")
        values[start : start + _CHUNK] = chunk
    return SDFGrid(values.reshape(tuple(counts)), origin, spacing)


def _marching_cubes(grid: SDFGrid) -> trimesh.Trimesh:
    from skimage.measure import marching_cubes

    values = np.nan_to_num(grid.values, nan=_PAD_VALUE, posinf=_PAD_VALUE, neginf=-_PAD_VALUE)
    # A sample exactly on the level puts a vertex on a grid node shared by several cubes, which
    # makes non-manifold edges once duplicate vertices are merged; move such samples outside.
    values = np.where(np.abs(values) < 1e-7, np.float32(1e-7), values)
    padded = np.pad(values, 1, constant_values=max(_PAD_VALUE, float(values.max())))
    if padded.min() >= 0.0:
        raise Wonder3DMedError(
            "the reconstruction is empty: no point of the box is inside the surface",
            hint="check that the views show an object (non-empty masks) and that its normal maps face the cameras",
        )
    spacing = (grid.spacing,) * 3
    vertices, faces, _, _ = marching_cubes(padded, level=0.0, spacing=spacing, allow_degenerate=False)
    vertices += grid.origin - grid.spacing
    return trimesh.Trimesh(vertices, faces, process=True)


def _largest_piece(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    counts = np.bincount(labels)
    if len(counts) <= 1:
        return mesh
    keep = labels == int(np.argmax(counts))
    piece = mesh.submesh([np.flatnonzero(keep)], append=True)
    piece.remove_unreferenced_vertices()
    return piece


def _decimate(mesh: trimesh.Trimesh, target_faces: int) -> trimesh.Trimesh:
    import fast_simplification

    if len(mesh.faces) <= target_faces:
        return mesh
    vertices, faces = fast_simplification.simplify(
        np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int32), target_count=target_faces
    )
    decimated = trimesh.Trimesh(vertices, faces, process=True)
    return decimated if decimated.is_watertight else mesh


def extract_mesh(
    sdf: SDFGrid | SDFFunction,
    *,
    resolution: int = 192,
    refine: bool = False,
    smoothing_iterations: int = 0,
    target_faces: int | None = None,
    keep_largest: bool = True,
    progress: ProgressCallback | None = None,
) -> trimesh.Trimesh:
    """Closed mesh of the zero level set, in the model frame.

    Parameters
    ----------
    sdf : SDFGrid or SDFFunction
        Negative inside, model units, over the box [−1, 1]³.
    resolution : int
        Grid size for sampling a function (ignored for a grid).
    refine : bool
        For a function only: sample again at ``resolution`` over the first surface's
        bounding box enlarged by 10 % (the original's two-pass export), then re-extract.
    smoothing_iterations : int
        Taubin smoothing passes (0: none).
    target_faces : int, optional
        Decimate to about this many triangles (kept only if the result stays closed).
    keep_largest : bool
        Keep only the largest connected piece.

    Returns
    -------
    trimesh.Trimesh
        Watertight, outward winding (positive volume), vertices in the model frame.

    Raises
    ------
    Wonder3DMedError
        The field has no inside.
    """
    if int(resolution) != resolution or resolution < 8:
        raise ValueError(f"resolution must be an integer of at least 8, got {resolution!r}")
    grid = sdf if isinstance(sdf, SDFGrid) else sample_sdf(sdf, resolution=resolution, progress=progress)
    report(progress, 0.6, "marching cubes")
    mesh = _marching_cubes(grid)
    if refine and not isinstance(sdf, SDFGrid):
        lower, upper = mesh.bounds
        margin = 0.05 * (upper - lower)
        grid = sample_sdf(sdf, resolution=resolution, lower=lower - margin, upper=upper + margin)
        mesh = _marching_cubes(grid)
    if keep_largest:
        mesh = _largest_piece(mesh)
    if smoothing_iterations > 0:
        report(progress, 0.8, "smoothing")
        trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=0.53, iterations=int(smoothing_iterations))
    if target_faces is not None:
        mesh = _decimate(mesh, int(target_faces))
    if mesh.volume < 0:
        mesh.invert()
    report(progress, 1.0, f"mesh with {len(mesh.faces)} triangles")
    return mesh


def color_vertices(
    mesh: trimesh.Trimesh,
    views: MultiviewImages,
    *,
    visibility_tolerance_px: float = 1.5,
    progress: ProgressCallback | None = None,
) -> trimesh.Trimesh:
    """Vertex colours blended from the colour views where each vertex is visible.

    A vertex is visible in a view when its ray depth is within ``visibility_tolerance_px``
    of the depth the mesh itself shows at that pixel. Its colour is the average of the
    bilinearly sampled colour images, weighted by ``max(0, n·v)²`` (how squarely the view sees it)
    times the view's Wonder3D weight; vertices seen by no view take the colour of the
    nearest coloured vertex.

    Returns
    -------
    trimesh.Trimesh
        A copy with ``visual.vertex_colors`` set.
    """
    from scipy.spatial import cKDTree

    from Wonder3DMedLib.reconstruction._images import bilinear
    from Wonder3DMedLib.reconstruction.render import rasterize

    size = views.size
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    normals = np.asarray(mesh.vertex_normals, dtype=np.float64)
    total = np.zeros((len(vertices), 3))
    weight_sum = np.zeros(len(vertices))
    tolerance = visibility_tolerance_px * 2.0 / size
    for index, (camera, view_weight) in enumerate(zip(wonder3d_cameras(), view_weights())):
        report(progress, index / 6.0, f"colouring from view {camera.name}")
        raster = rasterize(mesh, camera, size)
        projected = camera.project(vertices, size)
        depth = camera.ray_depth(vertices)
        col, row = projected[:, 0], projected[:, 1]
        nearest_r = np.clip(np.rint(row).astype(np.intp), 0, size - 1)
        nearest_c = np.clip(np.rint(col).astype(np.intp), 0, size - 1)
        visible = np.abs(raster.depth[nearest_r, nearest_c] - depth) < tolerance
        visible &= views.masks[index][nearest_r, nearest_c]
        weight = np.clip(normals @ -camera.direction, 0.0, None) ** 2 * view_weight * visible
        colour = np.stack([bilinear(views.colors[index, ..., c], row, col, fill=1.0) for c in range(3)], axis=1)
        total += weight[:, None] * colour
        weight_sum += weight
    coloured = weight_sum > 1e-9
    colours = np.full((len(vertices), 3), 0.8)
    colours[coloured] = total[coloured] / weight_sum[coloured, None]
    if coloured.any() and not coloured.all():
        _, nearest = cKDTree(vertices[coloured]).query(vertices[~coloured])
        colours[~coloured] = colours[coloured][nearest]
    result = mesh.copy()
    rgba = np.concatenate([np.clip(np.rint(colours * 255), 0, 255), np.full((len(vertices), 1), 255)], axis=1)
    result.visual.vertex_colors = rgba.astype(np.uint8)
    report(progress, 1.0, "coloured")
    return result
