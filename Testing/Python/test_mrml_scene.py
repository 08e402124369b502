"""Tests run against the real Slicer core (slicer-core from PyPI), not mocks."""

from __future__ import annotations

import numpy as np
import pytest
from vtk.util.numpy_support import vtk_to_numpy

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed (pip install -e '.[test]')")

from Wonder3DMedLib.mrml.headless import converter_rule_names, headless_slicer  # noqa: E402


def test_converter_rules_are_registered_once(headless):
    headless_slicer()
    headless_slicer()
    names = converter_rule_names()
    assert len(names) == len(set(names)) == 4
    assert "Binary labelmap to closed surface" in names


def test_scene_is_cleared_between_tests(mrml_scene):
    assert mrml_scene.GetNodesByClass("vtkMRMLScalarVolumeNode").GetNumberOfItems() == 0
    mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")


def test_labelmap_becomes_a_closed_surface_in_ras(mrml_scene):
    """A labelled sphere on an oblique, anisotropic grid gives a closed surface centred where IJKToRAS says."""
    labelmap = mrml_scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    spacing = (0.8, 0.9, 1.5)
    origin = (-20.0, 35.0, 12.0)
    angle = np.deg2rad(20)
    directions = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    labelmap.SetSpacing(*spacing)
    labelmap.SetOrigin(*origin)
    labelmap.SetIJKToRASDirections(directions.tolist())
    k, j, i = np.mgrid[0:30, 0:40, 0:40]
    center_ijk = np.array([19.5, 20.0, 14.0])
    radius_mm = 9.0
    offset = (np.stack([i, j, k], -1) - center_ijk) * spacing
    array = (np.linalg.norm(offset, axis=-1) <= radius_mm).astype(np.uint8)
    slicer.util.updateVolumeFromArray(labelmap, array)

    segmentation = mrml_scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    assert segmentation.CreateClosedSurfaceRepresentation()
    segment_id = segmentation.GetSegmentation().GetNthSegmentID(0)
    polydata = segmentation.GetClosedSurfaceInternalRepresentation(segment_id)
    vertices = vtk_to_numpy(polydata.GetPoints().GetData())
    ijk_to_ras = slicer.util.arrayFromVTKMatrix(_ijk_to_ras(labelmap))
    center_ras = (ijk_to_ras @ np.append(center_ijk, 1.0))[:3]
    bounds_center = (vertices.min(0) + vertices.max(0)) / 2
    assert np.allclose(bounds_center, center_ras, atol=1.0)
    radii = np.linalg.norm(vertices - center_ras, axis=1)
    assert abs(np.median(radii) - radius_mm) < 0.8


def _ijk_to_ras(volume):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    return matrix
