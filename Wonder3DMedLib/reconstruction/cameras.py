"""The six orthographic reconstruction cameras of Wonder3D and every convention tied to them.

Data form: :class:`OrthoCamera` objects (4×4 / 3×3 float64 matrices) and per-pixel arrays
``(H, W, ...)`` of square views. This module is the one place that knows how a view's
pixels relate to rays, depths and normals; the renderer, the fast backend, the NeuS
backend and meshing all go through it.

Frames (see ``shared/fixtures/README.md``, section on ``wonder3d_recon_poses.json``):

* **World** — the original's Blender frame, z-up. The poses are stored as in the
  original's files: world→camera ``[R|t]`` in the OpenGL camera convention (the camera
  looks along its −z axis, +y is image-up, +x image-right).
* **Model** — the front camera's axes (x image-right, y image-up, z towards the front
  camera), origin at the world origin, same units; the reconstruction box is [−1, 1]³.
  A model point ``p`` is the world point ``R_frontᵀ · p``. Owned by
  :mod:`Wonder3DMedLib.model_frame`.
* **Camera (OpenGL)** of view *k* — its image-right, image-up and towards-the-camera
  axes; **camera (OpenCV)** — right, down, forward: ``diag(1, −1, −1)`` times OpenGL.
* **View pixel frame** of view *k* at ``size``² pixels — ``(col, row, w)``: the model
  frame's pixel rule (:func:`~Wonder3DMedLib.model_frame.model_to_pixel_matrix`)
  applied to the camera-axis coordinates of a point, so ``w`` is the height towards the
  camera, in pixels, above the plane through the model origin. For the front view it
  *is* the model frame's pixel frame.

Rays: the ray of pixel ``(col, row)`` starts on the camera's image plane at camera
coordinates ``x = (2·col + 1)/size − 1``, ``y = 1 − (2·row + 1)/size`` and runs along the
viewing direction (orthographic; the image spans [−1, 1]²). *Ray depth* is the distance
from that start point along the ray, in model units.

Normal maps of all six views are in the front camera's OpenGL frame, which is the model
frame: decoding is ``n = 2·rgb − 1`` and the vector is already a model-frame normal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from Wonder3DMedLib.model_frame import model_to_pixel_matrix, pixel_centers_model, pixel_to_model_matrix
from Wonder3DMedLib.views import VIEW_NAMES, MultiviewImages

__all__ = [
    "CAMERAS_RESOURCE",
    "OPENGL_TO_OPENCV",
    "ORTHO_SCALE",
    "BOX_HALF_SIZE",
    "OrthoCamera",
    "Rays",
    "wonder3d_cameras",
    "view_weights",
    "model_to_world_rotation",
    "camera_rays",
    "ray_box_bounds",
    "normals_in_camera",
    "normals_to_world",
    "foreground_masks",
    "color_valid_masks",
]

#: File under ``Wonder3DMedLib/resources`` holding the poses and view weights.
CAMERAS_RESOURCE = "wonder3d_recon_cameras.json"

#: OpenGL camera axes (x right, y up, z back) -> OpenCV (x right, y down, z forward).
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])

#: Half side of the reconstruction box [−1, 1]³ (model units).
BOX_HALF_SIZE = 1.0

#: Width of the original training renders' orthographic image in object units. Objects
#: were normalised to bounding-box diagonal 1, and the reconstruction's image is 2 units
#: wide, so a model-frame length L is ``L · ORTHO_SCALE / 2`` training-object units.
ORTHO_SCALE = 1.35


def _orthonormal(matrix: np.ndarray) -> np.ndarray:
    """Nearest rotation (the stored poses are float32 numbers, off by ~1e-7)."""
    u, _, vt = np.linalg.svd(matrix)
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        raise ValueError("a camera pose is not a rotation (determinant < 0)")
    return rotation


@dataclass(frozen=True, eq=False)
class OrthoCamera:
    """One of Wonder3D's six orthographic reconstruction cameras.

    Attributes
    ----------
    name : str
        View name (``front``, ``front_right``, ``right``, ``back``, ``left``, ``front_left``).
    world_to_camera_gl : (3, 4) float64
        The original's world→camera ``[R|t]`` (OpenGL camera, world z-up), as stored.
    weight : float
        The view's weight in Wonder3D's losses.
    model_to_world : (3, 3) float64
        Rotation taking model-frame vectors to world vectors (``R_frontᵀ``).
    """

    name: str
    world_to_camera_gl: np.ndarray
    weight: float
    model_to_world: np.ndarray

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3): model frame -> this camera's OpenGL axes; rows are the camera's
        image-right, image-up and towards-the-camera directions in the model frame."""
        return _orthonormal(self.world_to_camera_gl[:, :3]) @ self.model_to_world

    @property
    def direction(self) -> np.ndarray:
        """(3,): unit viewing direction (where the rays go) in the model frame."""
        return -self.rotation[2]

    @property
    def distance(self) -> float:
        """Distance of the image plane from the model origin along the view axis (model units)."""
        rotation = _orthonormal(self.world_to_camera_gl[:, :3])
        centre_world = -rotation.T @ self.world_to_camera_gl[:, 3]
        return float(-(self.model_to_world.T @ centre_world) @ self.direction)

    @property
    def centre(self) -> np.ndarray:
        """(3,): camera centre in the model frame (model units), on the axis through the origin.

        The stored translations put the centres off that axis by float32 noise (< 2e-7);
        the on-axis centre keeps every view's pixel rule exact (image = [−1, 1]²).
        """
        return -self.distance * self.direction

    @property
    def azimuth_deg(self) -> float:
        """Azimuth of the camera around the model y axis, from the front camera towards image-right."""
        centre = self.centre
        return float(np.degrees(np.arctan2(centre[0], centre[2])))

    def world_to_camera_cv(self) -> np.ndarray:
        """(3, 4): world→camera ``[R|t]`` in the OpenCV convention (x right, y down, z forward).

        This is what the original's loader does to each pose: left-multiply by ``diag(1, −1, −1)``.
        """
        return OPENGL_TO_OPENCV @ self.world_to_camera_gl

    def camera_to_world_cv(self) -> np.ndarray:
        """(4, 4): the inverse of :meth:`world_to_camera_cv` (camera-to-world, OpenCV axes)."""
        matrix = np.eye(4)
        matrix[:3] = self.world_to_camera_cv()
        return np.linalg.inv(matrix)

    def model_to_pixel(self, size: int) -> np.ndarray:
        """(4, 4): model ``(x, y, z, 1)`` -> this view's ``(col, row, w, 1)`` at ``size``² pixels."""
        rotation = np.eye(4)
        rotation[:3, :3] = self.rotation
        return model_to_pixel_matrix(size) @ rotation

    def pixel_to_model(self, size: int) -> np.ndarray:
        """(4, 4): inverse of :meth:`model_to_pixel`."""
        rotation = np.eye(4)
        rotation[:3, :3] = self.rotation.T
        return rotation @ pixel_to_model_matrix(size)

    def project(self, points: np.ndarray, size: int) -> np.ndarray:
        """Model-frame points -> ``(col, row, w)`` in this view (pixels, float).

        Parameters
        ----------
        points : (n, 3) float — model frame
        size : int — side of the view in pixels

        Returns
        -------
        (n, 3) float64
            Column and row (pixel centres at integers) and ``w``, the height towards the
            camera above the plane through the origin, in pixels.
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        matrix = self.model_to_pixel(size)
        return points @ matrix[:3, :3].T + matrix[:3, 3]

    def ray_depth(self, points: np.ndarray) -> np.ndarray:
        """Distance along this view's rays from the image plane to ``points`` (model units).

        Parameters
        ----------
        points : (..., 3) float — model frame

        Returns
        -------
        (...) float64
        """
        points = np.asarray(points, dtype=np.float64)
        return (points - self.centre) @ self.direction


@dataclass(frozen=True, eq=False)
class Rays:
    """Orthographic rays of one view, one per pixel.

    Attributes
    ----------
    origins : (H, W, 3) float64
        Start points on the camera's image plane (model or world frame, see ``frame``).
    directions : (H, W, 3) float64
        Unit directions (all equal for an orthographic camera).
    frame : {'model', 'world'}
    """

    origins: np.ndarray
    directions: np.ndarray
    frame: str


@lru_cache(maxsize=1)
def _camera_table() -> dict:
    text = resources.files("Wonder3DMedLib").joinpath("resources", CAMERAS_RESOURCE).read_text()
    table = json.loads(text)
    if tuple(table["views"]) != VIEW_NAMES:
        raise ValueError(f"{CAMERAS_RESOURCE} lists views {table['views']}, expected {VIEW_NAMES}")
    return table


def model_to_world_rotation() -> np.ndarray:
    """(3, 3): rotation taking model-frame vectors to the original's world frame (``R_frontᵀ``)."""
    front = np.asarray(_camera_table()["world_to_camera"]["front"], dtype=np.float64)
    return _orthonormal(front[:, :3]).T


