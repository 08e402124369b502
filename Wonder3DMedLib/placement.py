"""Where the surface crosses the input slice: the honest check of placement.

Data form: a closed surface (:class:`trimesh.Trimesh`, RAS mm) and a
:class:`~Wonder3DMedLib.imaging.slicing.Slice` in; boolean ``(rows, cols)`` masks on the
slice's pixel grid and overlap numbers out.

Whatever generated the views, the surface should cut the slice it came from along the
object's outline there. The cross-section is counted at pixel centres (a pixel is inside
when its centre is inside the closed surface).
"""

from __future__ import annotations

import numpy as np
import trimesh
from PIL import Image
from skimage.segmentation import find_boundaries

from Wonder3DMedLib.imaging.io import Volume
from Wonder3DMedLib.imaging.slicing import Slice

__all__ = ["cross_section", "labelmap_cross_section", "overlap", "cross_section_figure"]


def _slice_grid(source: Slice) -> Volume:
    # One voxel layer on the slice's pixel grid: i = column, j = row, k = d (mm along the normal).
    return Volume(np.zeros((1, *source.shape), dtype=bool), source.slice_to_ras)


def cross_section(mesh_ras: trimesh.Trimesh, source: Slice) -> np.ndarray:
    """Pixels of ``source`` whose centres lie inside the closed surface ``mesh_ras``.

    Returns
    -------
    (rows, cols) bool
    """
    from Wonder3DMedLib.metrics.volume import voxelize

    return voxelize(mesh_ras, _slice_grid(source))[0]


def labelmap_cross_section(mask_volume: Volume, source: Slice) -> np.ndarray:
    """A labelled object (bool ``array[k, j, i]`` on its own grid) sampled at the slice's pixel centres.

    Nearest voxel in physical space; pixels outside the labelmap's grid are outside.
    """
    rows, cols = np.mgrid[0 : source.shape[0], 0 : source.shape[1]]
    ras = source.pixel_to_ras_points(np.stack([cols.ravel(), rows.ravel()], axis=1))
    ijk = np.rint(mask_volume.ras_to_ijk_points(ras)).astype(np.int64)
    inside = np.all((ijk >= 0) & (ijk < np.array(mask_volume.shape_ijk)), axis=1)
    values = np.zeros(len(ras), dtype=bool)
    i, j, k = ijk[inside].T
    values[inside] = np.asarray(mask_volume.array, dtype=bool)[k, j, i]
    return values.reshape(source.shape)


def overlap(a: np.ndarray, b: np.ndarray) -> dict:
    """IoU and Dice of two masks (NaN when both are empty)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    union = np.logical_or(a, b).sum()
    intersection = np.logical_and(a, b).sum()
    total = a.sum() + b.sum()
    return {
        "iou": float(intersection / union) if union else float("nan"),
        "dice": float(2 * intersection / total) if total else float("nan"),
        "pixels_surface": int(a.sum()),
        "pixels_reference": int(b.sum()),
    }


def cross_section_figure(grey: np.ndarray, section: np.ndarray, outline: np.ndarray, *, zoom: int = 3) -> Image.Image:
    """The slice around the object with the surface's cross-section (green) and the object outline (red).

    Parameters
    ----------
    grey : (rows, cols) float in [0, 1]
        The windowed slice.
    section : (rows, cols) bool
        The surface's cross-section.
    outline : (rows, cols) bool
        The object on the slice (input mask or reference label).
    zoom : int
        Nearest-neighbour magnification of the cropped region.
    """
    union = section | outline
    if union.any():
        rows, cols = np.nonzero(union)
        margin = max(8, int(0.3 * max(np.ptp(rows) + 1, np.ptp(cols) + 1)))
        r0, r1 = max(rows.min() - margin, 0), min(rows.max() + margin + 1, grey.shape[0])
        c0, c1 = max(cols.min() - margin, 0), min(cols.max() + margin + 1, grey.shape[1])
    else:
        r0, r1, c0, c1 = 0, grey.shape[0], 0, grey.shape[1]

    def crop(array: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(array[r0:r1, c0:c1], zoom, axis=0), zoom, axis=1)

    rgb = np.repeat(np.clip(crop(grey), 0, 1)[..., None], 3, axis=-1)
    # The section's edge just inside its pixels, the outline's just outside: where they
    # coincide both stay visible, side by side.
    rgb[find_boundaries(crop(section), mode="inner")] = (0.1, 0.9, 0.2)
    rgb[find_boundaries(crop(outline), mode="outer")] = (0.95, 0.15, 0.1)
    return Image.fromarray((rgb * 255).astype(np.uint8))
