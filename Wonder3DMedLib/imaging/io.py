"""Volumes in memory and on disk, with their exact place in patient space.

Data form: :class:`Volume` — voxel values ``array[k, j, i]`` (numpy order: slice, row,
column) and ``ijk_to_ras``, the 4×4 matrix taking voxel indices (voxel centres at
integers) to RAS millimetres. Files on disk (NIfTI, NRRD, MHA, DICOM) are in LPS;
conversion happens here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from Wonder3DMedLib.errors import InputError

__all__ = ["LPS_TO_RAS", "Volume", "volume_from_sitk", "volume_to_sitk", "read_volume", "write_volume"]

#: Multiplying by this flips LPS to RAS and back.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D scalar image placed in patient space.

    Attributes
    ----------
    array : (K, J, I) ndarray
        Voxel values; ``array[k, j, i]``. Never modified by the library.
    ijk_to_ras : (4, 4) float64
        Voxel index ``(i, j, k, 1)`` to RAS mm; columns 0–2 are the i, j, k axes scaled
        by the spacing, column 3 the RAS position of voxel (0, 0, 0)'s centre.
    """

    array: np.ndarray
    ijk_to_ras: np.ndarray

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


def read_volume(path: str | Path) -> Volume:
    """Read a 3D scalar volume file (NIfTI, NRRD, MHA/MHD, … anything SimpleITK reads).

    Raises
    ------
    InputError
        Missing or unreadable file, or not a 3D scalar image.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise InputError("volume file not found", path=path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown error"
        raise InputError(f"cannot read volume: {first_line}", path=path) from error
    if image.GetNumberOfComponentsPerPixel() != 1 or image.GetDimension() != 3:
        raise InputError(
            f"expected a 3D scalar volume, got a {image.GetDimension()}D image with "
            f"{image.GetNumberOfComponentsPerPixel()} component(s) per voxel",
            path=path,
        )
    return volume_from_sitk(image)


def write_volume(volume: Volume, path: str | Path) -> Path:
    """Write a volume (the suffix picks the format; written in LPS as files are)."""
    import SimpleITK as sitk

    path = Path(path)
    sitk.WriteImage(volume_to_sitk(volume), str(path), useCompression=True)
    return path
