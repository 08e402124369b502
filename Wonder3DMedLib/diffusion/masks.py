"""Foreground masks of generated views, from the generated images themselves.

Data form: per view a normal map and a colour image, ``(views, H, W, 3)`` float in [0, 1],
and the masks ``(views, H, W)`` bool.

The original Wonder3D runs a downloaded background-removal network (rembg) on every
output. We do not: Wonder3D generates both domains of a view on the plain background it
was given (white for its framed inputs), so the background is where **the normal map and
the colour image agree** that the pixel is background colour:

1. The background colour of each image is the per-channel median of its one-pixel border
   ring (the framed object stays clear of the border, so the ring is background; this
   also works for a grey or black background).
2. A pixel is background in one image when every channel is within ``tolerance`` of that
   colour, and background of the view when it is background in **both** images. A white
   object in the colour view stays foreground because its normal map is not white (no
   unit normal encodes to near-white: the palest encoding, n = (1, 1, 1)/√3, is 0.79 per
   channel), and a pale normal region stays foreground where the colour view shows the object.
3. Clean-up: foreground specks smaller than ``min_area_fraction`` of the image are dropped,
   and background pin-holes of that size that do not reach the border are filled. Larger
   enclosed background regions (a real opening through the object) are kept.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["DEFAULT_TOLERANCE", "DEFAULT_MIN_AREA_FRACTION", "background_color", "foreground_masks"]

#: Largest per-channel difference from the background colour that still counts as background (≈ 20/255).
DEFAULT_TOLERANCE = 0.08

#: Connected regions smaller than this fraction of the image are specks (foreground) or pin-holes (background).
DEFAULT_MIN_AREA_FRACTION = 0.001


def background_color(image: np.ndarray) -> np.ndarray:
    """Per-channel median of the one-pixel border ring of ``image`` ``(H, W, 3)`` -> ``(3,)``."""
    ring = np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]], axis=0)
    return np.median(ring, axis=0)


def _near(image: np.ndarray, color: np.ndarray, tolerance: float) -> np.ndarray:
    return np.max(np.abs(image - color), axis=-1) <= tolerance


def _clean(foreground: np.ndarray, min_area: int) -> np.ndarray:
    labels, count = ndimage.label(foreground)
    if count:
        sizes = np.bincount(labels.ravel())
        keep = sizes >= min_area
        keep[0] = False
        foreground = keep[labels]
    holes, count = ndimage.label(~foreground)
    if count:
        sizes = np.bincount(holes.ravel())
        border = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
        fill = sizes < min_area
        fill[0] = False
        fill[border] = False
        foreground = foreground | fill[holes]
    return foreground


def foreground_masks(
    normals: np.ndarray,
    colors: np.ndarray,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    min_area_fraction: float = DEFAULT_MIN_AREA_FRACTION,
) -> np.ndarray:
    """Foreground of each view where its normal map and colour image are not both background.

    Parameters
    ----------
    normals, colors : (views, H, W, 3) float in [0, 1]
        The generated normal maps and colour images of the same views (same order).
    tolerance : float
        Per-channel distance from the background colour still counted as background.
    min_area_fraction : float
        Specks and pin-holes smaller than this fraction of ``H·W`` are removed/filled.

    Returns
    -------
    (views, H, W) bool

    Raises
    ------
    ValueError
        Shapes differ or are not ``(views, H, W, 3)`` with H, W ≥ 3.
    """
    normals = np.asarray(normals, dtype=np.float32)
    colors = np.asarray(colors, dtype=np.float32)
    if normals.ndim != 4 or normals.shape[-1] != 3 or min(normals.shape[1:3]) < 3:
        raise ValueError(f"normals must have shape (views, H, W, 3) with H, W >= 3, got {normals.shape}")
    if colors.shape != normals.shape:
        raise ValueError(f"colors must have the shape of normals {normals.shape}, got {colors.shape}")
    min_area = max(1, int(round(min_area_fraction * normals.shape[1] * normals.shape[2])))
    masks = []
    for normal, color in zip(normals, colors):
        background = _near(normal, background_color(normal), tolerance) & _near(color, background_color(color), tolerance)
        masks.append(_clean(~background, min_area))
    return np.stack(masks)
