"""Ground-truth views of a triangle mesh, in exactly the format the diffusion stage produces.

Data form: a :class:`trimesh.Trimesh` with vertices in the **model frame** (model units,
the box [−1, 1]³) in; :class:`~Wonder3DMedLib.views.MultiviewImages` (six views,
normal maps in the front-camera frame, mask = foreground) or per-view
:class:`ViewRaster` records out.

Rendering is exact orthographic ray casting through pixel centres, done as a
vectorised z-buffer rasteriser: a pixel sees a triangle when the pixel centre lies inside
the triangle's projection (barycentric coordinates ≥ −1e-9), and of those the one
nearest the camera. Orthographic projection is affine, so the barycentric coordinates
at the pixel centre are those of the ray's hit point and the interpolated depth is exact.

Used by the tests, the benchmark and the product's *oracle mode* (views of a reference
segmentation's surface, to measure how much error reconstruction alone adds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.progress import ProgressCallback, report
from Wonder3DMedLib.reconstruction.cameras import OrthoCamera, wonder3d_cameras
from Wonder3DMedLib.views import MultiviewImages

__all__ = ["SHADINGS", "LIGHT_DIRECTION", "ViewRaster", "rasterize", "procedural_albedo", "render_views"]

#: Normal shading modes: interpolated vertex normals or the flat triangle normals.
SHADINGS = ("smooth", "flat")

#: Direction towards the light of the colour images (model frame, fixed for all views so the
#: shading is part of the object's appearance and consistent between views).
LIGHT_DIRECTION = np.array([-0.3, 0.6, 0.75]) / np.linalg.norm([-0.3, 0.6, 0.75])

_INSIDE_TOLERANCE = 1e-9
_CANDIDATES_PER_CHUNK = 2_000_000


@dataclass(frozen=True, eq=False)
class ViewRaster:
    """What every pixel of one view sees.

    Attributes
    ----------
    face : (H, W) int64
        Index of the triangle hit first, −1 where the ray misses the mesh.
    barycentric : (H, W, 3) float64
        Barycentric coordinates of the hit point in that triangle (0 on misses).
    depth : (H, W) float64
        Ray depth of the hit (distance from the image plane along the ray, model units);
        ``inf`` on misses.
    points : (H, W, 3) float64
        Hit points in the model frame (NaN on misses).
    """

    face: np.ndarray
    barycentric: np.ndarray
    depth: np.ndarray
    points: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: pixels whose ray hits the mesh."""
        return self.face >= 0


def _power_of_two_bucket(extent: np.ndarray) -> np.ndarray:
    return np.left_shift(1, np.ceil(np.log2(np.maximum(extent, 1))).astype(np.int64))


