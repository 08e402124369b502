"""Checks on the surfaces before they are measured: closed or open, pieces, units.

Data form: :class:`trimesh.Trimesh` surfaces in RAS mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from Wonder3DMedLib.errors import InputError

__all__ = ["UNIT_RATIO_LIMIT", "MeshCheck", "check_mesh", "check_units", "bounding_boxes_overlap"]

#: Bounding boxes whose sizes differ by this factor or more are taken as different units.
UNIT_RATIO_LIMIT = 100.0


@dataclass(frozen=True)
class MeshCheck:
    """What a surface is like, as far as the metrics care.

    Attributes
    ----------
    empty : bool
        No triangle with area.
    closed : bool
        Watertight (every edge shared by exactly two faces) with consistent winding:
        volumes, centroids and overlaps are defined.
    components : int
        Connected pieces.
    area_mm2 : float
    size_mm : float
        Diagonal of the bounding box.
    """

    empty: bool
    closed: bool
    components: int
    area_mm2: float
    size_mm: float

    def as_dict(self) -> dict:
        return {
            "empty": self.empty,
            "closed": self.closed,
            "components": self.components,
            "area_mm2": self.area_mm2,
            "bounding_box_diagonal_mm": self.size_mm,
        }


def _components(faces: np.ndarray, used: np.ndarray) -> int:
    """Connected pieces of a triangle mesh (through shared vertices); ``used`` marks the vertices of faces."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    count = len(used)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    return int(np.count_nonzero(np.bincount(labels[used], minlength=1)))


def _closed_and_consistent(faces: np.ndarray, vertex_count: int) -> bool:
    """Every directed edge a→b appears once and its reverse b→a once: a closed surface whose
    faces are all wound the same way (watertight, consistently oriented)."""
    start = faces.ravel()
    end = faces[:, [1, 2, 0]].ravel()
    forward = np.sort(start * vertex_count + end)
    if np.any(forward[1:] == forward[:-1]):
        return False
    return bool(np.array_equal(forward, np.sort(end * vertex_count + start)))


def check_mesh(mesh: trimesh.Trimesh) -> MeshCheck:
    """Inspect a mesh whose duplicate vertices have been merged (``process=True``)."""
    area = float(mesh.area) if len(mesh.faces) else 0.0
    if area <= 0:
        return MeshCheck(empty=True, closed=False, components=0, area_mm2=0.0, size_mm=0.0)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    vertices = np.asarray(mesh.vertices)
    used = np.bincount(faces.ravel(), minlength=len(vertices)) > 0
    size = float(np.linalg.norm(np.ptp(vertices[used], axis=0)))
    return MeshCheck(
        empty=False,
        closed=_closed_and_consistent(faces, len(vertices)),
        components=_components(faces, used),
        area_mm2=area,
        size_mm=size,
    )


def check_units(prediction: MeshCheck, reference: MeshCheck) -> None:
    """Refuse to compare surfaces whose sizes differ by :data:`UNIT_RATIO_LIMIT` or more.

    Raises
    ------
    InputError
        With a hint about metres vs millimetres and model-frame meshes.
    """
    if prediction.empty or reference.empty or min(prediction.size_mm, reference.size_mm) <= 0:
        return
    ratio = max(prediction.size_mm, reference.size_mm) / min(prediction.size_mm, reference.size_mm)
    if ratio >= UNIT_RATIO_LIMIT:
        larger = "prediction" if prediction.size_mm > reference.size_mm else "reference"
        raise InputError(
            f"the two surfaces differ in size by a factor of {ratio:.0f} (bounding-box diagonals "
            f"{prediction.size_mm:.4g} vs {reference.size_mm:.4g} in the prediction and reference); "
            "they are probably in different units",
            hint=f"the {larger} may be in millimetres and the other in metres or centimetres, or a mesh may still "
            "be in the Wonder3D model frame (box [-1, 1]); place it in RAS mm first (`wonder3dmed mesh --frame`) "
            "or rescale it",
        )


def bounding_boxes_overlap(a: trimesh.Trimesh, b: trimesh.Trimesh) -> bool:
    """Whether the axis-aligned bounding boxes of two non-empty meshes intersect."""
    low_a, high_a = a.bounds
    low_b, high_b = b.bounds
    return bool(np.all(low_a <= high_b) and np.all(low_b <= high_a))
