"""DICOM files and series folders as :class:`~Wonder3DMedLib.imaging.io.Volume`, with pydicom.

Data form: DICOM datasets in; a ``Volume`` (``array[k, j, i]`` of modality values,
``ijk_to_ras`` in RAS mm) out.

What this module does with the files:

* **Pixels** — decoded by pydicom (compressed transfer syntaxes through its plugins, e.g.
  pylibjpeg); the Modality LUT is applied (RescaleSlope/RescaleIntercept, per frame for
  enhanced multi-frame objects, DoseGridScaling for RT dose, or a Modality LUT sequence),
  so values are physical (e.g. Hounsfield units). MONOCHROME1 images ("higher is darker")
  are inverted within their value range so that higher is always brighter; their windows
  are inverted with them.
* **Geometry** — ImageOrientationPatient gives the i (along a row) and j (down a column)
  directions, PixelSpacing ``[row spacing, column spacing]`` their spacings, and the
  slices are sorted by ImagePositionPatient projected on the slice normal ``i × j`` —
  never by file name or InstanceNumber. The k axis is that normal, so the grid is
  right-handed. Uneven slice spacing is resampled onto an even grid (linear
  interpolation, with a note and a warning) when no gap exceeds three times the smallest;
  wilder spacing, duplicate positions (4D series) and slices not stacked along their
  normal (gantry tilt) are refused.
* **Series** — a folder is searched recursively; files are grouped by SeriesInstanceUID.
  Objects without pixel data (RTSTRUCT, SR, DICOMDIR…) are skipped in folders and refused
  as single files.

Nothing identifying the patient is kept: the returned volume's metadata holds only the
modality, windows, transfer syntax names and notes.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.imaging.dicom_pixels import decode_frames, display_windows, functional_group_item, modality_frames
from Wonder3DMedLib.imaging.io import LPS_TO_RAS, Volume
from Wonder3DMedLib.progress import ProgressCallback, report

__all__ = [
    "DicomSeries",
    "is_dicom_file",
    "parses_as_dicom",
    "list_dicom_series",
    "read_dicom_file",
    "read_dicom_series",
]

_DICOM_SUFFIXES = {".dcm", ".dicom", ".ima"}
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_MAX_LISTED = 10
#: Values larger than this are read from disk only when used (pixel data during a folder scan).
_DEFER_BYTES = 4096
#: Slices further apart than this many times the smallest gap are not interpolated across.
_MAX_GAP_RATIO = 3.0


@dataclass(frozen=True)
class DicomSeries:
    """One image series found in a folder.

    Attributes
    ----------
    uid : str
        SeriesInstanceUID (what ``series_uid=`` / ``--series`` takes).
    description : str
        SeriesDescription ('' when absent).
    modality : str
    number : int or None
        SeriesNumber.
    files : tuple of Path
        The image files of the series (in folder order, not sorted by position).
    """

    uid: str
    description: str
    modality: str
    number: int | None
    files: tuple[Path, ...]

    def describe(self) -> str:
        """One line for listings: UID, modality, number, description and file count."""
        number = f"#{self.number} " if self.number is not None else ""
        return f"{self.uid}  {self.modality or '?'} {number}'{self.description}' ({len(self.files)} files)"


@dataclass(frozen=True)
class _Planes:
    """Decoded frames of one or more files and where each lies (LPS mm)."""

    frames: list  # (rows, cols) arrays of modality values
    positions: np.ndarray  # (n, 3) LPS of each frame's first pixel centre
    row_dir: np.ndarray  # unit LPS direction along a row (increasing column, the i axis)
    col_dir: np.ndarray  # unit LPS direction down a column (increasing row, the j axis)
    pixel_spacing: tuple[float, float]  # (between rows, between columns) mm
    step_hint: float  # slice spacing to use when there is a single slice
    windows: list
    notes: list


# ----------------------------------------------------------------------------------------------
# Recognising and opening files


def is_dicom_file(path: str | Path) -> bool:
    """True for a file with the DICOM preamble ("DICM" at byte 128) or a DICOM suffix."""
    path = Path(path)
    if path.suffix.lower() in _DICOM_SUFFIXES or path.name.upper() == "DICOMDIR":
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def parses_as_dicom(path: str | Path) -> bool:
    """True when pydicom reads the file as a DICOM dataset even without preamble."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(str(path), force=True, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - any failure means "not DICOM" here
        return False
    return "SOPClassUID" in dataset or "Rows" in dataset


