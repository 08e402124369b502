"""Reference shapes in the model frame: framing a mesh like the product frames its input, and test shapes.

Data form: :class:`trimesh.Trimesh`; :func:`frame_mesh` takes any units and returns the
model frame (the box [−1, 1]³, front camera axes).

**Normalisation.** The product frames the object so that its longer side in the front
image is 192 of 256 pixels (Wonder3D's inference crop, ``imaging.framing.WONDER3D_CROP_SIZE``),
centred. :func:`frame_mesh` does the same in 3D: it centres the mesh's bounding box at the
origin and scales it so that the longer side of its front-view silhouette (its x or y
extent) spans ``192/256`` of the image, i.e. 1.5 model units. If that would push any of the
six views' silhouettes or the depth extent past ``max_extent`` (default 1.9 of the box's 2
units) the scale is reduced to fit, so no view is clipped. Wonder3D's *training* renders
were normalised differently (bounding-box diagonal 1 with an orthographic image 1.35 wide,
i.e. a diagonal of 2/1.35 ≈ 1.48 model units); :func:`frame_mesh` with
``mode='training'`` reproduces that for comparison.
"""

from __future__ import annotations

import numpy as np
import trimesh

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.imaging.framing import WONDER3D_CROP_SIZE
from Wonder3DMedLib.model_frame import MODEL_IMAGE_SIZE
from Wonder3DMedLib.reconstruction.cameras import ORTHO_SCALE, wonder3d_cameras

__all__ = [
    "FRAMING_MODES",
    "FRONT_FILL",
    "frame_mesh",
    "sphere",
    "torus",
    "bumpy_blob",
    "label_surface",
]

#: How :func:`frame_mesh` sizes a shape: like the product's input framing, or like Wonder3D's training renders.
FRAMING_MODES = ("product", "training")

#: Fraction of the front image spanned by the object's longer side in the product's framing.
FRONT_FILL = WONDER3D_CROP_SIZE / MODEL_IMAGE_SIZE


def _view_extents(vertices: np.ndarray) -> np.ndarray:
    """Width and height of the silhouette in each view, and the depth extent, in model units."""
    extents = [np.ptp(vertices[:, 1])]
    for camera in wonder3d_cameras():
        local = vertices @ camera.rotation.T
        extents.append(np.ptp(local[:, 0]))
        extents.append(np.ptp(local[:, 2]))
    return np.asarray(extents)


def frame_mesh(
    mesh: trimesh.Trimesh,
    *,
    rotation: np.ndarray | None = None,
    mode: str = "product",
    front_fill: float = FRONT_FILL,
    max_extent: float = 1.9,
) -> trimesh.Trimesh:
    """Place a mesh in the model frame the way the product frames objects (see module docstring).

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Any units and position.
    rotation : (3, 3) float, optional
        Rotation applied first, taking the mesh's axes to the model frame's (which way the
        front camera looks at it). Identity when omitted.
    mode : {'product', 'training'}
        ``'product'``: front-silhouette longer side = ``front_fill`` of the image.
        ``'training'``: bounding-box diagonal = 2 / 1.35 model units (Wonder3D's renders).
    front_fill : float
        Fraction of the image the front silhouette's longer side spans in 'product' mode.
    max_extent : float
        Largest silhouette side or depth extent allowed in any view (model units).

    Returns
    -------
    trimesh.Trimesh
        A new mesh in the model frame, bounding box centred at the origin.
    """
    if mode not in FRAMING_MODES:
        raise ValueError(f"mode must be one of {FRAMING_MODES}, got {mode!r}")
    if len(mesh.vertices) == 0:
        raise InputError("cannot frame an empty mesh")
    framed = mesh.copy()
    if rotation is not None:
        transform = np.eye(4)
        transform[:3, :3] = np.asarray(rotation, dtype=np.float64)
        framed.apply_transform(transform)
    lower, upper = framed.bounds
    framed.apply_translation(-(lower + upper) / 2.0)
    vertices = np.asarray(framed.vertices)
    if mode == "product":
        longest = max(np.ptp(vertices[:, 0]), np.ptp(vertices[:, 1]))
        scale = 2.0 * front_fill / longest
    else:
        scale = (2.0 / ORTHO_SCALE) / np.linalg.norm(upper - lower)
    scale = min(scale, max_extent / _view_extents(vertices).max())
    framed.apply_scale(scale)
    return framed


def sphere(*, radius: float = 0.75, subdivisions: int = 6) -> trimesh.Trimesh:
    """An icosphere centred at the origin (model units)."""
    return trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)


def torus(*, major_radius: float = 0.5, minor_radius: float = 0.22, axis: str = "z", sections: int = 256) -> trimesh.Trimesh:
    """A torus centred at the origin; ``axis='z'`` puts the hole facing the front camera, 'y' hides it."""
    if axis not in ("z", "y"):
        raise ValueError(f"axis must be 'z' or 'y', got {axis!r}")
    mesh = trimesh.creation.torus(major_radius, minor_radius, major_sections=sections, minor_sections=sections // 2)
    if axis == "y":
        mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    return mesh


def bumpy_blob(*, radii: tuple[float, float, float] = (0.7, 0.55, 0.45), amplitude: float = 0.06,
               subdivisions: int = 6, seed: int = 3) -> trimesh.Trimesh:
    """An organ-like blob: an ellipsoid with smooth sinusoidal bumps (radial displacement)."""
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    directions = np.asarray(mesh.vertices)
    rng = np.random.default_rng(seed)
    displacement = np.zeros(len(directions))
    for _ in range(4):
        frequency = rng.normal(size=3) * 2.5
        displacement += np.sin(directions @ frequency + rng.uniform(0, 2 * np.pi))
    radial = 1.0 + amplitude * displacement / 2.0
    mesh.vertices = directions * radial[:, None] * np.asarray(radii)
    return mesh


def label_surface(mask: np.ndarray, spacing: tuple[float, float, float], *, smoothing_mm: float = 0.0) -> trimesh.Trimesh:
    """Marching-cubes surface of a binary mask (e.g. one atlas label), the largest piece.

    Parameters
    ----------
    mask : (K, J, I) bool
        Array-axis order as :class:`~Wonder3DMedLib.imaging.io.Volume` stores it.
    spacing : (3,) float
        Voxel size in mm, in array-axis order.
    smoothing_mm : float
        Gaussian smoothing of the mask before marching cubes (0: the plain staircase surface).

    Returns
    -------
    trimesh.Trimesh
        Vertices in mm along the array axes ``(k, j, i)``, outward winding.
    """
    from scipy.ndimage import gaussian_filter
    from skimage.measure import marching_cubes

    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise InputError("the mask is empty: there is no surface to extract")
    field = np.pad(mask.astype(np.float32), 2)
    if smoothing_mm > 0:
        field = gaussian_filter(field, sigma=smoothing_mm / np.asarray(spacing, dtype=np.float64))
    vertices, faces, _, _ = marching_cubes(field, level=0.5, spacing=tuple(float(s) for s in spacing))
    mesh = trimesh.Trimesh(vertices, faces, process=True)
    pieces = mesh.split(only_watertight=False)
    mesh = max(pieces, key=lambda piece: len(piece.faces)) if len(pieces) > 1 else mesh
    if mesh.volume < 0:
        mesh.invert()
    return mesh
