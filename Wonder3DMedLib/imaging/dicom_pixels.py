"""DICOM pixel values: decoding, the Modality LUT, MONOCHROME1 and display windows.

Data form: a pydicom dataset in; frames ``(rows, cols)`` of modality values (integers when
the rescale keeps integers, float32 otherwise) and ``(center, width)`` window pairs out.

Decoding goes through pydicom and its plugins (pylibjpeg with pylibjpeg-libjpeg and
pylibjpeg-openjpeg for the JPEG, JPEG-LS and JPEG 2000 families; RLE and deflate are
built in). When a transfer syntax cannot be decoded the error names the decoder to
install, or says that none exists in Python.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from Wonder3DMedLib.errors import InputError

__all__ = ["functional_group_item", "decode_frames", "modality_frames", "display_windows"]


def functional_group_item(dataset, frame: int, sequence: str):
    """The first item of ``sequence`` in the per-frame functional group of ``frame``, else the shared one."""
    for groups, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        if groups in dataset and len(dataset[groups].value) > index:
            group = dataset[groups].value[index]
            if sequence in group and len(group[sequence].value) > 0:
                return group[sequence].value[0]
    return None


def _decoder_hint(transfer_syntax) -> str:
    from pydicom.pixels import get_decoder

    name = getattr(transfer_syntax, "name", str(transfer_syntax))
    try:
        decoder = get_decoder(transfer_syntax)
    except (NotImplementedError, ValueError):
        return (
            f"pydicom has no decoder for {name} ({transfer_syntax}); convert the files to an uncompressed "
            "transfer syntax first (e.g. `gdcmconv --raw in.dcm out.dcm` or `dcmdjpeg in.dcm out.dcm`)"
        )
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
        return f"no decoder for {name} ({transfer_syntax}) is installed; install one of: {missing}"
    return f"decoders tried for {name}: {', '.join(decoder.available_plugins)}"


def decode_frames(dataset, path: Path) -> np.ndarray:
    """Stored pixel values as ``(frames, rows, cols)``.

    Raises
    ------
    InputError
        Truncated pixel data, no decoder for the transfer syntax, or a decoder failure.
    """
    meta = getattr(dataset, "file_meta", None)
    transfer_syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    try:
        pixels = dataset.pixel_array
    except NotImplementedError as error:
        raise InputError(f"cannot decode the pixel data: {_decoder_hint(transfer_syntax)}", path=path) from error
    except ValueError as error:
        text = str(error)
        if "less than expected" in text:
            raise InputError(
                f"the DICOM file is truncated: {text.split(' - ')[0]}",
                path=path,
                hint="copy the file again from its source (PACS, CD, archive)",
            ) from error
        raise InputError(f"cannot decode the pixel data: {text}", path=path) from error
    except (RuntimeError, AttributeError, KeyError, TypeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        compressed = transfer_syntax is not None and getattr(transfer_syntax, "is_compressed", False)
        raise InputError(
            f"cannot decode the pixel data ({first})",
            path=path,
            hint=_decoder_hint(transfer_syntax) if compressed else None,
        ) from error
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    return np.asarray(pixels).reshape(frames, int(dataset.Rows), int(dataset.Columns))


def _rescale(dataset, frame: int) -> tuple[float, float]:
    item = functional_group_item(dataset, frame, "PixelValueTransformationSequence")
    source = item if item is not None and "RescaleSlope" in item else dataset
    slope = float(source.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(source.get("RescaleIntercept", 0.0) or 0.0)
    if str(dataset.get("Modality", "")) == "RTDOSE" and "DoseGridScaling" in dataset:
        slope *= float(dataset.DoseGridScaling)
    return slope, intercept


def _stored_range(dataset, stored: np.ndarray) -> tuple[float, float]:
    """The range stored values can take (BitsStored, PixelRepresentation), or the data's for floats."""
    if stored.dtype.kind == "f" or "BitsStored" not in dataset:
        return float(np.min(stored)), float(np.max(stored))
    bits = int(dataset.BitsStored)
    if int(dataset.get("PixelRepresentation", 0)) == 1:
        return -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    return 0.0, 2.0**bits - 1


def modality_frames(dataset, stored: np.ndarray) -> tuple[list[np.ndarray], tuple[float, float] | None]:
    """Each frame through the Modality LUT.

    Parameters
    ----------
    dataset : pydicom.Dataset
    stored : (frames, rows, cols) ndarray
        From :func:`decode_frames`.

    Returns
    -------
    frames : list of (rows, cols) int16, int32 or int64 (the smallest that holds them) or float32
        RescaleSlope·stored + RescaleIntercept (per frame for enhanced objects; times
        DoseGridScaling for RTDOSE), or the Modality LUT sequence.
    invert_range : (low, high) or None
        For MONOCHROME1 images, the range of possible modality values, within which the
        caller inverts (``low + high − v``) so that higher is brighter; None otherwise.
    """
    frames = []
    low, high = _stored_range(dataset, stored)
    if "ModalityLUTSequence" in dataset:
        from pydicom.pixels import apply_modality_lut

        frames = [np.asarray(apply_modality_lut(frame, dataset)) for frame in stored]
        ends = np.asarray(apply_modality_lut(np.array([low, high]).astype(stored.dtype), dataset))
        value_range = (float(ends.min()), float(ends.max()))
    else:
        ends = []
        for index, frame in enumerate(stored):
            slope, intercept = _rescale(dataset, index)
            if slope == 1.0 and intercept == round(intercept) and frame.dtype.kind in "iu":
                values = frame.astype(np.int64) + int(intercept)
                for dtype in (np.int16, np.int32, np.int64):
                    if np.iinfo(dtype).min <= values.min() and values.max() <= np.iinfo(dtype).max:
                        frames.append(values.astype(dtype))
                        break
            else:
                frames.append((frame.astype(np.float64) * slope + intercept).astype(np.float32))
            ends += [slope * low + intercept, slope * high + intercept]
        value_range = (min(ends), max(ends))
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    return frames, (value_range if photometric == "MONOCHROME1" else None)


def _as_floats(value) -> list[float]:
    from pydicom.multival import MultiValue

    return [float(v) for v in value] if isinstance(value, (MultiValue, list, tuple)) else [float(value)]


def display_windows(dataset) -> tuple[list[tuple[float, float]], str]:
    """Every stored display window and the VOI LUT function.

    Returns
    -------
    windows : list of (center, width)
        In modality units; WindowCenter/WindowWidth may hold several values (all kept,
        in order), from the dataset or its FrameVOILUTSequence. Widths ≤ 0 are dropped.
    function : {'LINEAR', 'LINEAR_EXACT', 'SIGMOID'}
        VOILUTFunction (LINEAR when absent).
    """
    source = dataset
    if "WindowCenter" not in dataset:
        item = functional_group_item(dataset, 0, "FrameVOILUTSequence")
        if item is not None:
            source = item
    centers, widths = source.get("WindowCenter"), source.get("WindowWidth")
    function = str(source.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    if centers is None or widths is None or centers == "" or widths == "":
        return [], function
    pairs = [(c, w) for c, w in zip(_as_floats(centers), _as_floats(widths)) if w > 0]
    return pairs, function