def _may_lack_preamble(path: Path) -> bool:
    """Names DICOM files without the 128-byte preamble may have: .dcm, no suffix, or a UID-like one."""
    suffix = path.suffix.lower()
    return suffix in _DICOM_SUFFIXES or suffix == "" or suffix[1:].isdigit()


def _open(path: Path, *, deferred: bool = False):
    """The dataset of a file; files without the DICOM preamble are accepted when they parse.

    ``deferred`` leaves large values (the pixel data) on disk until they are used.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        try:
            return pydicom.dcmread(str(path), defer_size=_DEFER_BYTES if deferred else None)
        except InvalidDicomError:
            if not _may_lack_preamble(path):
                raise InputError(
                    "not a DICOM file (no DICOM header found)",
                    path=path,
                    hint="pass a DICOM file or series folder, or a NIfTI, NRRD or MHA volume",
                ) from None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # probing a file without preamble: pydicom's guesses are noise
                dataset = pydicom.dcmread(str(path), defer_size=_DEFER_BYTES if deferred else None, force=True)
            if "SOPClassUID" not in dataset and "Rows" not in dataset:
                raise InputError(
                    "not a DICOM file (no DICOM header found)",
                    path=path,
                    hint="pass a DICOM file or series folder, or a NIfTI, NRRD or MHA volume",
                ) from None
            return dataset
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - pydicom raises many types on damaged files
        raise InputError(
            f"cannot read the DICOM file, it is truncated or corrupt ({type(error).__name__}: {error})",
            path=path,
            hint="copy the file again from its source (PACS, CD, archive)",
        ) from error


def _has_pixels(dataset) -> bool:
    return any(keyword in dataset for keyword in _PIXEL_KEYWORDS)


def _kind_of(dataset) -> str:
    modality = str(dataset.get("Modality", "") or "?")
    sop = dataset.get("SOPClassUID")
    name = getattr(sop, "name", None) or str(sop or "unknown SOP class")
    return f"Modality {modality}, {name}"


def _refuse_without_pixels(dataset, path: Path) -> None:
    if _has_pixels(dataset):
        return
    copy_again = "copy the file again from its source (PACS, CD, archive)"
    if "SOPClassUID" not in dataset:
        raise InputError(
            "the DICOM file ends before its data set (no SOP class, no pixel data): it is truncated or corrupt",
            path=path,
            hint=copy_again,
        )
    if "Rows" in dataset or "Image Storage" in getattr(dataset.SOPClassUID, "name", ""):
        raise InputError(
            f"the DICOM file describes an image ({_kind_of(dataset)}) but its pixel data is missing: the file is "
            "truncated or corrupt",
            path=path,
            hint=copy_again,
        )
    raise InputError(
        f"this DICOM file holds no image ({_kind_of(dataset)}); it has no pixel data to slice",
        path=path,
        hint="pass the image file or series folder (CT, MR…) instead, e.g. the series an RTSTRUCT refers to",
    )


def _refuse_colour(dataset, path: Path) -> None:
    samples = int(dataset.get("SamplesPerPixel", 1) or 1)
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputError(
            f"this DICOM image is in colour ({photometric}, {samples} samples per pixel); "
            "Wonder3DMed needs a greyscale (MONOCHROME) image",
            path=path,
            hint="use the greyscale series of the study, or convert the image to greyscale first",
        )


# ----------------------------------------------------------------------------------------------
# Geometry


def _unit(vector, what: str, path: Path) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    norm = np.linalg.norm(vector)
    if not np.isfinite(norm) or norm < 1e-6:
        raise InputError(f"invalid {what} {vector.tolist()} in the DICOM header", path=path)
    return vector / norm


def _planes(dataset, frames: list, path: Path) -> _Planes:
    """Where each frame of one dataset lies, from classic or enhanced (functional group) attributes."""
    notes: list[str] = []
    count = len(frames)
    orientation = dataset.get("ImageOrientationPatient")
    if orientation is None:
        item = functional_group_item(dataset, 0, "PlaneOrientationSequence")
        orientation = item.get("ImageOrientationPatient") if item is not None else None
    if orientation is None or len(orientation) != 6:
        orientation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        notes.append("no ImageOrientationPatient: the image is assumed axial (rows along L, columns along P)")
    row_dir = _unit(orientation[:3], "ImageOrientationPatient row direction", path)
    col_dir = _unit(orientation[3:], "ImageOrientationPatient column direction", path)
    if abs(row_dir @ col_dir) > 1e-3:
        raise InputError("ImageOrientationPatient's row and column directions are not perpendicular", path=path)
    normal = np.cross(row_dir, col_dir)

    measures = functional_group_item(dataset, 0, "PixelMeasuresSequence")
    spacing = dataset.get("PixelSpacing") or (measures.get("PixelSpacing") if measures is not None else None)
    if spacing is None and dataset.get("ImagerPixelSpacing") is not None:
        spacing = dataset.ImagerPixelSpacing
        notes.append("no PixelSpacing: ImagerPixelSpacing (at the detector) is used")
    if spacing is None:
        spacing = [1.0, 1.0]
        notes.append("no PixelSpacing: 1 mm pixels are assumed")
    pixel_spacing = (float(spacing[0]), float(spacing[1]))
    if min(pixel_spacing) <= 0:
        raise InputError(f"invalid PixelSpacing {list(pixel_spacing)} in the DICOM header", path=path)
    step = None
    for source in (dataset, measures):
        if source is not None:
            for keyword in ("SpacingBetweenSlices", "SliceThickness"):
                if step is None and source.get(keyword) not in (None, "") and float(source.get(keyword)) > 0:
                    step = float(source.get(keyword))

    per_frame = [functional_group_item(dataset, f, "PlanePositionSequence") for f in range(count)]
    origin = dataset.get("ImagePositionPatient")
    if "PerFrameFunctionalGroupsSequence" in dataset and all(item is not None for item in per_frame):
        positions = np.array([[float(v) for v in item.ImagePositionPatient] for item in per_frame])
    elif origin is not None and len(origin) == 3:
        origin = np.array([float(v) for v in origin])
        offsets = dataset.get("GridFrameOffsetVector")
        if count > 1 and offsets is not None and len(offsets) == count:
            offsets = np.array([float(v) for v in offsets])
            if offsets[0] != 0 and str(dataset.get("Modality", "")) == "RTDOSE":
                offsets = offsets - offsets[0]  # relative offsets per PS3.3 C.8.8.3.2 when the first is not 0
        else:
            offsets = np.arange(count) * (step or 1.0)
            if count > 1:
                notes.append(f"frame positions not stored: frames assumed {step or 1.0:g} mm apart")
        positions = origin + offsets[:, None] * normal
    else:
        positions = np.arange(count)[:, None] * (step or 1.0) * normal
        notes.append("no ImagePositionPatient: the image is placed at the origin of patient space")
    windows, _ = display_windows(dataset)
    return _Planes(frames, positions, row_dir, col_dir, pixel_spacing, step or 1.0, windows, notes)


def _stack(planes: _Planes, where: Path) -> tuple[np.ndarray, np.ndarray, list]:
    """Sort frames along the normal, check the stacking, return (array[k, j, i], ijk_to_lps, notes)."""
    notes = list(planes.notes)
    normal = np.cross(planes.row_dir, planes.col_dir)
    depth = planes.positions @ normal
    order = np.argsort(depth, kind="stable")
    depth = depth[order]
    positions = planes.positions[order]
    frames = [planes.frames[i] for i in order]
    count = len(frames)
    if count > 1:
        gaps = np.diff(depth)
        if np.any(gaps < 1e-3):
            distinct = int(np.sum(gaps >= 1e-3) + 1)
            raise InputError(
                f"{count} images lie at only {distinct} distinct positions: the series holds several volumes "
                "(time points, echoes, b-values or repeats), i.e. it is 4D",
                path=where,
                hint="export one 3D volume of the series (e.g. with Slicer's DICOM module or Sequences module)",
            )
        in_plane = positions - positions[0] - np.outer(depth - depth[0], normal)
        tolerance = 0.05 * min(planes.pixel_spacing)
        if np.abs(in_plane).max() > tolerance:
            raise InputError(
                f"the slices are not stacked along their normal (they shift by up to "
                f"{np.abs(in_plane).max():.2f} mm in-plane): gantry tilt or a sheared acquisition",
                path=where,
                hint="resample the series in Slicer first (load it with 'Acquisition geometry regularization')",
            )
        step = float(np.median(gaps))
        if gaps.max() > _MAX_GAP_RATIO * gaps.min():
            raise InputError(
                f"the {count} slices are too unevenly spaced to form a volume ({gaps.min():.3g} to "
                f"{gaps.max():.3g} mm apart); they look like separate images (scouts, key images) rather than "
                "one scan",
                path=where,
                hint="pass one of the files on its own, or the folder of a contiguous series",
            )
        if np.abs(gaps - step).max() > 0.01 * step + 1e-4:
            frames, depth, step, note = _even_spacing(frames, depth, gaps)
            notes.append(note)
            warnings.warn(f"{where}: {note}", UserWarning, stacklevel=3)
    else:
        step = planes.step_hint
    array = np.stack(frames)
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, 0] = planes.row_dir * planes.pixel_spacing[1]
    ijk_to_lps[:3, 1] = planes.col_dir * planes.pixel_spacing[0]
    ijk_to_lps[:3, 2] = normal * step
    ijk_to_lps[:3, 3] = positions[0]
    return array, ijk_to_lps, notes


def _even_spacing(frames: list, depth: np.ndarray, gaps: np.ndarray):
    """Resample unevenly spaced slices onto an even grid from the first to the last, linearly."""
    typical = float(np.median(gaps))
    extent = float(depth[-1] - depth[0])
    count = int(round(extent / typical)) + 1
    step = extent / (count - 1)
    targets = depth[0] + step * np.arange(count)
    position = np.interp(targets, depth, np.arange(len(depth)))
    position = np.where(np.abs(position - np.round(position)) < 1e-6, np.round(position), position)
    below = np.clip(np.floor(position).astype(int), 0, len(frames) - 2)
    weight = position - below
    stack = np.stack(frames).astype(np.float32)
    resampled = [(1 - w) * stack[b] + w * stack[b + 1] for b, w in zip(below, weight)]
    note = (
        f"uneven slice spacing ({gaps.min():.3g} to {gaps.max():.3g} mm): resampled to {count} slices "
        f"{step:.4g} mm apart by linear interpolation"
    )
    return resampled, targets, step, note


# ----------------------------------------------------------------------------------------------
# Volumes


def _read_planes(path: Path, dataset=None) -> tuple[_Planes, dict]:
    dataset = _open(path) if dataset is None else dataset
    _refuse_without_pixels(dataset, path)
    _refuse_colour(dataset, path)
    frames, invert_range = modality_frames(dataset, decode_frames(dataset, path))
    planes = _planes(dataset, frames, path)
    _, function = display_windows(dataset)
    facts = {
        "modality": str(dataset.get("Modality", "") or ""),
        "transfer_syntax": getattr(dataset.file_meta.get("TransferSyntaxUID"), "name", "")
        if hasattr(dataset, "file_meta")
        else "",
        "voi_lut_function": function,
        "invert_range": invert_range,
    }
    return planes, facts


def _volume(array: np.ndarray, ijk_to_lps: np.ndarray, windows: list, facts: dict, notes: list) -> Volume:
    windows = list(windows)
    if facts["invert_range"] is not None:
        low, high = facts["invert_range"]
        total = low + high
        if array.dtype.kind == "f" or total != round(total):
            array = total - array.astype(np.float64)
        else:
            array = int(total) - array.astype(np.int64)
        windows = [(total - c, w) for c, w in windows]
        notes = notes + ["MONOCHROME1 image: values inverted so that higher is brighter"]
    metadata = {
        "format": "DICOM",
        "modality": facts["modality"],
        "transfer_syntax": facts["transfer_syntax"],
        "windows": [list(pair) for pair in windows],
        "voi_lut_function": facts["voi_lut_function"],
        "inverted": facts["invert_range"] is not None,
        "notes": notes,
    }
    return Volume(_compact(array), LPS_TO_RAS @ ijk_to_lps, dicom_window=windows[0] if windows else None,
                  metadata=metadata)


def _compact(array: np.ndarray) -> np.ndarray:
    """float32 for real values, the smallest of int16/int32 that holds integer ones."""
    if array.dtype.kind == "f":
        return array.astype(np.float32, copy=False)
    for dtype in (np.int16, np.int32):
        if np.iinfo(dtype).min <= array.min() and array.max() <= np.iinfo(dtype).max:
            return array.astype(dtype, copy=False)
    return array


def read_dicom_file(path: str | Path) -> Volume:
    """Read one DICOM file (single- or multi-frame) as a volume.

    A single-frame image becomes a one-slice volume whose k spacing is
    SpacingBetweenSlices or SliceThickness (1 mm when neither is stored).

    Raises
    ------
    InputError
        Not DICOM, truncated, no pixel data (RTSTRUCT, SR…), colour, no decoder for its
        transfer syntax, several volumes in one file.
    """
    path = Path(path)
    planes, facts = _read_planes(path)
    array, ijk_to_lps, notes = _stack(planes, path)
    return _volume(array, ijk_to_lps, planes.windows, facts, notes)


def _scan(folder: Path, progress: ProgressCallback | None) -> dict[str, list]:
    """Image datasets (pixel data deferred) of a folder, grouped by SeriesInstanceUID."""
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    groups: dict[str, list] = {}
    others: Counter = Counter()
    for number, path in enumerate(files):
        report(progress, number / max(len(files), 1), "reading DICOM headers")
        try:
            dataset = _open(path, deferred=True)
        except InputError:
            others["non-DICOM"] += 1
            continue
        if "Rows" not in dataset or "Columns" not in dataset:
            others[str(dataset.get("Modality", "") or "DICOM") + " without pixel data"] += 1
            continue
        uid = str(dataset.get("SeriesInstanceUID", "") or "unknown")
        groups.setdefault(uid, []).append((path, dataset))
    report(progress, 1.0, "reading DICOM headers")
    if not groups:
        found = ", ".join(f"{n} {kind}" for kind, n in sorted(others.items())) or "no files"
        raise InputError(
            f"the folder holds no DICOM image series (found {found})",
            path=folder,
            hint="pass the folder of the image series (CT, MR…), a DICOM file, or a NIfTI/NRRD/MHA volume",
        )
    return groups


def _describe_series(groups: dict[str, list]) -> list[DicomSeries]:
    series = []
    for uid, members in groups.items():
        first = members[0][1]
        number = first.get("SeriesNumber")
        series.append(
            DicomSeries(
                uid=uid,
                description=str(first.get("SeriesDescription", "") or ""),
                modality=str(first.get("Modality", "") or ""),
                number=int(number) if number not in (None, "") else None,
                files=tuple(path for path, _ in members),
            )
        )
    return sorted(series, key=lambda s: (-len(s.files), s.uid))


def list_dicom_series(folder: str | Path, *, progress: ProgressCallback | None = None) -> list[DicomSeries]:
    """The image series in a folder (searched recursively), largest first.

    Files that are not DICOM and DICOM objects without pixel data are skipped.

    Raises
    ------
    InputError
        The folder holds no DICOM image (the message says what it found instead).
    """
    return _describe_series(_scan(Path(folder), progress))


def _choose(series: list[DicomSeries], series_uid: str | None, folder: Path) -> DicomSeries:
    listing = "\n".join(f"    {s.describe()}" for s in series[:_MAX_LISTED])
    if len(series) > _MAX_LISTED:
        listing += f"\n    … and {len(series) - _MAX_LISTED} more"
    if series_uid is None:
        if len(series) == 1:
            return series[0]
        raise InputError(
            f"the folder holds {len(series)} image series; say which one with --series UID:\n{listing}",
            path=folder,
        )
    for candidate in series:
        if candidate.uid == series_uid.strip():
            return candidate
    raise InputError(f"no series with UID {series_uid} in the folder; series present:\n{listing}", path=folder)


def read_dicom_series(
    folder: str | Path, *, series_uid: str | None = None, progress: ProgressCallback | None = None
) -> Volume:
    """Read one DICOM series from a folder as a volume, slices sorted by position.

    Parameters
    ----------
    folder : str or Path
    series_uid : str, optional
        SeriesInstanceUID to read when the folder holds several series.
    progress : callable, optional

    Raises
    ------
    InputError
        No image series; several series and no (or an unknown) ``series_uid`` (the
        message lists UID, modality, number, description and file count of each);
        images of different sizes or orientations; 4D or tilted series; any error of
        :func:`read_dicom_file` in one of the files.
    """
    folder = Path(folder)
    headers = None if progress is None else (lambda f, m: report(progress, 0.3 * f, m))
    groups = _scan(folder, headers)
    chosen = _choose(_describe_series(groups), series_uid, folder)
    planes_list, facts_list = [], []
    for number, (path, dataset) in enumerate(groups[chosen.uid]):
        report(progress, 0.3 + 0.7 * number / len(chosen.files), "reading DICOM pixels")
        planes, facts = _read_planes(path, dataset)
        for keyword in _PIXEL_KEYWORDS:  # decoded: let the raw bytes go
            if keyword in dataset:
                del dataset[keyword]
        planes_list.append(planes)
        facts_list.append(facts)
    report(progress, 1.0, "reading DICOM pixels")
    planes = _merge(planes_list, chosen, folder)
    array, ijk_to_lps, notes = _stack(planes, folder)
    facts = dict(facts_list[0])
    ranges = [f["invert_range"] for f in facts_list if f["invert_range"] is not None]
    if ranges:
        facts["invert_range"] = (min(r[0] for r in ranges), max(r[1] for r in ranges))
    # The windows of the files whose first window is the most common one (files may differ).
    firsts = Counter(tuple(p.windows[0]) for p in planes_list if p.windows)
    windows = []
    if firsts:
        common = firsts.most_common(1)[0][0]
        windows = next(p.windows for p in planes_list if p.windows and tuple(p.windows[0]) == common)
    return _volume(array, ijk_to_lps, windows, facts, notes)


def _merge(planes_list: list[_Planes], chosen: DicomSeries, folder: Path) -> _Planes:
    """One stack from the files of a series; refuses mixed sizes or orientations."""
    def signature(p: _Planes):
        return (p.frames[0].shape, tuple(np.round(p.row_dir, 3)), tuple(np.round(p.col_dir, 3)),
                tuple(np.round(p.pixel_spacing, 4)))

    kinds = Counter(signature(p) for p in planes_list)
    if len(kinds) > 1:
        described = "; ".join(
            f"{n} file(s) of {shape[1]}×{shape[0]} px, rows along {list(row)}, spacing {list(spacing)} mm"
            for (shape, row, _, spacing), n in kinds.most_common()
        )
        raise InputError(
            f"series {chosen.uid} mixes images of different sizes, orientations or pixel spacings "
            f"({described}); it cannot be stacked into one volume",
            path=folder,
            hint="export the sub-series you want (e.g. without localizer images) into its own folder",
        )
    first = planes_list[0]
    notes = list(dict.fromkeys(note for p in planes_list for note in p.notes))
    return _Planes(
        frames=[frame for p in planes_list for frame in p.frames],
        positions=np.concatenate([p.positions for p in planes_list]),
        row_dir=first.row_dir,
        col_dir=first.col_dir,
        pixel_spacing=first.pixel_spacing,
        step_hint=first.step_hint,
        windows=first.windows,
        notes=notes,
    )