@lru_cache(maxsize=1)
def wonder3d_cameras() -> tuple[OrthoCamera, ...]:
    """The six cameras in Wonder3D's view order (``views.VIEW_NAMES``).

    Returns
    -------
    tuple of OrthoCamera
        Front (azimuth 0°), front_right (+45°), right (+90°), back (180°), left (−90°),
        front_left (−45°); azimuths measured around the model y axis towards image-right.
    """
    table = _camera_table()
    model_to_world = model_to_world_rotation()
    cameras = []
    for name in VIEW_NAMES:
        matrix = np.asarray(table["world_to_camera"][name], dtype=np.float64)
        if matrix.shape != (3, 4):
            raise ValueError(f"{CAMERAS_RESOURCE}: pose of view {name!r} must be 3×4, got {matrix.shape}")
        matrix.setflags(write=False)
        cameras.append(OrthoCamera(name, matrix, float(table["view_weights"][name]), model_to_world))
    return tuple(cameras)


def view_weights() -> np.ndarray:
    """(6,) float64: Wonder3D's per-view loss weights ``[1.0, 0.8, 0.2, 1.0, 0.4, 0.7]`` in view order."""
    # Matches Wonder3D: instant-nsr-pl neuralangelo-ortho-wmask.yaml view_weights (right/left asymmetric).
    return np.array([camera.weight for camera in wonder3d_cameras()])


