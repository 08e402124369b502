"""Slices know exactly where they are: every pixel is the voxel at its RAS position, laid out as Slicer shows it."""

from __future__ import annotations

import numpy as np
import pytest

from imaging_data import oblique_volume, rotation
from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.imaging.io import Volume, read_volume
from Wonder3DMedLib.imaging.slicing import resolve_axis, slice_through, square_pixels, take_slice

AXES = ("axial", "coronal", "sagittal", "i", "j", "k")


def ramp_volume(**kwargs) -> Volume:
    """Values that identify their voxel: 10000·k + 100·j + i."""
    k, j, i = np.meshgrid(np.arange(9), np.arange(11), np.arange(13), indexing="ij")
    return oblique_volume((10000 * k + 100 * j + i).astype(np.int32), **kwargs)


def pixel_centres(source) -> np.ndarray:
    rows, cols = source.shape
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return np.stack([c.ravel(), r.ravel()], axis=1)


def slicer_view(orientation: str) -> np.ndarray:
    """Slicer's SliceToRAS rotation of a standard view (columns: image right, image up, normal)."""
    slicer = pytest.importorskip("slicer")
    import vtk

    matrix = vtk.vtkMatrix3x3()
    getattr(slicer.vtkMRMLSliceNode, f"Get{orientation.capitalize()}SliceToRASMatrix")(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(3)] for r in range(3)])


@pytest.mark.parametrize("permute", [False, True])
@pytest.mark.parametrize("axis", AXES)
def test_every_pixel_is_the_voxel_at_its_ras_position(axis, permute):
    volume = ramp_volume(permute=permute)
    grid = resolve_axis(volume, axis).grid_axis
    index = volume.shape_ijk["ijk".index(grid)] // 2
    source = take_slice(volume, axis, index)
    ijk = volume.ras_to_ijk_points(source.pixel_to_ras_points(pixel_centres(source)))
    assert np.abs(ijk - np.rint(ijk)).max() < 1e-9
    ijk = np.rint(ijk).astype(int)
    assert np.all(ijk[:, "ijk".index(grid)] == index)
    assert np.array_equal(source.pixels.ravel(), volume.array[ijk[:, 2], ijk[:, 1], ijk[:, 0]])
    assert np.allclose(source.normal, -np.cross(source.slice_to_ras[:3, 0], source.slice_to_ras[:3, 1])
                       / np.prod(source.spacing))
    assert np.linalg.det(source.slice_to_ras) < 0 and np.isclose(np.linalg.norm(source.normal), 1.0)


