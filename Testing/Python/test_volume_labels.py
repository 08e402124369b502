"""Volumes keep Slicer's IJK->RAS geometry; labels are picked by value or by name."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.imaging.io import Volume, read_volume, write_volume
from Wonder3DMedLib.imaging.labels import label_mask, read_labelmap


def oblique_volume(array: np.ndarray) -> Volume:
    angle = np.deg2rad(25)
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation * [0.8, 0.9, 1.5]
    matrix[:3, 3] = [-30.0, 12.0, 7.5]
    return Volume(array, matrix)


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".mha"])
def test_geometry_matches_slicer_storage_node(mrml_scene, tmp_path, suffix):
    slicer = pytest.importorskip("slicer")
    import vtk

    volume = oblique_volume(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6))
    path = write_volume(volume, tmp_path / f"v{suffix}")
    node = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    storage = mrml_scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    assert np.allclose(slicer.util.arrayFromVTKMatrix(matrix), volume.ijk_to_ras, atol=1e-5)
    assert np.array_equal(slicer.util.arrayFromVolume(node), volume.array)
    again = read_volume(path)
    assert np.allclose(again.ijk_to_ras, volume.ijk_to_ras, atol=1e-6) and np.array_equal(again.array, volume.array)


def test_points_round_trip_between_ijk_and_ras():
    volume = oblique_volume(np.zeros((3, 4, 5)))
    ijk = np.array([[0, 0, 0], [4, 3, 2], [1.5, 2.25, 0.5]])
    assert np.allclose(volume.ras_to_ijk_points(volume.ijk_to_ras_points(ijk)), ijk)
    assert np.allclose(volume.spacing, [0.8, 0.9, 1.5])


def test_aal_labels_by_value_and_name(mricron_templates):
    labelled = read_labelmap(mricron_templates / "aal.nii.gz")
    by_name, description = label_mask(labelled, "caudate_l")
    by_value, _ = label_mask(labelled, "71")
    assert description == "label 71 (Caudate_L)"
    assert np.array_equal(by_name, by_value) and by_name.sum() > 1000
    with pytest.raises(InputError, match=r"label 200 is not in the labelmap; labels present: 1 \(Precentral_L\)"):
        label_mask(labelled, 200)
    with pytest.raises(InputError, match="holds 116 labels; say which one with FILE:LABEL"):
        label_mask(labelled, None)
    with pytest.raises(InputError, match="no label named 'Cerebellum_99'"):
        label_mask(labelled, "Cerebellum_99")
    with pytest.raises(InputError, match=r"no label named 'Thalamus_X' \(did you mean Thalamus_L or Thalamus_R\?\)"):
        label_mask(labelled, "Thalamus_X")
    with pytest.raises(InputError, match="label 0 is the background of a labelmap, not an object"):
        label_mask(labelled, 0)
    unknown = mricron_templates / "aal.nii.txt"
    with pytest.raises(InputError, match="'.txt' is neither a mesh nor an image format"):
        read_labelmap(unknown)
    with pytest.raises(InputError, match="a folder cannot be a labelmap or mesh reference"):
        read_labelmap(mricron_templates)


def test_slicer_segmentation_file_names_its_segments(mrml_scene, tmp_path):
    slicer = pytest.importorskip("slicer")
    labelmap = mrml_scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    array = np.zeros((10, 12, 14), dtype=np.uint8)
    array[2:5, 3:7, 4:9] = 1
    array[6:9, 3:7, 4:9] = 2
    slicer.util.updateVolumeFromArray(labelmap, array)
    segmentation = mrml_scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    segments = segmentation.GetSegmentation()
    segments.GetNthSegment(0).SetName("liver")
    segments.GetNthSegment(1).SetName("tumour")
    storage = mrml_scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(tmp_path / "seg.seg.nrrd"))
    assert storage.WriteData(segmentation)
    labelled = read_labelmap(tmp_path / "seg.seg.nrrd")
    assert set(labelled.names.values()) == {"liver", "tumour"}
    mask, description = label_mask(labelled, "Tumour")
    assert "(tumour)" in description and mask.sum() == 3 * 4 * 5


def test_bad_labelmaps_are_refused(tmp_path):
    intensity = sitk.GetImageFromArray(np.random.default_rng(0).normal(size=(4, 5, 6)).astype(np.float32))
    sitk.WriteImage(intensity, str(tmp_path / "t1.nii.gz"))
    with pytest.raises(InputError, match="non-integer values"):
        read_labelmap(tmp_path / "t1.nii.gz")
    sitk.WriteImage(sitk.Image(4, 5, 6, sitk.sitkUInt8), str(tmp_path / "empty.nrrd"))
    with pytest.raises(InputError, match="the labelmap is empty"):
        label_mask(read_labelmap(tmp_path / "empty.nrrd"), None)
    with pytest.raises(InputError, match="labelmap file not found"):
        read_labelmap(tmp_path / "none.nrrd")
