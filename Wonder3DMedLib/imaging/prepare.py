"""From a volume to Wonder3D's input: slice, window, object mask, framing — and the files.

Data form: a :class:`~Wonder3DMedLib.imaging.io.Volume` in; a :class:`PreparedSlice`
(every choice made, the framed input and its frame record) out; :func:`write_prepared`
writes ``input.png``, ``frame.json`` and ``slice_preview.png`` all or nothing.

This is what ``wonder3dmed prepare`` runs and what the end-to-end job reuses.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from Wonder3DMedLib.errors import InputError, OutputError
from Wonder3DMedLib.imaging.framing import WONDER3D_CROP_SIZE, FramedSlice, frame_slice
from Wonder3DMedLib.imaging.io import Volume
from Wonder3DMedLib.imaging.masks import ObjectMask, auto_mask, box_mask, mask_from_file, restrict_to_box
from Wonder3DMedLib.imaging.preview import slice_preview
from Wonder3DMedLib.imaging.slicing import Slice, slice_through, square_pixels, take_slice
from Wonder3DMedLib.imaging.windowing import Window, apply_window, choose_window

__all__ = ["OUTPUT_FILES", "PreparedSlice", "prepare_slice", "write_prepared"]

#: Files written by :func:`write_prepared`, in the output folder.
OUTPUT_FILES = ("input.png", "frame.json", "slice_preview.png")


@dataclass(frozen=True, eq=False)
class PreparedSlice:
    """Everything ``prepare`` chose and made.

    Attributes
    ----------
    slice : Slice
        The slice on square pixels (the grid of ``slice_preview.png`` and of ``--roi``).
    window : Window
    grey : (rows, cols) float32 in [0, 1]
        The windowed slice.
    object : ObjectMask
    framed : FramedSlice
        ``framed.input.rgba`` is ``input.png``, ``framed.frame`` is ``frame.json``.
    notes : list of str
        What was done on the way (resampling, DICOM notes).
    """

    slice: Slice
    window: Window
    grey: np.ndarray
    object: ObjectMask
    framed: FramedSlice
    notes: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        """Plain lines saying what was chosen (axis, index, window, mask, box, scale)."""
        source, frame = self.slice, self.framed.frame
        details = frame.details
        rows, cols = source.shape
        col0, row0, col1, row1 = self.object.box
        resized = details["resized"]
        return [
            f"slice:  {source.axis.describe()}, index {source.index}; {cols}×{rows} pixels of "
            f"{source.spacing[0]:.4g} mm",
            f"window: {self.window.describe()}",
            f"mask:   {self.object.description}; {int(self.object.mask.sum())} pixels, box columns {col0}–{col1}, "
            f"rows {row0}–{row1}",
            f"frame:  object scaled to {resized[0]}×{resized[1]} of {frame.image_size}² pixels "
            f"(supersampled ×{self.framed.supersample}); {frame.mm_per_pixel:.4g} mm per model pixel, "
            f"the model box [-1, 1] spans {frame.mm_per_pixel * frame.image_size:.4g} mm",
        ]


def prepare_slice(
    volume: Volume,
    *,
    axis: str,
    index: int | None = None,
    ras: Sequence[float] | None = None,
    window: str | Window | None = None,
    mask_file: str | Path | None = None,
    mask_label: str | int | None = None,
    automatic: bool = False,
    threshold: float | None = None,
    box: tuple[int, int, int, int] | None = None,
    crop_size: int = WONDER3D_CROP_SIZE,
) -> PreparedSlice:
    """Take a slice, window it, isolate the object and frame it for Wonder3D.

    Parameters
    ----------
    volume : Volume
    axis : {'axial', 'coronal', 'sagittal', 'i', 'j', 'k'}
    index : int, optional
        Grid index along the resolved axis; or
    ras : (3,) float, optional
        a point (RAS mm) the slice goes through: the nearest grid slice along the axis.
    window : str, Window or None
        Preset, ``"C,W"`` or a Window; None uses the DICOM window, else an automatic one.
    mask_file, mask_label
        A labelmap/segmentation file and the label (value or name) of the object.
    automatic : bool
        Find the object automatically (Otsu, or ``threshold`` in the volume's units).
    threshold : float, optional
    box : (col0, row0, col1, row1), optional
        Inclusive box in the square-pixel slice (``slice_preview.png``): alone, the box is
        the object; with a mask source, the object is restricted to it.
    crop_size : int

    Raises
    ------
    InputError
        No object source given, or any error of the steps (index out of range, empty
        mask, label absent, non-overlapping mask…).
    """
    if (index is None) == (ras is None):
        raise ValueError("give exactly one of index and ras")
    notes = list(volume.metadata.get("notes", []))
    raw = take_slice(volume, axis, index) if ras is None else slice_through(volume, axis, ras)
    source = square_pixels(raw)
    if source is not raw:
        col_mm, row_mm = raw.spacing
        notes.append(
            f"slice pixels of {col_mm:.4g}×{row_mm:.4g} mm resampled to square {source.spacing[0]:.4g} mm pixels "
            "(linear interpolation)"
        )
    chosen = choose_window(
        source.pixels,
        window,
        dicom_window=volume.dicom_window,
        voi_function=volume.metadata.get("voi_lut_function", "LINEAR"),
    )
    grey = apply_window(source.pixels, chosen)
    if mask_file is not None:
        found = mask_from_file(source, mask_file, mask_label)
        found = restrict_to_box(found, box) if box is not None else found
    elif automatic:
        found = auto_mask(source, grey, threshold=threshold, box=box)
    elif box is not None:
        found = box_mask(source.shape, box)
    else:
        raise InputError(
            "say what the object is: --mask FILE[:LABEL], --auto-mask or --roi COL0,ROW0,COL1,ROW1",
        )
    details = {
        "window": {"center": chosen.center, "width": chosen.width, "source": chosen.source, "function": chosen.function},
        "mask": found.description,
        "volume_shape_ijk": [int(v) for v in volume.shape_ijk],
        "volume_spacing_mm": [float(v) for v in volume.spacing],
        "modality": volume.metadata.get("modality", ""),
    }
    framed = frame_slice(source, grey, found.mask, crop_size=crop_size, details=details)
    return PreparedSlice(slice=source, window=chosen, grey=grey, object=found, framed=framed, notes=notes)


def write_prepared(prepared: PreparedSlice, folder: str | Path, *, overwrite: bool = False) -> dict[str, Path]:
    """Write ``input.png``, ``frame.json`` and ``slice_preview.png`` — all of them or none.

    The files are written under temporary names and renamed at the end; on any failure
    the temporary files (and a folder this call created) are removed.

    Returns
    -------
    dict
        File name → path written.

    Raises
    ------
    OutputError
        An output file exists and ``overwrite`` is false, or the folder cannot be written.
    """
    folder = Path(folder)
    targets = {name: folder / name for name in OUTPUT_FILES}
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing and not overwrite:
        raise OutputError(
            f"output file(s) already exist: {', '.join(existing)}",
            hint="choose another --out folder, or pass --overwrite to replace them",
        )
    if folder.exists() and not folder.is_dir():
        raise OutputError("the output path exists and is not a folder", path=folder)
    created = not folder.exists()
    temporary: dict[str, Path] = {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writers = {
            "input.png": lambda path: prepared.framed.input.rgba.save(path, format="PNG"),
            "frame.json": prepared.framed.frame.save,
            "slice_preview.png": lambda path: slice_preview(prepared.grey, prepared.object.mask).save(path, format="PNG"),
        }
        for name, write in writers.items():
            temporary[name] = folder / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.part"
            write(temporary[name])
        for name, temp in temporary.items():
            os.replace(temp, targets[name])
        temporary.clear()
    except OSError as error:
        raise OutputError(f"cannot write the outputs: {error}", path=folder) from error
    finally:
        for temp in temporary.values():
            temp.unlink(missing_ok=True)
        if created and folder.exists() and temporary and not any(folder.iterdir()):
            folder.rmdir()
    return targets
