"""A picture of what was chosen: the windowed slice with the object's outline.

Data form: grey levels ``(rows, cols)`` in [0, 1] and a boolean mask on the same grid in;
an RGB :class:`PIL.Image.Image` of the same size out (one image pixel per slice pixel,
so pixel coordinates read off the picture are slice coordinates, e.g. for ``--roi``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from Wonder3DMedLib.imaging.windowing import to_uint8

__all__ = ["OUTLINE_COLOUR", "slice_preview"]

#: Colour of the object outline (RGB).
OUTLINE_COLOUR = (255, 40, 40)


def slice_preview(grey: np.ndarray, mask: np.ndarray) -> Image.Image:
    """The windowed slice in grey with the mask's inner outline in red.

    Parameters
    ----------
    grey : (rows, cols) float in [0, 1]
    mask : (rows, cols) bool

    Returns
    -------
    PIL.Image.Image
        Mode RGB, ``cols × rows`` pixels, no metadata; the outline covers the object's
        own border pixels.
    """
    from skimage.segmentation import find_boundaries

    grey8 = to_uint8(grey)
    rgb = np.dstack([grey8, grey8, grey8])
    rgb[find_boundaries(np.asarray(mask, dtype=bool), mode="inner")] = OUTLINE_COLOUR
    return Image.fromarray(rgb)
