"""Picking one object out of a labelmap or segmentation file: ``FILE[:LABEL]``.

Data form: a :class:`~Wonder3DMedLib.imaging.io.Volume` of integer labels in, a boolean
``(K, J, I)`` mask on the same grid out.

A label is a value (``71``) or a name. Names come from the file itself (3D Slicer's
``.seg.nrrd`` stores ``SegmentN_Name`` / ``SegmentN_LabelValue``) or from a colour table
beside it (``aal.nii.txt`` for ``aal.nii.gz``, ``<stem>.txt``, ``<stem>.ctbl``) whose lines
read ``<value> <name> ...``. Without a label the file must hold a single object.
"""

from __future__ import annotations

import difflib

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.imaging.io import Volume, check_nifti_file, sitk_has_no_reader, volume_from_sitk

__all__ = ["LabelledVolume", "read_labelmap", "label_names_from_table", "label_mask"]

_MAX_LISTED = 12


@dataclass(frozen=True, eq=False)
class LabelledVolume:
    """A labelmap and the names of its labels.

    Attributes
    ----------
    volume : Volume
        Integer label values; 0 is background.
    names : dict of int to str
        Known names of label values (may be empty).
    path : Path
    """

    volume: Volume
    names: dict[int, str] = field(default_factory=dict)
    path: Path | None = None


def label_names_from_table(path: str | Path) -> dict[int, str]:
    """Read a colour table whose lines are ``<value> <name> ...`` (``#`` starts a comment)."""
    names = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2:
            try:
                names[int(parts[0])] = parts[1]
            except ValueError:
                continue
    return names


def _table_beside(path: Path) -> Path | None:
    name = path.name
    stems = {path.with_suffix("").name, name.split(".")[0]}
    candidates = [path.with_suffix(".txt")] + [
        path.with_name(stem + suffix) for stem in sorted(stems) for suffix in (".txt", ".ctbl", "_ColorTable.txt")
    ]
    return next((c for c in candidates if c.is_file() and c != path), None)


def read_labelmap(path: str | Path) -> LabelledVolume:
    """Read a labelmap (NIfTI, NRRD, MHA…) or a Slicer ``.seg.nrrd`` with its label names.

    Raises
    ------
    InputError
        Missing or unreadable file, or voxel values that are not whole numbers.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise InputError("labelmap file not found", path=path)
    if path.is_dir():
        raise InputError(
            "a folder cannot be a labelmap or mesh reference (DICOM SEG and RT structure sets are not read)",
            path=path,
            hint="export the segmentation as a labelmap file (.nii.gz, .nrrd or .seg.nrrd), e.g. from 3D Slicer",
        )
    if path.name.lower().endswith((".nii", ".nii.gz")):
        check_nifti_file(path)
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        image = reader.Execute()
    except RuntimeError as error:
        if sitk_has_no_reader(error):
            raise InputError(
                f"'{path.suffix}' is neither a mesh nor an image format this tool reads",
                path=path,
                hint="meshes: .stl .ply .obj .vtk .vtp; labelmaps: .nii .nii.gz .nrrd .seg.nrrd .mha .mhd",
            ) from None
        raise InputError(f"cannot read labelmap: {str(error).strip().splitlines()[-1]}", path=path) from error
    names: dict[int, str] = {}
    segment_layers: dict[int, int] = {}
    keys = set(reader.GetMetaDataKeys())
    index = 0
    while f"Segment{index}_Name" in keys:
        value = int(reader.GetMetaData(f"Segment{index}_LabelValue")) if f"Segment{index}_LabelValue" in keys else index + 1
        layer = int(reader.GetMetaData(f"Segment{index}_Layer")) if f"Segment{index}_Layer" in keys else 0
        names[value] = reader.GetMetaData(f"Segment{index}_Name")
        segment_layers[value] = layer
        index += 1
    if image.GetNumberOfComponentsPerPixel() > 1:
        layers = {layer for layer in segment_layers.values()}
        if len(layers) > 1:
            raise InputError(
                "this segmentation stores overlapping segments in several layers; export the segment you need "
                "as a labelmap in Slicer (Segmentations module → Export to files)",
                path=path,
            )
        image = sitk.VectorIndexSelectionCast(image, min(layers or {0}))
    if image.GetDimension() != 3:
        raise InputError(f"expected a 3D labelmap, got a {image.GetDimension()}D image", path=path)
    volume = volume_from_sitk(image)
    array = volume.array
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all() or not np.array_equal(array[finite], np.round(array[finite])):
            raise InputError(
                "the labelmap holds non-integer values; pass a labelmap (integer labels), not an intensity image",
                path=path,
            )
    if not names:
        table = _table_beside(path)
        if table is not None:
            names = label_names_from_table(table)
    return LabelledVolume(volume=volume, names=names, path=path)


def _describe(values: np.ndarray, names: dict[int, str]) -> str:
    items = [f"{v} ({names[v]})" if v in names else str(v) for v in values[:_MAX_LISTED]]
    more = f" and {len(values) - _MAX_LISTED} more" if len(values) > _MAX_LISTED else ""
    return ", ".join(items) + more


def label_mask(labelled: LabelledVolume, label: str | int | None) -> tuple[np.ndarray, str]:
    """The voxels of one label.

    Parameters
    ----------
    labelled : LabelledVolume
    label : str, int or None
        A label value, a label name (case-insensitive), or None for "the only object".

    Returns
    -------
    mask : (K, J, I) bool
    description : str
        e.g. ``"label 71 (Caudate_L)"`` — for reports; holds no patient data.

    Raises
    ------
    InputError
        The label is absent (the message lists the labels present), or no label was
        given for a file holding several.
    """
    array = labelled.volume.array
    present = np.unique(array[array != 0]).astype(np.int64)
    where = labelled.path
    if present.size == 0:
        raise InputError("the labelmap is empty (every voxel is 0)", path=where)
    if label is None:
        if present.size > 1:
            raise InputError(
                f"the labelmap holds {present.size} labels; say which one with FILE:LABEL "
                f"(labels present: {_describe(present, labelled.names)})",
                path=where,
            )
        value = int(present[0])
    else:
        text = str(label).strip()
        try:
            value = int(text)
        except ValueError:
            matches = [v for v, n in labelled.names.items() if n.lower() == text.lower()]
            if not matches:
                spelled = {n.lower(): n for n in labelled.names.values()}
                close = difflib.get_close_matches(text.lower(), list(spelled), n=4, cutoff=0.6)
                if close:
                    known = " (did you mean " + " or ".join(sorted(spelled[c] for c in close)) + "?)"
                else:
                    names = sorted(labelled.names.values())
                    known = "; known names: " + (", ".join(names[:_MAX_LISTED]) or "none (no colour table found)")
                    known += f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
                raise InputError(
                    f"no label named '{text}'{known}; labels present: {_describe(present, labelled.names)}",
                    path=where,
                ) from None
            value = matches[0]
        if value == 0:
            raise InputError(
                "label 0 is the background of a labelmap, not an object; pick one of the labels present: "
                f"{_describe(present, labelled.names)}",
                path=where,
            )
        if value not in present:
            raise InputError(
                f"label {value} is not in the labelmap; labels present: {_describe(present, labelled.names)}",
                path=where,
            )
    name = labelled.names.get(value)
    description = f"label {value}" + (f" ({name})" if name else "")
    return array == value, description
