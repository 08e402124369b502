"""The object on a slice: what Wonder3D reconstructs.

Data form: a :class:`~Wonder3DMedLib.imaging.slicing.Slice` in; an :class:`ObjectMask`
— a boolean ``(rows, cols)`` array on the slice's pixel grid plus a plain-words
description — out.

Three sources:

* a labelmap or segmentation file (``FILE[:LABEL]``) on any grid: each slice pixel centre
  is mapped through RAS into the file's grid and takes the nearest voxel's label, so
  files on another grid (resolution, orientation, field of view) are resampled exactly in
  physical space;
* an automatic mask: Otsu threshold of the windowed slice (or a given threshold in the
  volume's units), the largest connected component, holes filled;
* a box ``(col0, row0, col1, row1)`` (inclusive pixel indices): the box itself, or the
  region the other two are restricted to.

An empty result is an error, never an empty object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.imaging.labels import LabelledVolume, label_mask, read_labelmap
from Wonder3DMedLib.imaging.slicing import Slice

__all__ = ["ObjectMask", "parse_box", "mask_from_labelmap", "mask_from_file", "auto_mask", "box_mask", "restrict_to_box"]


@dataclass(frozen=True, eq=False)
class ObjectMask:
    """The object's pixels on a slice.

    Attributes
    ----------
    mask : (rows, cols) bool
    description : str
        How it was made, for the console and frame.json (no file names, no patient data).
    """

    mask: np.ndarray
    description: str

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Inclusive ``(col0, row0, col1, row1)`` of the object."""
        rows, cols = np.nonzero(self.mask)
        return int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())


