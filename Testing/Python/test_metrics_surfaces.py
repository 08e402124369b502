"""Labelmaps become closed surfaces in RAS mm: spacing, oblique directions, thin parts, files."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import trimesh

from analytic_shapes import Ellipsoid, Torus, grid_volume, mask_on
from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.imaging.io import Volume, write_volume
from Wonder3DMedLib.mesh_io import write_mesh
from Wonder3DMedLib.metrics.surface import sample_surface
from Wonder3DMedLib.metrics.surfaces import load_surface, surface_from_labelmap

OBLIQUE = trimesh.transformations.rotation_matrix(0.6, [1.0, 2.0, 3.0])[:3, :3]


def signed_error(shape, mesh) -> tuple[float, float]:
    """Area-weighted mean signed and mean absolute distance of the surface from the true shape (mm)."""
    samples = sample_surface(mesh)
    distance = shape.distance(samples.points)
    distance = np.where(shape.inside(samples.points), -distance, distance)
    weights = samples.weights / samples.weights.sum()
    return float(weights @ distance), float(weights @ np.abs(distance))


@pytest.mark.parametrize("rotation", [None, OBLIQUE], ids=["axis-aligned", "oblique"])
@pytest.mark.parametrize("shape", [Ellipsoid((20, 20, 20), (0.3, -0.2, 0.4)), Ellipsoid((18, 14, 11), (1, 2, -1)),
                                   Torus(16, 6, (0.5, 0, 0))], ids=["sphere", "ellipsoid", "torus"])
def test_surface_sits_on_the_true_shape(shape, rotation):
    """On 0.8 x 0.8 x 1.3 mm grids (axis-aligned or rotated) the surface is closed, wound outwards,
    and within 0.04 mm (mean, signed) / 0.11 mm (mean absolute) of the shape the mask was made from;
    the staircase of the mask itself is off by up to half a voxel (0.65 mm)."""
    grid = grid_volume((56, 64, 64), (0.8, 0.8, 1.3), rotation=rotation, centre=(0.3, 0.2, 0.1))
    mesh = surface_from_labelmap(mask_on(grid, shape))
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
    mean, absolute = signed_error(shape, mesh)
    assert abs(mean) < 0.04 and absolute < 0.11
    assert mesh.volume == pytest.approx(shape.volume, rel=0.01)


def test_smoothing_bias_is_corrected():
    """Without the curvature correction a 10 mm sphere shrinks by ~σ²κ/2 ≈ 0.1 mm; with it, by < 0.02 mm."""
    shape = Ellipsoid((10, 10, 10))
    grid = grid_volume((40, 48, 48), (0.9, 0.9, 1.5), centre=(0.11, 0.23, 0.05))
    mask = mask_on(grid, shape)
    assert signed_error(shape, surface_from_labelmap(mask, correct_curvature=False))[0] < -0.07
    assert abs(signed_error(shape, surface_from_labelmap(mask))[0]) < 0.02


def test_lps_style_grid_with_flipped_axes_gives_the_same_surface():
    """A grid whose i and j run right-to-left/posterior (negative determinant) still gives an outward surface at the same place."""
    shape = Ellipsoid((12, 9, 7), (1, -2, 3))
    flipped = grid_volume((40, 48, 48), (0.7, 0.7, 1.1), rotation=np.diag([-1.0, -1.0, 1.0]))
    straight = grid_volume((40, 48, 48), (0.7, 0.7, 1.1))
    a, b = surface_from_labelmap(mask_on(flipped, shape)), surface_from_labelmap(mask_on(straight, shape))
    assert a.volume > 0 and b.volume > 0
    np.testing.assert_allclose(a.center_mass, b.center_mass, atol=0.05)
    np.testing.assert_allclose(a.center_mass, shape.centre, atol=0.05)


def test_thin_sheet_tube_and_gap_survive_smoothing():
    grid = grid_volume((40, 40, 40), (1.0, 1.0, 1.0))
    sheet = np.zeros((40, 40, 40), bool)
    sheet[20, 8:32, 8:32] = True
    mesh = surface_from_labelmap(Volume(sheet, grid.ijk_to_ras))
    assert mesh.is_watertight
    # Halfway between voxel centres: one voxel thick, the voxel-count volume less the
    # 1/8 voxel per unit length that marching cubes chamfers off the rim (24 of 576).
    assert np.ptp(mesh.vertices[:, 2]) == pytest.approx(1.0, abs=0.01)
    assert mesh.volume == pytest.approx(sheet.sum() - 24, rel=0.01)
    tube = np.zeros((40, 40, 40), bool)
    tube[5:35, 19:21, 19:21] = True
    assert surface_from_labelmap(Volume(tube, grid.ijk_to_ras)).volume == pytest.approx(tube.sum(), rel=0.15)
    blocks = np.zeros((40, 40, 40), bool)
    blocks[8:32, 8:32, 8:32] = True
    blocks[8:32, 20, 8:32] = False
    mesh = surface_from_labelmap(Volume(blocks, grid.ijk_to_ras))
    assert mesh.body_count == 2, "a one-voxel gap must not be closed by smoothing"


def test_empty_mask_gives_an_empty_surface_and_bad_masks_are_refused():
    grid = grid_volume((10, 10, 10), (1, 1, 1))
    assert len(surface_from_labelmap(grid).faces) == 0
    with pytest.raises(ValueError, match="mask shape"):
        surface_from_labelmap(grid, np.zeros((5, 5, 5), bool))
    with pytest.raises(ValueError, match=">= 0"):
        surface_from_labelmap(grid, smoothing_sigma_voxels=-1)


def test_object_cut_by_the_image_border_is_closed_with_a_warning(tmp_path):
    mask = np.zeros((20, 20, 20), np.uint8)
    mask[0:8, 5:15, 5:15] = 1
    path = write_volume(Volume(mask, np.diag([1.0, 1.0, 2.0, 1.0])), tmp_path / "cut.nii.gz")
    surface = load_surface(path)
    assert surface.mesh.is_watertight
    assert surface.description["touches_image_edge"] is True
    assert any("edge of the image" in w for w in surface.warnings)


def test_load_surface_reads_labels_and_meshes(tmp_path):
    labels = np.zeros((30, 32, 34), np.uint8)
    labels[5:15, 5:20, 5:20] = 3
    labels[18:26, 8:24, 10:30] = 7
    matrix = np.eye(4)
    matrix[:3, :3] = OBLIQUE @ np.diag([0.9, 0.8, 1.4])
    matrix[:3, 3] = [-10, 20, 5]
    path = write_volume(Volume(labels, matrix), tmp_path / "labels.nii.gz")
    (tmp_path / "labels.txt").write_text("3 Left_thing\n7 Right_thing\n")
    surface = load_surface(path, "Right_thing")
    assert surface.kind == "labelmap" and surface.description["label"] == "label 7 (Right_thing)"
    assert surface.description["voxels"] == int((labels == 7).sum())
    assert surface.volume.array.sum() == (labels == 7).sum()
    np.testing.assert_allclose(surface.volume.ijk_to_ras, matrix, atol=1e-5)
    # The surface sits where the voxels are, in RAS.
    k, j, i = np.nonzero(labels == 7)
    centre = surface.volume.ijk_to_ras_points(np.column_stack([i, j, k])).mean(axis=0)
    np.testing.assert_allclose(surface.mesh.center_mass, centre, atol=0.1)
    assert "/" not in surface.description["file"]
    with pytest.raises(InputError, match="labels present"):
        load_surface(path)
    mesh = trimesh.creation.icosphere(3, radius=5.0)
    tagged = write_mesh(mesh, tmp_path / "tagged.stl", space="LPS")
    read = load_surface(tagged)
    np.testing.assert_allclose(read.mesh.bounds, mesh.bounds, atol=1e-4)
    assert read.warnings == ()
    untagged = tmp_path / "untagged.stl"
    mesh.export(untagged)
    assert "no SPACE= tag" in load_surface(untagged).warnings[0]
    with pytest.raises(InputError, match="mesh file"):
        load_surface(tagged, "3")


def test_real_oblique_anisotropic_mri_labels(itk_example_data):
    """ITK's 2 x 2 x 3 mm, non-identity-direction brain mask: the surface matches the voxel volume and place."""
    surface = load_surface(itk_example_data / "KmeansTest_T1RawSkullStrip.nii.gz", "6")
    image = sitk.ReadImage(str(itk_example_data / "KmeansTest_T1RawSkullStrip.nii.gz"))
    assert not np.allclose(np.array(image.GetDirection()).reshape(3, 3), np.eye(3))
    mesh = surface.mesh
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(surface.description["voxel_volume_mm3"], rel=0.03)
    mask = surface.volume.array
    k, j, i = np.nonzero(mask)
    centre = surface.volume.ijk_to_ras_points(np.column_stack([i, j, k])).mean(axis=0)
    np.testing.assert_allclose(mesh.center_mass, centre, atol=1.0)
