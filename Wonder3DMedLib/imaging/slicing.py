"""One slice of a volume, with its own exact 2D → RAS mapping.

Data form: :class:`Slice` — ``pixels`` ``(rows, cols)`` and ``slice_to_ras``, the 4×4
matrix taking ``(col, row, d, 1)`` to RAS mm: ``col``/``row`` pixel indices with pixel
centres at integers (row 0 at the top of the image), ``d`` millimetres along the unit
normal that points **towards the viewer** of the image, ``−(col direction × row
direction)``. The pixel frame is left-handed (rows go down), so ``det(slice_to_ras) < 0``.

Which slice:

* ``axial``, ``coronal``, ``sagittal`` — resolved through the volume's direction matrix to
  the grid axis closest to the anatomical normal (S, A, R); a grid more than
  :data:`MAX_OBLIQUITY_DEG` away from it is refused rather than silently used. The image
  is then laid out as 3D Slicer's Red, Green and Yellow views show it (axial: patient left
  on the right, anterior up, seen from below; coronal: left on the right, superior up,
  seen from the front; sagittal: posterior on the right, superior up, seen from the
  patient's left), up to the grid's obliquity.
* ``i``, ``j``, ``k`` — the grid itself: slice ``k = n`` is ``array[n]`` (rows j, columns i);
  ``j = n`` is ``array[:, n, :]`` (rows k, columns i); ``i = n`` is ``array[:, :, n]``
  (rows k, columns j).

The index is always the grid index along the chosen axis (0 … size − 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.imaging.io import Volume

__all__ = [
    "ANATOMICAL_VIEWS",
    "MAX_OBLIQUITY_DEG",
    "AxisChoice",
    "Slice",
    "resolve_axis",
    "take_slice",
    "slice_through",
    "index_through",
    "resample_slice",
    "square_pixels",
]

#: Image-right and image-up RAS directions of 3D Slicer's standard views (vtkMRMLSliceNode presets).
ANATOMICAL_VIEWS = {
    "axial": ((-1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "coronal": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "sagittal": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
}

#: Largest angle (degrees) between the requested anatomical normal and the grid axis used.
MAX_OBLIQUITY_DEG = 30.0

_GRID = "ijk"
_NUMPY_AXIS = {"i": 2, "j": 1, "k": 0}
_RAW_LAYOUT = {"k": ("i", "j"), "j": ("i", "k"), "i": ("j", "k")}


@dataclass(frozen=True)
class AxisChoice:
    """How a requested axis maps onto the volume's grid.

    Attributes
    ----------
    requested : {'axial', 'coronal', 'sagittal', 'i', 'j', 'k'}
    grid_axis : {'i', 'j', 'k'}
        The grid axis normal to the slice.
    angle_deg : float
        Angle between that grid axis and the anatomical normal (0 for i/j/k requests).
    col_axis, row_axis : {'i', 'j', 'k'}
        Grid axes along the image columns (left → right) and rows (top → bottom).
    col_flip, row_flip : bool
        Whether the image runs against the grid axis.
    """

    requested: str
    grid_axis: str
    angle_deg: float
    col_axis: str
    row_axis: str
    col_flip: bool = False
    row_flip: bool = False

    def describe(self) -> str:
        """e.g. ``"axial -> grid axis k (2.0° off the S axis)"``."""
        if self.requested in _GRID:
            return f"grid axis {self.grid_axis}"
        normal = {"axial": "S", "coronal": "A", "sagittal": "R"}[self.requested]
        return f"{self.requested} -> grid axis {self.grid_axis} ({self.angle_deg:.1f}° off the {normal} axis)"


@dataclass(frozen=True, eq=False)
class Slice:
    """A 2D image placed in patient space.

    Attributes
    ----------
    pixels : (rows, cols) ndarray
        Values in the volume's units (never modified).
    slice_to_ras : (4, 4) float64
        ``(col, row, d, 1)`` → RAS mm; ``d`` in mm towards the viewer (see module docs).
    axis : AxisChoice
    index : int
        Index of the slice along ``axis.grid_axis``.
    ijk_to_ras : (4, 4) float64
        The volume's matrix.
    dicom_window : (center, width) or None
        The volume's DICOM window.
    """

    pixels: np.ndarray
    slice_to_ras: np.ndarray
    axis: AxisChoice
    index: int
    ijk_to_ras: np.ndarray
    dicom_window: tuple[float, float] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return tuple(self.pixels.shape)

    @property
    def spacing(self) -> np.ndarray:
        """(2,) mm between column centres and between row centres: ``(col_mm, row_mm)``."""
        return np.linalg.norm(self.slice_to_ras[:3, :2], axis=0)

    @property
    def normal(self) -> np.ndarray:
        """(3,) unit RAS normal towards the viewer."""
        return self.slice_to_ras[:3, 2].copy()

    @property
    def ras_to_slice(self) -> np.ndarray:
        """(4, 4) inverse of :attr:`slice_to_ras`."""
        return np.linalg.inv(self.slice_to_ras)

    def pixel_to_ras_points(self, col_row: np.ndarray) -> np.ndarray:
        """(n, 2) ``(col, row)`` → (n, 3) RAS mm on the slice plane."""
        col_row = np.asarray(col_row, dtype=np.float64)
        return col_row @ self.slice_to_ras[:3, :2].T + self.slice_to_ras[:3, 3]

    def ras_to_pixel_points(self, ras: np.ndarray) -> np.ndarray:
        """(n, 3) RAS mm → (n, 3) ``(col, row, d_mm)``."""
        ras = np.asarray(ras, dtype=np.float64)
        inverse = self.ras_to_slice
        return ras @ inverse[:3, :3].T + inverse[:3, 3]

    def with_pixels(self, pixels: np.ndarray) -> Slice:
        """The same geometry with other pixel values of the same shape (e.g. windowed)."""
        pixels = np.asarray(pixels)
        if pixels.shape != self.pixels.shape:
            raise ValueError(f"pixels must have shape {self.pixels.shape}, got {pixels.shape}")
        return Slice(pixels, self.slice_to_ras, self.axis, self.index, self.ijk_to_ras, self.dicom_window)


def _towards_viewer(slice_to_ras: np.ndarray) -> np.ndarray:
    normal = -np.cross(slice_to_ras[:3, 0], slice_to_ras[:3, 1])
    return normal / np.linalg.norm(normal)


def resolve_axis(volume: Volume, axis: str, *, max_obliquity_deg: float = MAX_OBLIQUITY_DEG) -> AxisChoice:
    """Map ``axial|coronal|sagittal|i|j|k`` onto the volume's grid.

    Raises
    ------
    InputError
        Unknown axis name, or no grid axis within ``max_obliquity_deg`` of the requested
        anatomical normal.
    """
    name = str(axis).strip().lower()
    if name in _GRID:
        col_axis, row_axis = _RAW_LAYOUT[name]
        return AxisChoice(name, name, 0.0, col_axis, row_axis)
    if name not in ANATOMICAL_VIEWS:
        raise InputError(f"unknown slice axis {axis!r}; use axial, coronal, sagittal, i, j or k")
    right, up = (np.array(v) for v in ANATOMICAL_VIEWS[name])
    normal = np.cross(right, up)
    directions = volume.directions
    cosines = np.abs(directions.T @ normal) / np.linalg.norm(directions, axis=0)
    grid = int(np.argmax(cosines))
    angle = float(np.degrees(np.arccos(np.clip(cosines[grid], -1.0, 1.0))))
    if angle > max_obliquity_deg:
        raise InputError(
            f"the volume's grid is oblique to the {name} direction: its closest grid axis "
            f"({_GRID[grid]}) is {angle:.1f}° away (at most {max_obliquity_deg:g}° is accepted)",
            hint="take a slice of the grid itself with --slice i:N, j:N or k:N, or reformat the volume in "
            "Slicer (Volumes module → 'Resample' or a transform) first",
        )
    first, second = (a for a in range(3) if a != grid)
    down = -up
    straight = abs(directions[:, first] @ right) + abs(directions[:, second] @ down)
    swapped = abs(directions[:, second] @ right) + abs(directions[:, first] @ down)
    col, row = (first, second) if straight >= swapped else (second, first)
    return AxisChoice(
        requested=name,
        grid_axis=_GRID[grid],
        angle_deg=angle,
        col_axis=_GRID[col],
        row_axis=_GRID[row],
        col_flip=bool(directions[:, col] @ right < 0),
        row_flip=bool(directions[:, row] @ down < 0),
    )


def take_slice(volume: Volume, axis: str, index: int, *, max_obliquity_deg: float = MAX_OBLIQUITY_DEG) -> Slice:
    """The slice ``index`` along ``axis`` (see the module docs for names and layout).

    Parameters
    ----------
    volume : Volume
    axis : {'axial', 'coronal', 'sagittal', 'i', 'j', 'k'}
    index : int
        Grid index along the resolved axis.
    max_obliquity_deg : float

    Returns
    -------
    Slice
        Pixels are a view into ``volume.array`` (never modified).

    Raises
    ------
    InputError
        Unknown or too oblique axis; index out of range (the message gives the valid range).
    """
    choice = resolve_axis(volume, axis, max_obliquity_deg=max_obliquity_deg)
    size = volume.shape_ijk[_GRID.index(choice.grid_axis)]
    if int(index) != index or not 0 <= index < size:
        where = choice.requested if choice.requested == choice.grid_axis else f"{choice.requested} (grid axis {choice.grid_axis})"
        raise InputError(
            f"slice index {index} is out of range for {where}: valid indices are 0 to {size - 1}",
            hint=f"the volume has {volume.shape_ijk[0]}×{volume.shape_ijk[1]}×{volume.shape_ijk[2]} voxels (i×j×k)",
        )
    index = int(index)
    plane = np.take(volume.array, index, axis=_NUMPY_AXIS[choice.grid_axis])
    # np.take leaves the two other grid axes in numpy order (descending grid order).
    remaining = [a for a in "kji" if a != choice.grid_axis]
    if remaining != [choice.row_axis, choice.col_axis]:
        plane = plane.T
    if choice.row_flip:
        plane = plane[::-1, :]
    if choice.col_flip:
        plane = plane[:, ::-1]
    slice_to_ijk = np.zeros((4, 4))
    slice_to_ijk[3, 3] = 1.0
    shape = volume.shape_ijk
    for column, grid_name, flip in ((0, choice.col_axis, choice.col_flip), (1, choice.row_axis, choice.row_flip)):
        g = _GRID.index(grid_name)
        slice_to_ijk[g, column] = -1.0 if flip else 1.0
        slice_to_ijk[g, 3] = shape[g] - 1 if flip else 0.0
    slice_to_ijk[_GRID.index(choice.grid_axis), 3] = index
    slice_to_ras = volume.ijk_to_ras @ slice_to_ijk
    slice_to_ras[:3, 2] = _towards_viewer(slice_to_ras)
    return Slice(plane, slice_to_ras, choice, index, volume.ijk_to_ras, volume.dicom_window)


def index_through(
    volume: Volume, axis: str, ras: np.ndarray, *, max_obliquity_deg: float = MAX_OBLIQUITY_DEG
) -> int:
    """Grid index of the slice along ``axis`` nearest to a RAS point (e.g. a Slicer slice offset or a fiducial).

    Raises
    ------
    InputError
        The point lies outside the volume along the slice axis, or the axis cannot be resolved.
    """
    choice = resolve_axis(volume, axis, max_obliquity_deg=max_obliquity_deg)
    g = _GRID.index(choice.grid_axis)
    position = float(volume.ras_to_ijk_points(np.asarray(ras, dtype=np.float64).reshape(1, 3))[0, g])
    size = volume.shape_ijk[g]
    if not -0.5 <= position < size - 0.5:
        raise InputError(
            f"the point {np.round(ras, 2).tolist()} (RAS mm) is outside the volume along grid axis "
            f"{choice.grid_axis}: it falls at index {position:.1f}, valid indices are 0 to {size - 1}"
        )
    return int(np.floor(position + 0.5))


def slice_through(
    volume: Volume, axis: str, ras: np.ndarray, *, max_obliquity_deg: float = MAX_OBLIQUITY_DEG
) -> Slice:
    """The grid slice along ``axis`` nearest to a RAS point (see :func:`index_through`)."""
    index = index_through(volume, axis, ras, max_obliquity_deg=max_obliquity_deg)
    return take_slice(volume, axis, index, max_obliquity_deg=max_obliquity_deg)


def resample_slice(
    source: Slice,
    *,
    origin: tuple[float, float],
    step: tuple[float, float],
    shape: tuple[int, int],
    order: int = 1,
) -> Slice:
    """Sample a slice on another pixel grid of the same plane.

    Parameters
    ----------
    source : Slice
    origin : (col, row) float
        Where the centre of the new pixel (0, 0) lies, in source pixel coordinates.
    step : (col_step, row_step) float
        Source pixels per new pixel along columns and rows.
    shape : (rows, cols) int
    order : int
        Spline order of the interpolation (0 nearest, 1 linear, 3 cubic); values beyond
        the source's edge repeat the edge.

    Returns
    -------
    Slice
        float32 pixels; ``slice_to_ras = source.slice_to_ras @ new_to_source`` (exact).
    """
    from scipy.ndimage import map_coordinates

    rows, cols = (int(v) for v in shape)
    if rows < 1 or cols < 1 or min(step) <= 0:
        raise ValueError(f"shape must be positive and step > 0, got shape {shape}, step {step}")
    col_coords = origin[0] + step[0] * np.arange(cols)
    row_coords = origin[1] + step[1] * np.arange(rows)
    grid = np.meshgrid(row_coords, col_coords, indexing="ij")
    pixels = map_coordinates(np.asarray(source.pixels, dtype=np.float32), grid, order=order, mode="nearest")
    new_to_source = np.array(
        [[step[0], 0.0, 0.0, origin[0]], [0.0, step[1], 0.0, origin[1]], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    )
    return Slice(
        pixels.astype(np.float32),
        source.slice_to_ras @ new_to_source,
        source.axis,
        source.index,
        source.ijk_to_ras,
        source.dicom_window,
    )


def square_pixels(source: Slice, *, order: int = 1) -> Slice:
    """The slice on square pixels of the finer spacing (unchanged when already square).

    The new grid starts at the source's first pixel edge and covers the same extent up to
    half a new pixel; values are interpolated (linear by default). Geometry stays exact.
    """
    col_mm, row_mm = source.spacing
    size = min(col_mm, row_mm)
    if abs(col_mm - row_mm) <= 1e-6 * size:
        return source
    rows, cols = source.shape
    step = (size / col_mm, size / row_mm)
    shape = (max(1, int(round(rows * row_mm / size))), max(1, int(round(cols * col_mm / size))))
    origin = (0.5 * step[0] - 0.5, 0.5 * step[1] - 0.5)
    return resample_slice(source, origin=origin, step=step, shape=shape, order=order)