def _require_object(mask: np.ndarray, description: str, hint: str) -> ObjectMask:
    if not mask.any():
        raise InputError(f"the object mask is empty: {description}", hint=hint)
    return ObjectMask(mask, description)


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``COL0,ROW0,COL1,ROW1`` (inclusive pixel indices) → tuple; InputError when malformed."""
    try:
        values = tuple(int(v.strip()) for v in str(text).split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise InputError(f"a box is COL0,ROW0,COL1,ROW1 in slice pixels (four whole numbers), got {text!r}")
    return values  # type: ignore[return-value]


def _check_box(box, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    col0, row0, col1, row1 = (int(v) for v in box)
    rows, cols = shape
    if not (0 <= col0 <= col1 < cols and 0 <= row0 <= row1 < rows):
        raise InputError(
            f"the box (col0, row0, col1, row1) = {(col0, row0, col1, row1)} is not inside the slice: columns run "
            f"0 to {cols - 1}, rows 0 to {rows - 1}, and col0 ≤ col1, row0 ≤ row1",
            hint="read the pixel coordinates off slice_preview.png",
        )
    return col0, row0, col1, row1


def box_mask(shape: tuple[int, int], box) -> ObjectMask:
    """The box itself as the object."""
    col0, row0, col1, row1 = _check_box(box, shape)
    mask = np.zeros(shape, dtype=bool)
    mask[row0 : row1 + 1, col0 : col1 + 1] = True
    return ObjectMask(mask, f"box columns {col0}–{col1}, rows {row0}–{row1}")


def restrict_to_box(object_mask: ObjectMask, box) -> ObjectMask:
    """Keep only the part of a mask inside a box; empty → InputError."""
    inside = box_mask(object_mask.mask.shape, box)
    return _require_object(
        object_mask.mask & inside.mask,
        f"{object_mask.description}, within {inside.description}",
        "the box and the mask do not overlap; widen the box",
    )


def _slice_centres_ras(source: Slice) -> np.ndarray:
    rows, cols = source.shape
    row_index, col_index = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return source.pixel_to_ras_points(np.stack([col_index.ravel(), row_index.ravel()], axis=1))


def _ras_box(corners_ras: np.ndarray) -> str:
    low, high = corners_ras.min(axis=0), corners_ras.max(axis=0)
    return ", ".join(f"{axis} {a:.1f} to {b:.1f}" for axis, a, b in zip("RAS", low, high))


def _grid_corners(shape_ijk, ijk_to_ras: np.ndarray) -> np.ndarray:
    corners = np.array([[i, j, k] for i in (-0.5, shape_ijk[0] - 0.5) for j in (-0.5, shape_ijk[1] - 0.5)
                        for k in (-0.5, shape_ijk[2] - 0.5)])
    return corners @ ijk_to_ras[:3, :3].T + ijk_to_ras[:3, 3]


def mask_from_labelmap(source: Slice, labelled: LabelledVolume, label: str | int | None) -> ObjectMask:
    """The voxels of one label on the slice (nearest voxel in physical space).

    Raises
    ------
    InputError
        Label absent (lists the labels present); the file's grid does not overlap the
        slice; the label has no voxel on this slice (says which slices it spans).
    """
    volume = labelled.volume
    selected, description = label_mask(labelled, label)
    ijk = np.rint(volume.ras_to_ijk_points(_slice_centres_ras(source))).astype(np.int64)
    shape = np.array(volume.shape_ijk)
    inside = np.all((ijk >= 0) & (ijk < shape), axis=1)
    if not inside.any():
        raise InputError(
            f"the mask file does not overlap the slice: its grid covers {_ras_box(_grid_corners(volume.shape_ijk, volume.ijk_to_ras))}"
            f" (RAS mm), the slice covers {_ras_box(_slice_centres_ras(source))}",
            path=labelled.path,
            hint="pass a segmentation of this image (same patient and study), or check its origin/orientation",
        )
    values = np.zeros(inside.shape, dtype=bool)
    ii, jj, kk = ijk[inside].T
    values[inside] = selected[kk, jj, ii]
    mask = values.reshape(source.shape)
    if not mask.any():
        grid = "ijk".index(source.axis.grid_axis)
        voxels = np.argwhere(selected)[:, ::-1]
        ras = volume.ijk_to_ras_points(voxels)
        image_ras_to_ijk = np.linalg.inv(source.ijk_to_ras)
        positions = ras @ image_ras_to_ijk[grid, :3] + image_ras_to_ijk[grid, 3]
        first, last = int(np.rint(positions.min())), int(np.rint(positions.max()))
        raise InputError(
            f"{description} has no voxel on this slice ({source.axis.requested} index {source.index}); "
            f"it spans indices {first} to {last} along grid axis {source.axis.grid_axis}",
            path=labelled.path,
            hint=f"choose a slice between {first} and {last}",
        )
    return ObjectMask(mask, f"{description} of the labelmap")


def mask_from_file(source: Slice, path: str | Path, label: str | int | None) -> ObjectMask:
    """:func:`mask_from_labelmap` on a file (see :func:`~Wonder3DMedLib.imaging.labels.read_labelmap`)."""
    return mask_from_labelmap(source, read_labelmap(path), label)


def auto_mask(
    source: Slice,
    grey: np.ndarray,
    *,
    threshold: float | None = None,
    box=None,
) -> ObjectMask:
    """Find the object automatically: threshold, largest connected component, holes filled.

    Parameters
    ----------
    source : Slice
        Its pixels are the values ``threshold`` refers to.
    grey : (rows, cols) float
        The windowed slice in [0, 1]; Otsu's threshold is computed on it.
    threshold : float, optional
        Keep pixels whose value (in the volume's units, e.g. HU) is above this instead of
        Otsu's threshold of ``grey``.
    box : (col0, row0, col1, row1), optional
        Look only inside this box (Otsu's threshold is computed there too).

    Raises
    ------
    InputError
        Nothing above the threshold (e.g. a uniform slice).
    """
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    grey = np.asarray(grey, dtype=np.float64)
    region = np.ones(source.shape, dtype=bool)
    where = ""
    if box is not None:
        region = box_mask(source.shape, box).mask
        where = f" inside {box_mask(source.shape, box).description}"
    if threshold is None:
        values = grey[region & np.isfinite(grey)]
        if values.size == 0 or values.min() == values.max():
            raise InputError(
                f"the object mask is empty: the windowed slice is uniform{where}, so there is no object to find",
                hint="choose another slice or window, give --threshold, or pass --mask",
            )
        cut = float(threshold_otsu(values))
        foreground = (grey > cut) & region
        rule = f"Otsu threshold {cut:.3f} of the windowed slice"
    else:
        foreground = (np.asarray(source.pixels, dtype=np.float64) > threshold) & region
        rule = f"threshold {threshold:g}"
    labels, count = ndimage.label(foreground)
    if count == 0:
        raise InputError(
            f"the object mask is empty: no pixel is above the {rule}{where}",
            hint="lower --threshold, choose another slice, or pass --mask",
        )
    sizes = np.bincount(labels.ravel())[1:]
    largest = labels == (int(np.argmax(sizes)) + 1)
    filled = ndimage.binary_fill_holes(largest)
    return ObjectMask(filled, f"automatic: {rule}{where}, largest connected component, holes filled")