@pytest.mark.parametrize("orientation", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize("directions", ["RAS", "LPS", "oblique"])
def test_anatomical_slices_are_laid_out_as_slicer_views(orientation, directions):
    """Image right and image up follow vtkMRMLSliceNode's Axial/Coronal/Sagittal presets."""
    if directions == "oblique":
        volume = ramp_volume(tilt_deg=12.0)
    else:
        matrix = np.diag([1.0, 1.0, 1.0, 1.0] if directions == "RAS" else [-1.0, -1.0, 1.0, 1.0])
        volume = Volume(np.zeros((4, 5, 6)), matrix)
    source = take_slice(volume, orientation, 2)
    view = slicer_view(orientation)
    col_dir = source.slice_to_ras[:3, 0] / source.spacing[0]
    up_dir = -source.slice_to_ras[:3, 1] / source.spacing[1]
    tolerance = np.cos(np.deg2rad(20.0)) if directions == "oblique" else 1 - 1e-12
    assert col_dir @ view[:, 0] >= tolerance and up_dir @ view[:, 1] >= tolerance
    # the viewer looks along the view normal: towards-viewer = right × up
    assert source.normal @ np.cross(view[:, 0], view[:, 1]) >= tolerance


def test_real_coronal_acquisition_resolves_each_anatomical_axis(itk_example_data):
    """ITK's T1 is stored coronally (k along A), with a non-identity direction matrix."""
    volume = read_volume(itk_example_data / "KmeansTest_T1UCharRaw.nii.gz")
    resolved = {name: resolve_axis(volume, name) for name in ("axial", "coronal", "sagittal")}
    assert {name: c.grid_axis for name, c in resolved.items()} == {"axial": "j", "coronal": "k", "sagittal": "i"}
    assert all(c.angle_deg == pytest.approx(0.0) for c in resolved.values())
    assert resolved["coronal"].describe() == "coronal -> grid axis k (0.0° off the A axis)"
    assert take_slice(volume, "coronal", 30).shape == (128, 128)


def test_oblique_grid_is_refused_for_anatomical_names_only():
    matrix = np.eye(4)
    matrix[:3, :3] = rotation("R", 45.0) @ np.diag([1.0, 1.0, 2.0])
    volume = Volume(np.zeros((4, 5, 6)), matrix)
    with pytest.raises(InputError, match=r"grid is oblique to the axial direction: its closest grid axis \(\w\) is "
                       r"45\.0° away \(at most 30° is accepted\)") as error:
        take_slice(volume, "axial", 1)
    assert "--slice i:N, j:N or k:N" in str(error.value)
    assert take_slice(volume, "k", 1).shape == (5, 6)
    assert resolve_axis(volume, "sagittal").angle_deg == pytest.approx(0.0)
    tilted = Volume(np.zeros((4, 5, 6)), np.block([[rotation("A", 20.0), np.zeros((3, 1))], [np.zeros((1, 3)), 1]]))
    assert resolve_axis(tilted, "axial").angle_deg == pytest.approx(20.0)


def test_index_out_of_range_says_the_valid_range():
    volume = ramp_volume()
    with pytest.raises(InputError, match=r"slice index 9 is out of range for axial \(grid axis k\): valid indices "
                       r"are 0 to 8"):
        take_slice(volume, "axial", 9)
    with pytest.raises(InputError, match="slice index 13 is out of range for i: valid indices are 0 to 12"):
        take_slice(volume, "i", 13)
    with pytest.raises(InputError, match="unknown slice axis 'oblique'"):
        take_slice(volume, "oblique", 0)


def test_slice_through_a_ras_point():
    volume = ramp_volume()
    point = volume.ijk_to_ras_points([[4.2, 6.9, 5.3]])[0]
    assert slice_through(volume, "k", point).index == 5
    assert slice_through(volume, "axial", point).index == take_slice(volume, "axial", 5).index
    with pytest.raises(InputError, match=r"outside the volume along grid axis k: it falls at index 12\.0, valid "
                       r"indices are 0 to 8"):
        slice_through(volume, "k", volume.ijk_to_ras_points([[0, 0, 12]])[0])


def test_square_pixels_keep_geometry_exact_and_interpolate_linearly():
    """On a volume linear in RAS, linear interpolation must give the linear function at every new centre."""
    volume = ramp_volume(spacing=(0.6, 1.5, 1.1))
    coefficients = np.array([0.3, -1.7, 2.9])
    centres = volume.ijk_to_ras_points(np.argwhere(np.ones(volume.array.shape))[:, ::-1])
    linear = Volume((centres @ coefficients).reshape(volume.array.shape), volume.ijk_to_ras)
    source = take_slice(linear, "k", 4)
    square = square_pixels(source)
    assert np.allclose(square.spacing, [0.6, 0.6])
    rows, cols = square.shape
    assert (rows, cols) == (round(source.shape[0] * 1.5 / 0.6), source.shape[1])
    ras = square.pixel_to_ras_points(pixel_centres(square))
    ijk = linear.ras_to_ijk_points(ras)[:, :2]
    inside = np.all((ijk >= 0) & (ijk <= np.array(linear.shape_ijk[:2]) - 1), axis=1)  # beyond: edge repeated
    assert inside.mean() > 0.8
    assert np.allclose(square.pixels.ravel()[inside], (ras @ coefficients)[inside], atol=1e-4)
    assert np.allclose(square.normal, source.normal) and square_pixels(square) is square
