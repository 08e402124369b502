"""Volumes in memory and on disk, with their exact place in patient space.

Data form: :class:`Volume` — voxel values ``array[k, j, i]`` (numpy order: slice, row,
column) and ``ijk_to_ras``, the 4×4 matrix taking voxel indices (voxel centres at
integers) to RAS millimetres. Files on disk (NIfTI, NRRD, MHA, DICOM) are in LPS;
conversion happens here (and in :mod:`~Wonder3DMedLib.imaging.dicom`) and nowhere else.

:func:`read_volume` is the one entry point for user files: a DICOM file, a DICOM series
folder, or anything SimpleITK reads. It refuses what cannot be a usable 3D scalar volume
(4D, colour, empty, single voxel, NaN/inf) with a message that says what to do.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.progress import ProgressCallback

__all__ = [
    "LPS_TO_RAS",
    "Volume",
    "volume_from_sitk",
    "volume_to_sitk",
    "read_volume",
    "check_volume",
    "check_nifti_file",
    "sitk_has_no_reader",
    "write_volume",
]

#: Multiplying by this flips LPS to RAS and back.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

_SITK_FORMATS = "NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd)"
# Picture formats SimpleITK reads without any spatial information.
_PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D scalar image placed in patient space.

    Attributes
    ----------
    array : (K, J, I) ndarray
        Voxel values; ``array[k, j, i]``. Never modified by the library. For DICOM these
        are modality values (after RescaleSlope/Intercept, e.g. Hounsfield units).
    ijk_to_ras : (4, 4) float64
        Voxel index ``(i, j, k, 1)`` to RAS mm; columns 0–2 are the i, j, k axes scaled
        by the spacing, column 3 the RAS position of voxel (0, 0, 0)'s centre.
    dicom_window : (center, width) or None
        The first display window stored in the DICOM files (in the units of ``array``),
        if any.
    metadata : dict
        Facts about the source that later steps may show or use — never patient data:
        ``format``, ``modality``, ``windows`` (every DICOM window), ``voi_lut_function``,
        ``inverted`` (MONOCHROME1 turned into "higher is brighter"), ``notes`` (what the
        reader did, e.g. resampling uneven slice spacing).
    """

    array: np.ndarray
    ijk_to_ras: np.ndarray
    dicom_window: tuple[float, float] | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        matrix = np.asarray(self.ijk_to_ras, dtype=np.float64)
        if array.ndim != 3:
            raise ValueError(f"a Volume holds a 3D array, got shape {array.shape}")
        if matrix.shape != (4, 4) or not np.allclose(matrix[3], [0, 0, 0, 1]):
            raise ValueError("ijk_to_ras must be a 4×4 affine matrix")
        if abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
            raise ValueError("ijk_to_ras is singular")
        object.__setattr__(self, "array", array)
        object.__setattr__(self, "ijk_to_ras", matrix)
        if self.dicom_window is not None:
            center, width = (float(v) for v in self.dicom_window)
            object.__setattr__(self, "dicom_window", (center, width))

    @property
    def shape_ijk(self) -> tuple[int, int, int]:
        """Number of voxels along i, j, k."""
        k, j, i = self.array.shape
        return i, j, k

    @property
    def spacing(self) -> np.ndarray:
        """(3,) voxel size along i, j, k in mm."""
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)

    @property
    def directions(self) -> np.ndarray:
        """(3, 3) unit RAS directions of the i, j, k axes (as columns)."""
        return self.ijk_to_ras[:3, :3] / self.spacing

    @property
    def ras_to_ijk(self) -> np.ndarray:
        """(4, 4) inverse of :attr:`ijk_to_ras`."""
        return np.linalg.inv(self.ijk_to_ras)

    def ijk_to_ras_points(self, ijk: np.ndarray) -> np.ndarray:
        """(n, 3) voxel indices (i, j, k) → (n, 3) RAS mm."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.ijk_to_ras[:3, :3].T + self.ijk_to_ras[:3, 3]

    def ras_to_ijk_points(self, ras: np.ndarray) -> np.ndarray:
        """(n, 3) RAS mm → (n, 3) continuous voxel indices (i, j, k)."""
        ras = np.asarray(ras, dtype=np.float64)
        inverse = self.ras_to_ijk
        return ras @ inverse[:3, :3].T + inverse[:3, 3]


def volume_from_sitk(image) -> Volume:
    """A SimpleITK image (LPS) as a :class:`Volume` (RAS)."""
    import SimpleITK as sitk

    if image.GetDimension() != 3:
        raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = direction * np.array(image.GetSpacing(), dtype=np.float64)
    ijk_to_lps[:3, 3] = image.GetOrigin()
    return Volume(sitk.GetArrayFromImage(image), LPS_TO_RAS @ ijk_to_lps)


def volume_to_sitk(volume: Volume):
    """A :class:`Volume` as a SimpleITK image (LPS), for writing and resampling."""
    import SimpleITK as sitk

    ijk_to_lps = LPS_TO_RAS @ volume.ijk_to_ras
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array))
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((ijk_to_lps[:3, :3] / spacing).ravel().tolist())
    image.SetOrigin(ijk_to_lps[:3, 3].tolist())
    return image


def read_volume(path: str | Path, *, series_uid: str | None = None, progress: ProgressCallback | None = None) -> Volume:
    """Read a 3D scalar volume: a DICOM file, a DICOM series folder, NIfTI, NRRD, MHA/MHD.

    Parameters
    ----------
    path : str or Path
        A file, or a folder of DICOM files (searched recursively).
    series_uid : str, optional
        Which series to read when a folder holds several (SeriesInstanceUID).
    progress : callable, optional
        ``progress(fraction, message)``; may raise :class:`~Wonder3DMedLib.errors.Cancelled`.

    Returns
    -------
    Volume
        Geometry in RAS mm; DICOM values are modality values (see
        :func:`~Wonder3DMedLib.imaging.dicom.read_dicom_file`).

    Raises
    ------
    InputError
        Missing, unreadable or unsupported file; DICOM without pixel data; several series
        and no ``series_uid``; 4D, colour or vector images; an empty or single-voxel
        volume; NaN or infinite voxel values.
    """
    from Wonder3DMedLib.imaging import dicom

    path = Path(path)
    if not path.exists():
        raise InputError("volume file not found", path=path)
    if series_uid is not None and not path.is_dir():
        raise InputError("--series (series_uid) picks a series in a DICOM folder, but the input is a file", path=path)
    if path.is_dir():
        volume = dicom.read_dicom_series(path, series_uid=series_uid, progress=progress)
    elif dicom.is_dicom_file(path):
        volume = dicom.read_dicom_file(path)
    else:
        volume = _read_with_sitk(path)
    check_volume(volume, path=path)
    return volume


def sitk_has_no_reader(error: RuntimeError) -> bool:
    """Whether a SimpleITK read failed because no reader knows the file type (not a damaged file)."""
    return any(text in str(error) for text in ("Unable to determine ImageIO reader", "Could not create IO object"))


def _read_with_sitk(path: Path) -> Volume:
    import SimpleITK as sitk

    from Wonder3DMedLib.imaging import dicom

    if path.name.lower().endswith((".nii", ".nii.gz")):
        check_nifti_file(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        if dicom.parses_as_dicom(path):
            return dicom.read_dicom_file(path)
        message = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown error"
        if sitk_has_no_reader(error):
            raise InputError(
                f"unsupported file: not a DICOM file and not a volume format Wonder3DMed reads ({_SITK_FORMATS})",
                path=path,
                hint="pass a DICOM file, a DICOM series folder or a volume file; export other formats from Slicer",
            ) from error
        raise InputError(
            f"cannot read volume (the file may be truncated or corrupt): {message}",
            path=path,
        ) from error
    size = list(image.GetSize())
    components = image.GetNumberOfComponentsPerPixel()
    if components != 1:
        raise InputError(
            f"the image holds {components} components per voxel (a colour, vector or tensor image); "
            "Wonder3DMed needs a greyscale (scalar) volume",
            path=path,
            hint="extract one component first (e.g. in Slicer: Vector to Scalar Volume)",
        )
    if image.GetDimension() == 4 and size[3] == 1:
        image = image[:, :, :, 0]
    elif image.GetDimension() == 4:
        raise InputError(
            f"this is a 4D image ({size[3]} volumes of {size[0]}×{size[1]}×{size[2]}, e.g. time points); "
            "Wonder3DMed needs one 3D volume",
            path=path,
            hint="extract the 3D volume you want first (e.g. Slicer's Sequences module, or `fslroi`)",
        )
    elif image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    elif image.GetDimension() != 3:
        raise InputError(f"expected a 3D volume, got a {image.GetDimension()}D image", path=path)
    if "complex" in image.GetPixelIDTypeAsString():
        raise InputError("the image holds complex values; pass magnitude images", path=path)
    volume = volume_from_sitk(image)
    metadata = {"format": _format_name(path)}
    if path.suffix.lower() in _PICTURE_SUFFIXES:
        metadata["notes"] = [
            f"{path.suffix.lstrip('.').upper()} pictures hold no pixel spacing or orientation: read as 1 mm pixels "
            "in an identity (RAS) orientation, so millimetre values and patient directions assume that; use DICOM, "
            "NIfTI or NRRD for real geometry"
        ]
    return Volume(volume.array, volume.ijk_to_ras, metadata=metadata)


def _nifti_extent(header: bytes) -> tuple[int, int, list[int]] | None:
    """``(vox_offset, data bytes, sizes)`` from a NIfTI-1 or NIfTI-2 header, or None if it is not one."""
    for endian in "<>":
        if len(header) >= 348 and struct.unpack(endian + "i", header[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            offset = int(struct.unpack(endian + "f", header[108:112])[0])
        elif len(header) >= 540 and struct.unpack(endian + "i", header[:4])[0] == 540:
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            dims = struct.unpack(endian + "8q", header[16:80])
            offset = struct.unpack(endian + "q", header[168:176])[0]
        else:
            continue
        sizes = [int(d) for d in dims[1 : 1 + max(min(int(dims[0]), 7), 0)]]
        return offset, int(np.prod(sizes)) * max(int(bitpix), 0) // 8, sizes
    return None


def check_nifti_file(path: str | Path) -> None:
    """Refuse an empty or truncated NIfTI file (SimpleITK would pad a short one with zeros).

    Raises
    ------
    InputError
        A size of 0, a gzip stream that ends early, or less data than the header announces.
    """
    path = Path(path)
    import gzip
    import zlib

    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as stream:
                header = stream.read(540)
                length = len(header)
                while chunk := stream.read(1 << 22):
                    length += len(chunk)
        else:
            with path.open("rb") as stream:
                header = stream.read(540)
            length = path.stat().st_size
    except (EOFError, OSError, zlib.error) as error:
        raise InputError(
            f"the file is truncated or corrupt ({type(error).__name__}: {error})",
            path=path,
            hint="copy the file again from its source",
        ) from error
    extent = _nifti_extent(header)
    if extent is None:
        return
    offset, data_bytes, sizes = extent
    if any(size <= 0 for size in sizes):
        raise InputError(f"the volume is empty (size {'×'.join(str(v) for v in sizes)} voxels)", path=path)
    if length < offset + data_bytes:
        raise InputError(
            f"the file is truncated: its header announces {offset + data_bytes} bytes, it holds {length}",
            path=path,
            hint="copy the file again from its source",
        )


def _format_name(path: Path) -> str:
    name = path.name.lower()
    for suffixes, label in (((".nii", ".nii.gz"), "NIfTI"), ((".nrrd", ".nhdr"), "NRRD"), ((".mha", ".mhd"), "MetaImage")):
        if name.endswith(suffixes):
            return label
    return path.suffix.lstrip(".").upper() or "image"



def check_volume(volume: Volume, *, path: str | Path | None = None) -> None:
    """Refuse a volume that cannot be sliced and framed: empty, single voxel, NaN or inf.

    Raises
    ------
    InputError
        With the size or the number and first position of the bad voxels.
    """
    i, j, k = volume.shape_ijk
    if volume.array.size == 0:
        raise InputError(f"the volume is empty (size {i}×{j}×{k} voxels)", path=path)
    if volume.array.size == 1:
        raise InputError(
            "the volume has a single voxel; there is no slice to reconstruct from",
            path=path,
            hint="pass the whole image volume or series, not a one-voxel file",
        )
    if volume.array.dtype.kind in "fc":
        finite = np.isfinite(volume.array)
        if not finite.all():
            bad = np.argwhere(~finite)
            first_k, first_j, first_i = (int(v) for v in bad[0])
            raise InputError(
                f"the volume holds {len(bad)} NaN or infinite voxel value(s) (first at i,j,k = "
                f"{first_i},{first_j},{first_k})",
                path=path,
                hint="replace them (e.g. with 0 or the background value) before use",
            )


def write_volume(volume: Volume, path: str | Path) -> Path:
    """Write a volume (the suffix picks the format; written in LPS as files are)."""
    import SimpleITK as sitk

    path = Path(path)
    sitk.WriteImage(volume_to_sitk(volume), str(path), useCompression=True)
    return path
