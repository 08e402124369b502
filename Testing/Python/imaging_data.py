"""Test data for the imaging tests: oblique anisotropic volumes and DICOM files written here.

DICOM series are written with SimpleITK (GDCM) from real volumes, one file per slice with
explicit ImageOrientationPatient/ImagePositionPatient, as the SimpleITK "DICOM series from
array" recipe does; single files with unusual pixel encodings are written with pydicom.
"""

from __future__ import annotations

import locale
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from Wonder3DMedLib.imaging.io import Volume, volume_to_sitk

__all__ = ["keep_locale", "rotation", "oblique_volume", "write_dicom_series", "write_dicom_file", "write_enhanced_file"]


@contextmanager
def keep_locale() -> Iterator[None]:
    """Restore the process locale afterwards: GDCM sets LC_ALL to "C" and leaves it (text I/O then turns ASCII)."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def rotation(axis: str, degrees: float) -> np.ndarray:
    """(3, 3) right-handed rotation about the R, A or S axis."""
    angle = np.deg2rad(degrees)
    c, s = np.cos(angle), np.sin(angle)
    a, b = {"R": (1, 2), "A": (2, 0), "S": (0, 1)}[axis]
    matrix = np.eye(3)
    matrix[a, a], matrix[a, b], matrix[b, a], matrix[b, b] = c, -s, s, c
    return matrix


def oblique_volume(array: np.ndarray, *, spacing=(0.7, 0.9, 1.6), tilt_deg: float = 17.0,
                   origin=(-31.0, 12.5, 8.25), permute: bool = False) -> Volume:
    """A volume with anisotropic spacing and a direction matrix rotated about two axes.

    ``permute`` turns the grid so that k runs anterior-posterior (a coronal acquisition).
    """
    directions = rotation("S", tilt_deg) @ rotation("R", -0.6 * tilt_deg)
    if permute:
        directions = directions @ np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
    matrix = np.eye(4)
    matrix[:3, :3] = directions * np.asarray(spacing, dtype=float)
    matrix[:3, 3] = origin
    return Volume(np.asarray(array), matrix)


def write_dicom_series(
    volume: Volume,
    folder: Path,
    *,
    series_uid: str,
    description: str = "test series",
    modality: str = "MR",
    seed: int | None = 0,
    skip: tuple[int, ...] = (),
    tilt_mm: float = 0.0,
    window: tuple[float, float] | None = None,
) -> list[Path]:
    """Write ``volume`` (int16) as one DICOM file per k slice.

    File names and InstanceNumbers are shuffled with ``seed`` (never in slice order);
    ``skip`` leaves slices out (uneven spacing); ``tilt_mm`` shifts each slice in-plane by
    ``k · tilt_mm`` along i (a gantry tilt).
    """
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.Cast(volume_to_sitk(volume), sitk.sitkInt16)
    direction = image.GetDirection()
    orientation = "\\".join(f"{v:.10f}" for v in (direction[0], direction[3], direction[6],
                                                   direction[1], direction[4], direction[7]))
    slices = [k for k in range(image.GetDepth()) if k not in skip]
    order = np.random.default_rng(seed).permutation(len(slices)) if seed is not None else np.arange(len(slices))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    written = []
    with keep_locale():
        for position, k in zip(order, slices):
            plane = image[:, :, k]
            point = np.array(image.TransformIndexToPhysicalPoint((0, 0, k))) + k * tilt_mm * np.array(direction[0::3])
            tags = {
                "0008|0060": modality,
                "0008|0016": "1.2.840.10008.5.1.4.1.1.4",
                "0008|0018": f"{series_uid}.{k + 1}",
                "0010|0010": "Doe^Jane",
                "0010|0020": "PATIENT-ID-123",
                "0020|000d": "1.2.826.0.1.3680043.8.498.1",
                "0020|000e": series_uid,
                "0008|103e": description,
                "0020|0037": orientation,
                "0020|0032": "\\".join(f"{v:.10f}" for v in point),
                "0020|0013": str(int(position) + 1),
                "0018|0050": f"{volume.spacing[2]:.6f}",
            }
            if window is not None:
                tags["0028|1050"], tags["0028|1051"] = f"{window[0]:g}", f"{window[1]:g}"
            for key, value in tags.items():
                plane.SetMetaData(key, value)
            path = folder / f"img_{int(position) * 7919 % 10007:05d}.dcm"
            writer.SetFileName(str(path))
            writer.Execute(plane)
            written.append(path)
    return written


def write_dicom_file(
    path: Path,
    stored: np.ndarray,
    *,
    bits: int = 16,
    signed: bool = True,
    slope: float | None = None,
    intercept: float | None = None,
    photometric: str = "MONOCHROME2",
    floating: bool = False,
    window: tuple[list, list] | None = None,
) -> Path:
    """A single-frame DICOM file written with pydicom (explicit VR little endian)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, UID, generate_uid

    stored = np.asarray(stored)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.4")
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "PATIENT-ID-123"
    ds.SeriesInstanceUID = generate_uid()
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.PixelSpacing = [0.8, 0.6]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-10.0, 20.0, 30.0]
    ds.SliceThickness = 2.5
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept or 0.0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if floating:
        ds.BitsAllocated = 32
        ds.FloatPixelData = stored.astype("<f4").tobytes()
    else:
        ds.BitsAllocated = bits
        ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = 1 if signed else 0
        dtype = {(8, False): "u1", (8, True): "i1", (16, False): "<u2", (16, True): "<i2"}[(bits, signed)]
        ds.PixelData = stored.astype(dtype).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def write_enhanced_file(path: Path, frames: np.ndarray, positions: np.ndarray, slopes: list[float]) -> Path:
    """An enhanced multi-frame MR file: shared orientation and spacing, per-frame position and rescale."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, UID, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.4.1")  # Enhanced MR Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = frames.shape[1:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    orientation = Dataset()
    orientation.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]  # sagittal: rows along A, columns down S
    measures = Dataset()
    measures.PixelSpacing, measures.SliceThickness = [0.5, 0.75], 3.0
    shared = Dataset()
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for position, slope in zip(positions, slopes):
        plane, transform, group = Dataset(), Dataset(), Dataset()
        plane.ImagePositionPatient = [float(v) for v in position]
        transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = slope, -5.0, "US"
        group.PlanePositionSequence = Sequence([plane])
        group.PixelValueTransformationSequence = Sequence([transform])
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = frames.astype("<u2").tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path
