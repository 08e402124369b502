"""The six views decoded once for the CPU backend: masks, silhouette distances, normals per frame.

Data form: :class:`ViewStack`, arrays stacked over the six views in Wonder3D's order,
``(6, S, S, ...)`` at one working resolution ``S``; per-view 4×4 matrices between the model
frame and each view's pixel frame ``(col, row, w)`` (see
:mod:`~Wonder3DMedLib.reconstruction.cameras`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from Wonder3DMedLib.reconstruction._images import signed_distance, smooth_normals
from Wonder3DMedLib.reconstruction.cameras import wonder3d_cameras
from Wonder3DMedLib.views import MultiviewImages

__all__ = ["ViewStack", "DETECTION_SMOOTHING_PX"]

#: Gaussian sigma (pixels) of the normals used for detection and confidence: contour crossings
#: are sign changes of them, and σ 0.15 noise on 1-px-smoothed normals doubled the crossings at 256².
DETECTION_SMOOTHING_PX = 2.0


def _resize_views(views: MultiviewImages, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Normals (decoded, renormalised) and masks resampled to ``size``² (masks by their coverage > ½)."""
    normals, masks = [], []
    decoded = views.decoded_normals()
    for k in range(len(decoded)):
        channels = [
            np.asarray(Image.fromarray(decoded[k, ..., c]).resize((size, size), Image.Resampling.BILINEAR))
            for c in range(3)
        ]
        coverage = np.asarray(
            Image.fromarray(views.masks[k].astype(np.float32)).resize((size, size), Image.Resampling.BILINEAR)
        )
        normal = np.stack(channels, axis=-1).astype(np.float64)
        length = np.linalg.norm(normal, axis=-1, keepdims=True)
        normals.append(np.divide(normal, length, out=np.zeros_like(normal), where=length > 1e-6))
        masks.append(coverage > 0.5)
    return np.stack(normals), np.stack(masks)


@dataclass(frozen=True, eq=False)
class ViewStack:
    """Everything the CPU backend reads from the six views, at one resolution.

    Attributes
    ----------
    size : int
        Working resolution ``S`` (pixels).
    masks : (6, S, S) bool
    distance : (6, S, S) float32
        Signed distance to each mask's boundary in pixels (positive outside).
    normals_model : (6, S, S, 3) float64
        Unit normals in the model frame, as given (zero outside the masks).
    smooth_model : (6, S, S, 3) float64
        The same, Gaussian-smoothed inside the masks (for detection and confidence).
    normals_camera : (6, S, S, 3) float64
        ``normals_model`` in each view's own camera frame (z towards that camera).
    facing : (6, S, S) float64
        z of ``smooth_model`` in each view's camera frame: how squarely a pixel faces its camera.
    facing_raw : (6, S, S) float64
        z of ``normals_camera`` (unsmoothed; sharper at depth discontinuities).
    model_to_pixel, pixel_to_model : (6, 4, 4) float64
    """

    size: int
    masks: np.ndarray
    distance: np.ndarray
    normals_model: np.ndarray
    smooth_model: np.ndarray
    normals_camera: np.ndarray
    facing: np.ndarray
    facing_raw: np.ndarray
    model_to_pixel: np.ndarray
    pixel_to_model: np.ndarray

    @classmethod
    def from_views(cls, views: MultiviewImages, *, size: int | None = None, smoothing_px: float = DETECTION_SMOOTHING_PX) -> ViewStack:
        """Decode the views (resampled to ``size``² when given and different).

        Parameters
        ----------
        views : MultiviewImages
        size : int, optional
            Working resolution; the views' own when omitted.
        smoothing_px : float
            Gaussian sigma of ``smooth_model`` in working pixels.
        """
        if size is None or size == views.size:
            size = views.size
            decoded = views.decoded_normals().astype(np.float64)
            length = np.linalg.norm(decoded, axis=-1, keepdims=True)
            normals = np.divide(decoded, length, out=np.zeros_like(decoded), where=length > 1e-6)
            masks = views.masks.copy()
        else:
            normals, masks = _resize_views(views, size)
        cameras = wonder3d_cameras()
        rotations = np.stack([camera.rotation for camera in cameras])
        smooth = np.stack([smooth_normals(normals[k], masks[k], smoothing_px) for k in range(len(cameras))])
        normals_camera = np.einsum("kij,khwj->khwi", rotations, normals)
        facing = np.einsum("kj,khwj->khw", rotations[:, 2], smooth)
        return cls(
            size=size,
            masks=masks,
            distance=np.stack([signed_distance(mask) for mask in masks]),
            normals_model=normals,
            smooth_model=smooth,
            normals_camera=normals_camera,
            facing=facing,
            facing_raw=normals_camera[..., 2],
            model_to_pixel=np.stack([camera.model_to_pixel(size) for camera in cameras]),
            pixel_to_model=np.stack([camera.pixel_to_model(size) for camera in cameras]),
        )

    def view_to_view(self, source: int, target: int) -> np.ndarray:
        """(4, 4): pixel frame ``(col, row, w, 1)`` of view ``source`` -> that of view ``target``."""
        return self.model_to_pixel[target] @ self.pixel_to_model[source]

    def points(self, view: int, rows: np.ndarray, cols: np.ndarray, heights: np.ndarray) -> np.ndarray:
        """Model-frame points of pixel positions and heights of one view, ``(n, 3)``."""
        pixels = np.stack([cols, rows, heights, np.ones_like(heights)], axis=-1)
        return (pixels @ self.pixel_to_model[view].T)[..., :3]
