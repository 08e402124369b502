"""Six views → the per-pixel training targets of the NeuS-ortho backend.

Data form: :class:`~Wonder3DMedLib.views.MultiviewImages` in; :class:`TrainingPixels` out —
every pixel of the six (resized) views flattened to ``(6·S·S, ...)`` float32 tensors, in
the **original's world frame** (z-up), with the ray of each pixel from
:mod:`Wonder3DMedLib.reconstruction.cameras`.

What Wonder3D's ``datasets/ortho.py`` does, reproduced: every image goes through 8-bit
PNG form and is resized with PIL's default filter to the training size; normals are
``rgb/255·2 − 1``, zeroed where the alpha is 0, then rotated from the front camera's frame
into the world; the foreground is ``alpha > 127.5``; a colour is unusable only when its
``masked_colors`` alpha is below half *and* all its channels exceed 250; colour targets
are composited on the black training background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from Wonder3DMedLib.reconstruction.cameras import camera_rays, normals_to_world, ray_box_bounds, wonder3d_cameras
from Wonder3DMedLib.views import MultiviewImages

__all__ = ["TrainingPixels", "training_pixels"]

# Matches Wonder3D: datasets/ortho.py thresholds (alpha > 0.5·255, near-white > 250).
_ALPHA_HALF = 0.5 * 255.0
_NEAR_WHITE = 250


@dataclass(frozen=True, eq=False)
class TrainingPixels:
    """Every training pixel of the six views, flattened view-major (view, row, column).

    Attributes
    ----------
    size : int — side of the (resized) views in pixels
    origins : (P, 3) float32 — ray start on the image plane, world frame (model units)
    directions : (P, 3) float32 — unit ray directions, world frame
    near, far : (P,) float32 — where each ray enters and leaves the box [−1, 1]³
    normals : (P, 3) float32 — target normals, world frame, 0 on transparent pixels
    colors : (P, 3) float32 — target colours in [0, 1], black outside the foreground
    foreground : (P,) float32 — 1 on the object, 0 elsewhere
    color_valid : (P,) bool — the colour may be used by the RGB loss
    view_weights : (P,) float32 — loss weight of the pixel's view
    """

    size: int
    origins: torch.Tensor
    directions: torch.Tensor
    near: torch.Tensor
    far: torch.Tensor
    normals: torch.Tensor
    colors: torch.Tensor
    foreground: torch.Tensor
    color_valid: torch.Tensor
    view_weights: torch.Tensor

    def __len__(self) -> int:
        return int(self.origins.shape[0])


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def _resized(pixels: np.ndarray, size: int) -> np.ndarray:
    image = Image.fromarray(pixels)
    # Matches Wonder3D: datasets/ortho.py PIL .resize(imSize) with the default filter.
    return np.asarray(image.resize((size, size)))


def training_pixels(
    views: MultiviewImages,
    *,
    size: int | None = None,
    view_weights: tuple[float, ...],
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    device: torch.device | str = "cpu",
) -> TrainingPixels:
    """Targets and rays of every pixel, as the original's ortho dataset prepares them.

    Parameters
    ----------
    views : MultiviewImages
        Normals in the front-camera (model) frame, masks, colours.
    size : int, optional
        Training resolution; ``None`` keeps the views' size.
    view_weights : tuple of 6 float
        Loss weight of each view (``VIEW_NAMES`` order).
    background : RGB in [0, 1]
        Colour the targets are composited on (the original trains on black).
    device : torch device

    Returns
    -------
    TrainingPixels
    """
    size = views.size if size is None else int(size)
    origins, directions, near, far = [], [], [], []
    normals, colors, foreground, color_valid, weights = [], [], [], [], []
    for index, camera in enumerate(wonder3d_cameras()):
        alpha_full = (views.masks[index] * 255).astype(np.uint8)
        normal_rgba = np.concatenate([_to_uint8(views.normals[index]), alpha_full[..., None]], axis=-1)
        normal_rgba = _resized(normal_rgba, size).astype(np.float64)
        color = _resized(_to_uint8(views.colors[index]), size)
        color_alpha = _resized(alpha_full, size).astype(np.float64)
        alpha = normal_rgba[..., 3]
        normal = normal_rgba[..., :3] / 255.0 * 2.0 - 1.0
        normal[alpha == 0] = 0.0
        mask = alpha > _ALPHA_HALF
        unusable = (color_alpha < _ALPHA_HALF) & np.all(color > _NEAR_WHITE, axis=-1)
        target = color.astype(np.float64) / 255.0
        target = target * mask[..., None] + np.asarray(background) * (1.0 - mask[..., None])
        rays = camera_rays(camera, size, frame="world")
        entry, exit_ = ray_box_bounds(rays.origins, rays.directions)
        origins.append(rays.origins.reshape(-1, 3))
        directions.append(rays.directions.reshape(-1, 3))
        near.append(entry.reshape(-1))
        far.append(exit_.reshape(-1))
        normals.append(normals_to_world(normal.reshape(-1, 3)))
        colors.append(target.reshape(-1, 3))
        foreground.append(mask.reshape(-1))
        color_valid.append(~unusable.reshape(-1))
        weights.append(np.full(size * size, float(view_weights[index])))

    def tensor(parts: list[np.ndarray], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.concatenate(parts), dtype=dtype, device=device)

    return TrainingPixels(
        size=size,
        origins=tensor(origins),
        directions=tensor(directions),
        near=tensor(near),
        far=tensor(far),
        normals=tensor(normals),
        colors=tensor(colors),
        foreground=tensor(foreground),
        color_valid=tensor(color_valid, torch.bool),
        view_weights=tensor(weights),
    )