def _fragments(tri: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    """Pixel centres covered by each projected triangle: (pixel, face, b1, b2, w) per fragment."""
    cols, rows = tri[:, :, 0], tri[:, :, 1]
    col_lo = np.maximum(np.ceil(cols.min(axis=1) - 1e-7), 0).astype(np.int64)
    col_hi = np.minimum(np.floor(cols.max(axis=1) + 1e-7), size - 1).astype(np.int64)
    row_lo = np.maximum(np.ceil(rows.min(axis=1) - 1e-7), 0).astype(np.int64)
    row_hi = np.minimum(np.floor(rows.max(axis=1) + 1e-7), size - 1).astype(np.int64)
    e1 = tri[:, 1, :2] - tri[:, 0, :2]
    e2 = tri[:, 2, :2] - tri[:, 0, :2]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    scale = np.maximum(np.abs(e1).sum(axis=1) * np.abs(e2).sum(axis=1), 1e-300)
    usable = (col_hi >= col_lo) & (row_hi >= row_lo) & (np.abs(det) > 1e-12 * scale)
    width = col_hi - col_lo + 1
    height = row_hi - row_lo + 1
    bucket_w, bucket_h = _power_of_two_bucket(width), _power_of_two_bucket(height)
    keys = bucket_w * (size * 4) + bucket_h
    out = []
    for key in np.unique(keys[usable]):
        faces = np.flatnonzero(usable & (keys == key))
        bw, bh = int(key // (size * 4)), int(key % (size * 4))
        offsets_c, offsets_r = np.meshgrid(np.arange(bw), np.arange(bh), indexing="xy")
        offsets_c, offsets_r = offsets_c.ravel(), offsets_r.ravel()
        step = max(1, _CANDIDATES_PER_CHUNK // (bw * bh))
        for start in range(0, len(faces), step):
            chunk = faces[start : start + step]
            c = col_lo[chunk, None] + offsets_c[None, :]
            r = row_lo[chunk, None] + offsets_r[None, :]
            inside_box = (c <= col_hi[chunk, None]) & (r <= row_hi[chunk, None])
            dx = c - tri[chunk, 0, 0, None]
            dy = r - tri[chunk, 0, 1, None]
            inv = 1.0 / det[chunk, None]
            b1 = (dx * e2[chunk, 1, None] - dy * e2[chunk, 0, None]) * inv
            b2 = (e1[chunk, 0, None] * dy - e1[chunk, 1, None] * dx) * inv
            b0 = 1.0 - b1 - b2
            hit = inside_box & (b0 >= -_INSIDE_TOLERANCE) & (b1 >= -_INSIDE_TOLERANCE) & (b2 >= -_INSIDE_TOLERANCE)
            face_index = np.broadcast_to(chunk[:, None], hit.shape)[hit]
            b1, b2 = b1[hit], b2[hit]
            w = tri[face_index, 0, 2] * (1.0 - b1 - b2) + tri[face_index, 1, 2] * b1 + tri[face_index, 2, 2] * b2
            out.append((r[hit] * size + c[hit], face_index, b1, b2, w))
    if not out:
        empty = np.zeros(0)
        return empty.astype(np.int64), empty.astype(np.int64), empty, empty, empty
    return tuple(np.concatenate(parts) for parts in zip(*out))


def _check_mesh(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    if len(vertices) == 0 or len(faces) == 0:
        raise InputError("the mesh to render is empty (no vertices or no triangles)")
    if not np.all(np.isfinite(vertices)):
        raise InputError("the mesh to render has non-finite vertex coordinates")
    return vertices, faces.reshape(-1, 3)


def rasterize(mesh: trimesh.Trimesh, camera: OrthoCamera, size: int) -> ViewRaster:
    """Cast the ray of every pixel centre of one view against a mesh.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Vertices in the model frame (model units).
    camera : OrthoCamera
        One of :func:`~Wonder3DMedLib.reconstruction.cameras.wonder3d_cameras`.
    size : int
        Side of the square view in pixels.

    Returns
    -------
    ViewRaster
    """
    vertices, faces = _check_mesh(mesh)
    projected = camera.project(vertices, size)
    pixel, face, b1, b2, w = _fragments(projected[faces], size)
    face_map = np.full(size * size, -1, dtype=np.int64)
    bary = np.zeros((size * size, 3))
    height = np.full(size * size, -np.inf)
    if len(pixel):
        order = np.lexsort((-w, pixel))
        pixel, face, b1, b2, w = pixel[order], face[order], b1[order], b2[order], w[order]
        first = np.ones(len(pixel), dtype=bool)
        first[1:] = pixel[1:] != pixel[:-1]
        pixel, face, b1, b2, w = pixel[first], face[first], b1[first], b2[first], w[first]
        face_map[pixel] = face
        bary[pixel] = np.stack([1.0 - b1 - b2, b1, b2], axis=1)
        height[pixel] = w
    face_map = face_map.reshape(size, size)
    bary = bary.reshape(size, size, 3)
    depth = camera.distance - height.reshape(size, size) * (2.0 / size)
    points = np.full((size, size, 3), np.nan)
    hit = face_map >= 0
    points[hit] = np.einsum("nk,nkd->nd", bary[hit], vertices[faces[face_map[hit]]])
    return ViewRaster(face=face_map, barycentric=bary, depth=depth, points=points)


def procedural_albedo(points: np.ndarray) -> np.ndarray:
    """A smooth, tissue-like colour that varies over the surface (model-frame positions in).

    Parameters
    ----------
    points : (n, 3) float — model frame

    Returns
    -------
    (n, 3) float64 in [0, 1]
    """
    points = np.asarray(points, dtype=np.float64)
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    red = 0.78 + 0.12 * np.sin(3.1 * x + 1.3 * z + 0.4)
    green = 0.42 + 0.12 * np.sin(2.7 * y - 1.9 * z + 1.1)
    blue = 0.38 + 0.10 * np.sin(2.3 * z + 1.7 * x - 0.6) * np.cos(1.9 * y)
    return np.clip(np.stack([red, green, blue], axis=1), 0.0, 1.0)


def _surface_colors(mesh: trimesh.Trimesh, raster: ViewRaster, normals: np.ndarray, faces: np.ndarray) -> np.ndarray:
    hit = raster.mask
    kind = mesh.visual.kind
    if kind == "vertex":
        vertex_colors = np.asarray(mesh.visual.vertex_colors, dtype=np.float64)[:, :3] / 255.0
        corner = vertex_colors[faces[raster.face[hit]]]
        return np.einsum("nk,nkd->nd", raster.barycentric[hit], corner)
    if kind == "face":
        return np.asarray(mesh.visual.face_colors, dtype=np.float64)[raster.face[hit], :3] / 255.0
    albedo = procedural_albedo(raster.points[hit])
    lambert = np.clip(normals @ LIGHT_DIRECTION, 0.0, None)
    return albedo * (0.35 + 0.65 * lambert)[:, None]


def render_views(
    mesh: trimesh.Trimesh,
    *,
    size: int = 256,
    shading: str = "smooth",
    source: str = "oracle",
    description: str = "",
    progress: ProgressCallback | None = None,
) -> MultiviewImages:
    """Render the six Wonder3D views of a mesh: normal maps, colour images, masks.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Closed or open triangle mesh, vertices in the model frame (the box [−1, 1]³).
        Per-vertex or per-face colours are used for the colour images when present;
        otherwise :func:`procedural_albedo` × Lambert shading from :data:`LIGHT_DIRECTION`.
    size : int
        Side of the square views in pixels (any resolution).
    shading : {'smooth', 'flat'}
        Normals interpolated from the vertex normals (like a smooth-shaded render) or the
        triangles' own normals.
    source : {'oracle', 'diffusion', 'files'}
        Recorded in the views (rendered views of a reference surface are 'oracle').
    description : str
        One line recorded with the views.
    progress : callable, optional
        ``progress(fraction, message)``; may raise ``Cancelled``.

    Returns
    -------
    MultiviewImages
        Normals RGB-encoded in the front-camera (model) frame, oriented towards the
        camera that sees them; background white in both images; masks = ray hits.
    """
    if shading not in SHADINGS:
        raise ValueError(f"shading must be one of {SHADINGS}, got {shading!r}")
    if int(size) != size or size < 2:
        raise ValueError(f"size must be an integer of at least 2 pixels, got {size!r}")
    vertices, faces = _check_mesh(mesh)
    face_normals = np.asarray(mesh.face_normals, dtype=np.float64)
    vertex_normals = np.asarray(mesh.vertex_normals, dtype=np.float64) if shading == "smooth" else None
    normal_maps = np.ones((6, size, size, 3), dtype=np.float32)
    color_maps = np.ones((6, size, size, 3), dtype=np.float32)
    masks = np.zeros((6, size, size), dtype=bool)
    for index, camera in enumerate(wonder3d_cameras()):
        report(progress, index / 6.0, f"rendering view {camera.name}")
        raster = rasterize(mesh, camera, size)
        hit = raster.mask
        hit_faces = raster.face[hit]
        facing = np.where(face_normals[hit_faces] @ camera.direction > 0.0, -1.0, 1.0)
        if vertex_normals is None:
            normals = face_normals[hit_faces]
        else:
            normals = np.einsum("nk,nkd->nd", raster.barycentric[hit], vertex_normals[faces[hit_faces]])
        lengths = np.linalg.norm(normals, axis=1, keepdims=True)
        normals = np.divide(normals, lengths, out=face_normals[hit_faces].copy(), where=lengths > 1e-12)
        normals *= facing[:, None]
        normal_maps[index][hit] = normals
        color_maps[index][hit] = _surface_colors(mesh, raster, normals, faces)
        masks[index] = hit
    report(progress, 1.0, "views rendered")
    return MultiviewImages.from_normal_vectors(normal_maps, color_maps, masks, source=source, description=description)
