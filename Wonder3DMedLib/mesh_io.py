"""Surface mesh files with the coordinate-system tag 3D Slicer reads.

Data form: :class:`trimesh.Trimesh` with vertices in **RAS millimetres** in memory.

3D Slicer writes model files in LPS by default and records the space in the file
(``SPACE=RAS`` / ``SPACE=LPS``: in the 80-byte STL header, a PLY ``comment`` line, an
OBJ ``#`` comment, line 2 of a legacy VTK file, a ``SPACE`` field-data string array in
VTP). On reading, Slicer looks for those tags and treats an untagged file as LPS, which
negates x and y. :func:`write_mesh` always writes the tag and :func:`read_mesh` honours
it the same way, so files round-trip through Slicer at the same RAS position.

Headers carry the software name, the space and the unit, nothing about the patient.

A reconstruction not yet placed over its slice is in Wonder3D's *model frame* (the box
[−1, 1]³ of the front camera), not in patient coordinates. :func:`write_mesh` with
``space="MODEL"`` writes it with ``FRAME=wonder3d-model`` in place of a ``SPACE=`` tag, so
nothing claims RAS or LPS, and :func:`read_mesh` refuses such a file with a hint instead of
loading it as LPS millimetres.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from Wonder3DMedLib import __version__
from Wonder3DMedLib.errors import InputError, OutputError

__all__ = ["MESH_SUFFIXES", "SPACES", "MODEL_SPACE", "MeshFile", "read_mesh", "write_mesh"]

#: File types read and written (lower-case suffixes).
MESH_SUFFIXES = (".stl", ".ply", ".obj", ".vtk", ".vtp")

#: Coordinate systems a file can be tagged with.
SPACES = ("RAS", "LPS")

#: ``space`` of a mesh in the reconstruction's model frame (not patient coordinates).
MODEL_SPACE = "MODEL"
_MODEL_MARKER = "FRAME=wonder3d-model"

_SPACE_PATTERN = re.compile(rb"SPACE=(RAS|LPS)")
_UNITS_PATTERN = re.compile(rb"UNITS=([A-Za-z]+)")
#: Length units a header may declare, in millimetres.
_MILLIMETRES_PER_UNIT = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "um": 0.001}
# Statements of a Wavefront OBJ file (anything else means the file is not an OBJ).
_OBJ_KEYWORDS = (b"v", b"vt", b"vn", b"vp", b"f", b"l", b"p", b"o", b"g", b"s", b"usemtl", b"mtllib")
_RAS_LPS = np.array([-1.0, -1.0, 1.0])


@dataclass(frozen=True, eq=False)
class MeshFile:
    """A mesh read from disk.

    Attributes
    ----------
    mesh : trimesh.Trimesh
        Vertices in RAS millimetres (converted from LPS when the file is LPS).
    space_in_file : {'RAS', 'LPS'}
        The coordinate system the file is in.
    space_tagged : bool
        False when the file carried no ``SPACE=`` tag and ``space_in_file`` is the
        assumed default (Slicer assumes LPS).
    path : Path
    units_in_file : {'mm', 'cm', 'm', 'um'}
        The length unit the header declares (``UNITS=``; mm when absent); ``mesh`` is
        converted to millimetres.
    """

    mesh: trimesh.Trimesh
    space_in_file: str
    space_tagged: bool
    path: Path
    units_in_file: str = "mm"


def _check_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise InputError(
            f"unsupported mesh file type '{path.suffix}'",
            path=path,
            hint=f"use one of {', '.join(MESH_SUFFIXES)}",
        )
    return suffix


def _header_tag(path: Path, suffix: str) -> str | None:
    """The ``SPACE=`` tag of a STL, PLY, OBJ or legacy VTK file, if any."""
    match = _SPACE_PATTERN.search(_header_region(path, suffix))
    return match.group(1).decode() if match else None


def _header_units(path: Path, suffix: str) -> str | None:
    """The ``UNITS=`` tag of the header, if any (``.vtp``: not read, Wonder3DMed writes mm)."""
    if suffix == ".vtp":
        return None
    match = _UNITS_PATTERN.search(_header_region(path, suffix))
    return match.group(1).decode() if match else None


def _header_region(path: Path, suffix: str) -> bytes:
    """The free-text header of a STL, PLY, OBJ or legacy VTK file."""
    with open(path, "rb") as stream:
        head = stream.read(4096)
    if suffix == ".stl":
        region = head[:80] if not head[:5].lower() == b"solid" else head.split(b"\n", 1)[0]
    elif suffix == ".ply":
        region = head.split(b"end_header", 1)[0]
        region = b"\n".join(line for line in region.splitlines() if line.startswith(b"comment"))
    elif suffix == ".obj":
        lines = []
        for line in head.splitlines():
            if line.strip() and not line.lstrip().startswith(b"#"):
                break
            lines.append(line)
        region = b"\n".join(lines)
    else:  # legacy .vtk: the second line is the free-text header
        parts = head.split(b"\n", 2)
        region = parts[1] if len(parts) > 1 else b""
    return region


def _is_valid_empty_file(path: Path, suffix: str) -> bool:
    """Whether a file that gave no triangles is a well-formed file of its type (not garbage)."""
    data = path.read_bytes()
    if not data.strip():
        return False
    if suffix == ".stl":
        ascii_stl = data.lstrip()[:5].lower() == b"solid" and b"endsolid" in data.lower()
        return ascii_stl or (len(data) >= 84 and len(data) == 84 + 50 * struct.unpack("<I", data[80:84])[0])
    if suffix == ".ply":
        return data.startswith(b"ply")
    if suffix == ".obj":
        statements = (line.split(maxsplit=1)[0] for line in data.splitlines() if line.strip())
        return all(word.startswith(b"#") or word in _OBJ_KEYWORDS for word in statements)
    if suffix == ".vtk":
        return data.startswith(b"# vtk DataFile")
    return b"<VTKFile" in data[:1024]


def _read_vtk(path: Path, suffix: str) -> tuple[trimesh.Trimesh, str | None]:
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    reader = vtk.vtkXMLPolyDataReader() if suffix == ".vtp" else vtk.vtkPolyDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    polydata = reader.GetOutput()
    tag = None
    if suffix == ".vtp":
        array = polydata.GetFieldData().GetAbstractArray("SPACE") if polydata.GetFieldData() else None
        if array is not None and array.GetNumberOfValues() > 0:
            value = array.GetValue(0)
            tag = "RAS" if "RAS" in value else "LPS" if "LPS" in value else None
    else:
        tag = _header_tag(path, suffix)
    triangles = vtk.vtkTriangleFilter()
    triangles.SetInputData(polydata)
    triangles.Update()
    polydata = triangles.GetOutput()
    if polydata.GetNumberOfPoints() == 0:
        return trimesh.Trimesh(), tag
    vertices = vtk_to_numpy(polydata.GetPoints().GetData()).astype(np.float64)
    faces = vtk_to_numpy(polydata.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    return trimesh.Trimesh(vertices, faces, process=True), tag


def read_mesh(path: str | Path, *, default_space: str = "LPS") -> MeshFile:
    """Read a surface mesh and bring it to RAS millimetres.

    Parameters
    ----------
    path : str or Path
        A ``.stl``, ``.ply``, ``.obj``, ``.vtk`` or ``.vtp`` file.
    default_space : {'LPS', 'RAS'}
        Space assumed when the file has no ``SPACE=`` tag (Slicer assumes LPS).

    Returns
    -------
    MeshFile

    Raises
    ------
    InputError
        Missing, unreadable or unsupported file.
    """
    path = Path(path)
    if default_space not in SPACES:
        raise ValueError(f"default_space must be one of {SPACES}, got {default_space!r}")
    suffix = _check_suffix(path)
    if not path.is_file():
        raise InputError("mesh file not found", path=path)
    if _MODEL_MARKER.encode() in path.read_bytes()[:4096] or (suffix == ".vtp" and _vtp_is_model_frame(path)):
        raise InputError(
            "this mesh is in the Wonder3D model frame (the reconstruction box), not in patient coordinates",
            path=path,
            hint="write it in RAS millimetres with `wonder3dmed mesh VIEWS_DIR --frame frame.json --out ...`",
        )
    try:
        if suffix in (".vtk", ".vtp"):
            mesh, tag = _read_vtk(path, suffix)
        else:
            tag = _header_tag(path, suffix)
            loaded = trimesh.load(path, file_type=suffix[1:], force="mesh", process=True)
            mesh = loaded if isinstance(loaded, trimesh.Trimesh) else trimesh.Trimesh()
    except InputError:
        raise
    except Exception as error:  # trimesh/vtk raise many types on corrupt files
        raise InputError(f"cannot read mesh file: {error}", path=path) from error
    if len(mesh.faces) == 0 and not _is_valid_empty_file(path, suffix):
        raise InputError(
            f"this is not a valid {suffix[1:].upper()} mesh file (no triangles could be read from it)",
            path=path,
            hint="check that the file was written completely and that its suffix matches its format",
        )
    units = _header_units(path, suffix) or "mm"
    if units not in _MILLIMETRES_PER_UNIT:
        raise InputError(
            f"the file declares UNITS={units}, which is not a length unit this tool knows",
            path=path,
            hint=f"use one of {', '.join(_MILLIMETRES_PER_UNIT)} in the header, or remove the tag for millimetres",
        )
    space = tag or default_space
    factor = _MILLIMETRES_PER_UNIT[units] * (_RAS_LPS if space == "LPS" else 1.0)
    if len(mesh.vertices) and not np.all(factor == 1.0):
        mesh = mesh.copy()
        mesh.vertices = mesh.vertices * factor
    return MeshFile(mesh=mesh, space_in_file=space, space_tagged=tag is not None, path=path, units_in_file=units)


def _vtp_is_model_frame(path: Path) -> bool:
    import vtk

    reader = vtk.vtkXMLPolyDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    field_data = reader.GetOutput().GetFieldData()
    return field_data is not None and field_data.GetAbstractArray("FRAME") is not None


def _header_text(space: str) -> str:
    if space == MODEL_SPACE:
        return f"Wonder3DMed {__version__} {_MODEL_MARKER} UNITS=model NOT patient coordinates"
    return f"Wonder3DMed {__version__} output. SPACE={space} UNITS=mm"


def _vertex_colors(mesh: trimesh.Trimesh) -> np.ndarray | None:
    if mesh.visual.kind == "vertex":
        colors = np.asarray(mesh.visual.vertex_colors)
        if colors.shape == (len(mesh.vertices), 4):
            return colors[:, :3].astype(np.uint8)
    return None


def _write_stl(path: Path, vertices: np.ndarray, faces: np.ndarray, header: str) -> None:
    triangles = vertices[faces]
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, lengths, out=np.zeros_like(normals), where=lengths > 0)
    record = np.zeros(len(faces), dtype=[("normal", "<f4", 3), ("vertices", "<f4", (3, 3)), ("attr", "<u2")])
    record["normal"] = normals
    record["vertices"] = triangles
    with open(path, "wb") as stream:
        stream.write(header.encode("ascii")[:80].ljust(80, b"\0"))
        stream.write(struct.pack("<I", len(faces)))
        stream.write(record.tobytes())


def _write_ply(
    path: Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    space: str,
    colors: np.ndarray | None,
    scalars: dict[str, np.ndarray],
) -> None:
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    header = [
        "ply",
        "format binary_little_endian 1.0",
        f"comment {_header_text(space)}",
        f"comment SPACE={space}" if space != MODEL_SPACE else f"comment {_MODEL_MARKER}",
        f"element vertex {len(vertices)}",
        "property float x",
        "property float y",
        "property float z",
    ]
    if colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    for name in scalars:
        fields.append((name, "<f4"))
        header.append(f"property float {name}")
    header += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    table = np.zeros(len(vertices), dtype=fields)
    table["x"], table["y"], table["z"] = vertices.T
    if colors is not None:
        table["red"], table["green"], table["blue"] = colors.T
    for name, values in scalars.items():
        table[name] = values
    face_table = np.zeros(len(faces), dtype=[("count", "u1"), ("indices", "<i4", 3)])
    face_table["count"] = 3
    face_table["indices"] = faces
    with open(path, "wb") as stream:
        stream.write(("\n".join(header) + "\n").encode("ascii"))
        stream.write(table.tobytes())
        stream.write(face_table.tobytes())


def _write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray, header: str, colors: np.ndarray | None) -> None:
    with open(path, "w", encoding="ascii") as stream:
        stream.write(f"# {header}\n")
        if colors is None:
            np.savetxt(stream, vertices, fmt="v %.6f %.6f %.6f")
        else:
            table = np.hstack([vertices, colors / 255.0])
            np.savetxt(stream, table, fmt="v %.6f %.6f %.6f %.4f %.4f %.4f")
        np.savetxt(stream, faces + 1, fmt="f %d %d %d")


def _write_vtk(
    path: Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    space: str,
    colors: np.ndarray | None,
    scalars: dict[str, np.ndarray],
    xml: bool,
) -> None:
    import vtk
    from vtk.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray

    polydata = vtk.vtkPolyData()
    points = vtk.vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(vertices, dtype=np.float32), deep=True))
    polydata.SetPoints(points)
    cells = vtk.vtkCellArray()
    offsets = numpy_to_vtkIdTypeArray(np.arange(0, 3 * len(faces) + 1, 3, dtype=np.int64), deep=True)
    connectivity = numpy_to_vtkIdTypeArray(np.ascontiguousarray(faces.ravel(), dtype=np.int64), deep=True)
    cells.SetData(offsets, connectivity)
    polydata.SetPolys(cells)
    if colors is not None:
        array = numpy_to_vtk(np.ascontiguousarray(colors), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR)
        array.SetName("Color")
        polydata.GetPointData().AddArray(array)
    for name, values in scalars.items():
        array = numpy_to_vtk(np.ascontiguousarray(values, dtype=np.float32), deep=True)
        array.SetName(name)
        polydata.GetPointData().AddArray(array)
    if xml:
        tag = vtk.vtkStringArray()
        tag.SetName("SPACE" if space != MODEL_SPACE else "FRAME")
        tag.InsertNextValue(space if space != MODEL_SPACE else _MODEL_MARKER.split("=", 1)[1])
        polydata.GetFieldData().AddArray(tag)
        writer = vtk.vtkXMLPolyDataWriter()
    else:
        writer = vtk.vtkPolyDataWriter()
        writer.SetFileVersion(42)
        writer.SetFileTypeToBinary()
        writer.SetHeader(_header_text(space))
    writer.SetFileName(str(path))
    writer.SetInputData(polydata)
    if not writer.Write():
        raise OutputError("VTK could not write the mesh file", path=path)


def write_mesh(
    mesh: trimesh.Trimesh,
    path: str | Path,
    *,
    space: str = "RAS",
    point_scalars: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write a mesh whose vertices are in RAS millimetres, tagged the way Slicer reads it.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Vertices in RAS mm. Per-vertex colours (``mesh.visual.vertex_colors``) are
        written to PLY, OBJ, VTK and VTP.
    path : str or Path
        Output file; the suffix picks the format (``.stl``, ``.ply``, ``.obj``, ``.vtk``,
        ``.vtp``).
    space : {'RAS', 'LPS', 'MODEL'}
        Coordinate system of the file (vertices are converted when 'LPS'). 'MODEL': the
        mesh is in the reconstruction's model frame; written unchanged, marked
        ``FRAME=wonder3d-model`` and with no ``SPACE=`` tag.
    point_scalars : dict of str to (n,) array, optional
        Extra per-vertex values (e.g. ``signed_distance_mm``) for PLY, VTK and VTP.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    OutputError
        The file cannot be written.
    """
    path = Path(path)
    suffix = _check_suffix(path)
    if space not in (*SPACES, MODEL_SPACE):
        raise ValueError(f"space must be one of {(*SPACES, MODEL_SPACE)}, got {space!r}")
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    if space == "LPS":
        vertices = vertices * _RAS_LPS
    faces = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
    colors = _vertex_colors(mesh)
    scalars = {}
    for name, values in (point_scalars or {}).items():
        values = np.asarray(values, dtype=np.float32).ravel()
        if values.shape != (len(vertices),) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"point scalar {name!r} must be named like an identifier and have one value per vertex")
        scalars[name] = values
    try:
        if suffix == ".stl":
            _write_stl(path, vertices, faces, _header_text(space))
        elif suffix == ".ply":
            _write_ply(path, vertices, faces, space, colors, scalars)
        elif suffix == ".obj":
            _write_obj(path, vertices, faces, _header_text(space), colors)
        else:
            _write_vtk(path, vertices, faces, space, colors, scalars, xml=suffix == ".vtp")
    except OSError as error:
        raise OutputError(f"cannot write mesh file: {error.strerror or error}", path=path) from error
    return path
