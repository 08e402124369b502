"""Mesh files carry the SPACE tag and round-trip through 3D Slicer's own storage node."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.mesh_io import MESH_SUFFIXES, read_mesh, write_mesh

FORMATS = [s[1:] for s in MESH_SUFFIXES]


@pytest.fixture
def mesh_ras():
    """An off-centre sphere in RAS mm with vertex colours (asymmetric so an x/y flip shows)."""
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=7.0)
    mesh.apply_translation([25.0, -40.0, 12.0])
    colors = np.zeros((len(mesh.vertices), 4), dtype=np.uint8)
    colors[:, 0] = np.arange(len(mesh.vertices)) % 256
    colors[:, 3] = 255
    mesh.visual.vertex_colors = colors
    return mesh


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("space", ["RAS", "LPS"])
def test_round_trip_keeps_ras_position(tmp_path, mesh_ras, fmt, space):
    path = write_mesh(mesh_ras, tmp_path / f"mesh.{fmt}", space=space)
    loaded = read_mesh(path)
    assert loaded.space_in_file == space and loaded.space_tagged
    assert len(loaded.mesh.faces) == len(mesh_ras.faces)
    assert np.allclose(loaded.mesh.bounds, mesh_ras.bounds, atol=1e-4)
    assert loaded.mesh.volume == pytest.approx(mesh_ras.volume, rel=1e-5), "winding must stay outward"


@pytest.mark.parametrize("fmt", ["stl", "ply", "obj"])
def test_header_holds_no_more_than_software_space_and_unit(tmp_path, mesh_ras, fmt):
    path = write_mesh(mesh_ras, tmp_path / f"mesh.{fmt}")
    head = path.read_bytes()[:300]
    assert b"SPACE=RAS" in head and b"UNITS=mm" in head and b"Wonder3DMed" in head


def test_ply_keeps_colors_and_scalars(tmp_path, mesh_ras):
    distance = np.linspace(-2.0, 3.0, len(mesh_ras.vertices))
    path = write_mesh(mesh_ras, tmp_path / "mesh.ply", point_scalars={"signed_distance_mm": distance})
    loaded = trimesh.load(path, process=False)
    assert np.array_equal(loaded.visual.vertex_colors[:, 0], mesh_ras.visual.vertex_colors[:, 0])
    raw = loaded.metadata["_ply_raw"]["vertex"]["data"]["signed_distance_mm"]
    assert np.allclose(raw, distance, atol=1e-6)


def test_untagged_file_is_read_as_lps_like_slicer(tmp_path, mesh_ras):
    path = tmp_path / "plain.stl"
    mesh_ras.export(path)
    loaded = read_mesh(path)
    assert not loaded.space_tagged and loaded.space_in_file == "LPS"
    assert np.allclose(loaded.mesh.bounds.mean(0), mesh_ras.bounds.mean(0) * [-1, -1, 1], atol=1e-4)
    assert np.allclose(read_mesh(path, default_space="RAS").mesh.bounds, mesh_ras.bounds, atol=1e-4)


def test_bad_mesh_inputs_say_what_is_wrong(tmp_path):
    with pytest.raises(InputError, match="unsupported mesh file type '.xyz'"):
        read_mesh(tmp_path / "a.xyz")
    with pytest.raises(InputError, match="mesh file not found"):
        read_mesh(tmp_path / "missing.stl")
    broken = tmp_path / "broken.ply"
    broken.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\n")
    with pytest.raises(InputError, match="cannot read mesh file"):
        read_mesh(broken)


@pytest.mark.parametrize("fmt", ["stl", "ply", "obj", "vtk", "vtp"])
def test_garbage_is_refused_not_read_as_an_empty_mesh(tmp_path, fmt):
    path = tmp_path / f"bad.{fmt}"
    path.write_text("hello\n")
    with pytest.raises(InputError, match=f"not a valid {fmt.upper()} mesh file|cannot read mesh file"):
        read_mesh(path)
    path.write_bytes(b"")
    with pytest.raises(InputError, match=f"not a valid {fmt.upper()} mesh file|cannot read mesh file"):
        read_mesh(path)


def test_a_well_formed_empty_file_is_an_empty_mesh(tmp_path):
    path = tmp_path / "empty.stl"
    path.write_bytes(b"SPACE=RAS".ljust(80, b" ") + (0).to_bytes(4, "little"))
    assert len(read_mesh(path).mesh.faces) == 0
    path.write_text("solid empty\nendsolid empty\n")
    assert len(read_mesh(path).mesh.faces) == 0


def test_declared_units_are_converted_to_millimetres(tmp_path, mesh_ras):
    metres = mesh_ras.copy()
    metres.vertices = metres.vertices / 1000.0
    path = tmp_path / "metres.ply"
    metres.export(path)
    path.write_bytes(path.read_bytes().replace(b"end_header", b"comment SPACE=RAS UNITS=m\nend_header", 1))
    loaded = read_mesh(path)
    assert loaded.units_in_file == "m" and np.allclose(loaded.mesh.bounds, mesh_ras.bounds, atol=1e-6)
    path.write_bytes(path.read_bytes().replace(b"UNITS=m", b"UNITS=furlong", 1))
    with pytest.raises(InputError, match="UNITS=furlong, which is not a length unit"):
        read_mesh(path)


@pytest.mark.parametrize("fmt", ["stl", "ply", "vtk", "vtp", "obj"])
@pytest.mark.parametrize("space", ["RAS", "LPS"])
def test_slicer_storage_node_reads_our_files_at_the_same_ras_position(mrml_scene, tmp_path, mesh_ras, fmt, space):
    slicer = pytest.importorskip("slicer")
    from vtk.util.numpy_support import vtk_to_numpy

    path = write_mesh(mesh_ras, tmp_path / f"mesh.{fmt}", space=space)
    model = mrml_scene.AddNewNodeByClass("vtkMRMLModelNode")
    storage = mrml_scene.AddNewNodeByClass("vtkMRMLModelStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(model)
    points = vtk_to_numpy(model.GetPolyData().GetPoints().GetData())
    assert np.allclose(points.min(0), mesh_ras.bounds[0], atol=1e-4)
    assert np.allclose(points.max(0), mesh_ras.bounds[1], atol=1e-4)
    expected = slicer.vtkMRMLStorageNode.CoordinateSystemRAS if space == "RAS" else slicer.vtkMRMLStorageNode.CoordinateSystemLPS
    assert storage.GetCoordinateSystem() == expected


@pytest.mark.parametrize("fmt", ["stl", "ply", "vtk", "vtp"])
def test_we_read_files_slicer_wrote(mrml_scene, tmp_path, mesh_ras, fmt):
    pytest.importorskip("slicer")
    import vtk
    from vtk.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray

    polydata = vtk.vtkPolyData()
    points = vtk.vtkPoints()
    points.SetData(numpy_to_vtk(mesh_ras.vertices.astype(np.float32), deep=True))
    polydata.SetPoints(points)
    cells = vtk.vtkCellArray()
    cells.SetData(
        numpy_to_vtkIdTypeArray(np.arange(0, 3 * len(mesh_ras.faces) + 1, 3, dtype=np.int64), deep=True),
        numpy_to_vtkIdTypeArray(mesh_ras.faces.ravel().astype(np.int64), deep=True),
    )
    polydata.SetPolys(cells)
    model = mrml_scene.AddNewNodeByClass("vtkMRMLModelNode")
    model.SetAndObservePolyData(polydata)
    storage = mrml_scene.AddNewNodeByClass("vtkMRMLModelStorageNode")  # Slicer's default: LPS
    storage.SetFileName(str(tmp_path / f"slicer.{fmt}"))
    assert storage.WriteData(model)
    loaded = read_mesh(tmp_path / f"slicer.{fmt}")
    assert loaded.space_in_file == "LPS" and loaded.space_tagged
    assert np.allclose(loaded.mesh.bounds, mesh_ras.bounds, atol=1e-4)
