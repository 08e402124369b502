"""Exact distances from points to a triangle mesh, signed by pseudonormals.

Data form: query points ``(n, 3) float64`` and a :class:`trimesh.Trimesh`, both in the
same frame and unit (RAS millimetres throughout the metrics package).

The distance of a point is the exact minimum over all triangles of the mesh (not a
distance to samples of it), found with the bounding-volume hierarchy of
:class:`~.bvh.TriangleBVH`, which prunes only with true lower bounds.

Signs use angle-weighted pseudonormals (Bærentzen & Aanæs, IEEE TVCG 11(3), 2005) of the
face, edge or corner holding the closest point: positive outside, negative inside a
closed mesh whose faces are wound outwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from Wonder3DMedLib.metrics.bvh import TriangleBVH
from Wonder3DMedLib.metrics.triangles import closest_points, pack_triangles

__all__ = ["ClosestPoints", "MeshDistance"]

# Barycentric weights at or below this count as zero (closest point on an edge or corner).
_ON_BOUNDARY = 1e-12


@dataclass(frozen=True, eq=False)
class ClosestPoints:
    """The closest points of a mesh to a set of query points.

    Attributes
    ----------
    distance : (n,) float64
        Exact unsigned distance (mm).
    triangle : (n,) int64
        Face index holding the closest point.
    point : (n, 3) float64
        Closest point on the mesh (same frame as the queries).
    weights : (n, 3) float64
        Barycentric coordinates of ``point`` on that face's corners.
    """

    distance: np.ndarray
    triangle: np.ndarray
    point: np.ndarray
    weights: np.ndarray


class MeshDistance:
    """Distance queries against one triangle mesh, built once and queried many times.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Target surface with at least one face; vertices in mm. Not modified.
    """

    def __init__(self, mesh: trimesh.Trimesh):
        faces = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
        if len(faces) == 0:
            raise ValueError("MeshDistance needs a mesh with at least one face")
        self._mesh = mesh
        corners = np.asarray(mesh.vertices, dtype=np.float64)[faces]
        self._corners = corners
        self._bvh = TriangleBVH(corners)
        self._pseudonormals: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def closest(self, points: np.ndarray) -> ClosestPoints:
        """Exact closest points on the mesh.

        Parameters
        ----------
        points : (n, 3) float
            Query points, same frame and unit as the mesh.

        Returns
        -------
        ClosestPoints
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        _, triangle = self._bvh.nearest(points)
        point, weights = closest_points(points, pack_triangles(self._corners[triangle]))
        # Measured again from the closest point: free of the cancellation in the search's
        # squared distances (≈1e-8 mm for points on the surface).
        return ClosestPoints(distance=np.linalg.norm(points - point, axis=1), triangle=triangle, point=point, weights=weights)

    def unsigned(self, points: np.ndarray) -> np.ndarray:
        """(n,) exact unsigned distances (mm) from ``points`` to the mesh."""
        return self.closest(points).distance

    @property
    def face_normals(self) -> np.ndarray:
        """(faces, 3) unit normals following the faces' winding (zero for degenerate faces)."""
        return self._normals()[0]

    def _normals(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Face normals, edge and corner pseudonormals, and each face's edge indices."""
        if self._pseudonormals is None:
            faces = np.asarray(self._mesh.faces, dtype=np.int64)
            corners = self._corners
            face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
            length = np.linalg.norm(face_normals, axis=1, keepdims=True)
            face_normals = np.divide(face_normals, length, out=np.zeros_like(face_normals), where=length > 0)
            # Edge k of a face is the edge opposite its corner k.
            first = faces[:, [1, 2, 0]].ravel()
            second = faces[:, [2, 0, 1]].ravel()
            key = np.minimum(first, second) * (int(faces.max()) + 1) + np.maximum(first, second)
            _, face_edges = np.unique(key, return_inverse=True)
            face_edges = face_edges.reshape(-1, 3)
            repeated = np.repeat(face_normals, 3, axis=0)
            edge_normals = np.stack(
                [np.bincount(face_edges.ravel(), weights=repeated[:, a], minlength=face_edges.max() + 1) for a in range(3)],
                axis=1,
            )
            angles = trimesh.triangles.angles(corners).ravel()
            vertex_normals = np.stack(
                [np.bincount(faces.ravel(), weights=angles * repeated[:, a], minlength=len(self._mesh.vertices))
                 for a in range(3)],
                axis=1,
            )
            self._pseudonormals = (face_normals, edge_normals, vertex_normals, face_edges)
        return self._pseudonormals

    def signs(self, points: np.ndarray, found: ClosestPoints) -> np.ndarray:
        """(n,) +1 outside, −1 inside (0 on the surface) for points whose closest points are ``found``.

        The sign is that of ``(point − closest point) · pseudonormal``; it is exact for a
        closed mesh with outward-wound faces and follows the faces' winding elsewhere.
        """
        face_normals, edge_normals, vertex_normals, face_edges = self._normals()
        faces = np.asarray(self._mesh.faces, dtype=np.int64)
        on_boundary = found.weights <= _ON_BOUNDARY
        zeros = on_boundary.sum(axis=1)
        normal = face_normals[found.triangle].copy()
        edge = zeros == 1
        if edge.any():
            corner = np.argmax(on_boundary[edge], axis=1)
            normal[edge] = edge_normals[face_edges[found.triangle[edge], corner]]
        vertex = zeros >= 2
        if vertex.any():
            corner = np.argmax(found.weights[vertex], axis=1)
            normal[vertex] = vertex_normals[faces[found.triangle[vertex], corner]]
        offset = np.asarray(points, dtype=np.float64).reshape(-1, 3) - found.point
        return np.sign(np.einsum("ij,ij->i", offset, normal))

    def signed(self, points: np.ndarray) -> np.ndarray:
        """(n,) exact distances (mm), positive outside and negative inside the mesh (see :meth:`signs`)."""
        found = self.closest(points)
        return np.where(self.signs(points, found) < 0, -found.distance, found.distance)