def camera_rays(camera: OrthoCamera, size: int, *, frame: str = "model") -> Rays:
    """The ray of every pixel of a ``size``² view.

    Parameters
    ----------
    camera : OrthoCamera
    size : int
        Side of the view in pixels.
    frame : {'model', 'world'}
        Frame of the returned origins and directions.

    Returns
    -------
    Rays
        Origins on the image plane (spanning [−1, 1]² in camera x, y), unit directions.
    """
    if frame not in ("model", "world"):
        raise ValueError(f"frame must be 'model' or 'world', got {frame!r}")
    x, y = pixel_centers_model(size)
    rotation = camera.rotation
    right, up = rotation[0], rotation[1]
    origins = camera.centre + x[None, :, None] * right + y[:, None, None] * up
    directions = np.broadcast_to(camera.direction, origins.shape).copy()
    if frame == "world":
        origins = origins @ camera.model_to_world.T
        directions = directions @ camera.model_to_world.T
    return Rays(origins=origins, directions=directions, frame=frame)


def ray_box_bounds(
    origins: np.ndarray, directions: np.ndarray, *, half_size: float = BOX_HALF_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Where rays enter and leave the box ``[−half_size, half_size]³`` (slab method).

    Parameters
    ----------
    origins, directions : (..., 3) float
        Any frame in which the box is axis-aligned and centred (model or world).

    Returns
    -------
    near, far : (...) float64
        Ray parameters of entry and exit; ``near > far`` where a ray misses the box.
    """
    origins = np.asarray(origins, dtype=np.float64)
    directions = np.asarray(directions, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / directions
        t0 = (-half_size - origins) * inverse
        t1 = (half_size - origins) * inverse
    low = np.where(np.isnan(t0), -np.inf, np.minimum(t0, t1))
    high = np.where(np.isnan(t1), np.inf, np.maximum(t0, t1))
    return low.max(axis=-1), high.min(axis=-1)


def normals_in_camera(views: MultiviewImages) -> np.ndarray:
    """Decoded normals of each view rotated into that view's own OpenGL camera frame.

    Returns
    -------
    (6, H, W, 3) float32
        x image-right, y image-up, z towards that view's camera; zero outside the masks.
        A surface facing the camera has z > 0.
    """
    decoded = views.decoded_normals()
    rotated = [decoded[k] @ camera.rotation.T.astype(np.float32) for k, camera in enumerate(wonder3d_cameras())]
    return np.stack(rotated)


def normals_to_world(normals_model: np.ndarray) -> np.ndarray:
    """Model-frame (= front-camera) normals -> the original's world frame (z-up).

    What the original does when it flips a decoded normal from OpenGL to OpenCV and
    rotates it with the front camera's OpenCV camera-to-world matrix.

    Parameters
    ----------
    normals_model : (..., 3) float

    Returns
    -------
    (..., 3) float64
    """
    return np.asarray(normals_model, dtype=np.float64) @ model_to_world_rotation().T


def foreground_masks(views: MultiviewImages, *, erode_px: int = 0) -> np.ndarray:
    """The foreground of each view (the normal map's alpha), optionally eroded.

    Parameters
    ----------
    views : MultiviewImages
        Masks come from the normal maps' alpha (> 127) when read by ``load_views``.
    erode_px : int
        Pixels to erode (Wonder3D has a 1-pixel erosion commented out; default 0).

    Returns
    -------
    (6, H, W) bool — a new array
    """
    masks = views.masks.copy()
    if erode_px < 0:
        raise ValueError(f"erode_px must be 0 or more, got {erode_px}")
    if erode_px:
        from scipy.ndimage import binary_erosion

        structure = np.ones((3, 3), dtype=bool)
        masks = np.stack([binary_erosion(mask, structure, iterations=erode_px) for mask in masks])
    return masks


def color_valid_masks(views: MultiviewImages, *, white_threshold: float = 250.0 / 255.0) -> np.ndarray:
    """Pixels whose colour may be used: Wonder3D drops a pixel only if it is background *and* near white.

    Returns
    -------
    (6, H, W) bool
    """
    # Matches Wonder3D: datasets/ortho.py ignores a colour only when masked out AND all channels > 250.
    near_white = np.all(views.colors > white_threshold, axis=-1)
    return views.masks | ~near_white
