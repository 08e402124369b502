"""Exact point-to-mesh distances: checked against trimesh's closest points and analytic shapes."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from Wonder3DMedLib.metrics.bvh import LEAF_SIZE, TriangleBVH
from Wonder3DMedLib.metrics.distance import MeshDistance
from Wonder3DMedLib.metrics.triangles import closest_points, pack_triangles, squared_distances


def irregular_mesh() -> trimesh.Trimesh:
    """A bumpy closed surface with uneven, partly sliver-shaped triangles."""
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=10.0)
    rng = np.random.default_rng(1)
    vertices = sphere.vertices * (1.0 + 0.15 * rng.standard_normal((len(sphere.vertices), 1)))
    vertices[:, 0] *= 1.8  # stretched: long thin triangles
    return trimesh.Trimesh(vertices, sphere.faces, process=False)


def brute_force(points: np.ndarray, mesh: trimesh.Trimesh) -> np.ndarray:
    packed = pack_triangles(mesh.triangles)
    return np.sqrt(np.min(squared_distances(points[:, :1], points[:, 1:2], points[:, 2:], packed[:, None, :]), axis=1))


def test_distances_match_trimesh_closest_points_everywhere():
    """Exact to rounding: near, far, inside and outside points, against trimesh.proximity (independent code)."""
    mesh = irregular_mesh()
    rng = np.random.default_rng(2)
    points = np.concatenate([
        rng.uniform(-40, 40, (300, 3)),                              # far and inside
        mesh.vertices[:100] + rng.normal(0, 0.3, (100, 3)),          # close to the surface
        mesh.triangles_center[:100],                                 # on it
    ])
    ours = MeshDistance(mesh).closest(points)
    _, reference, _ = trimesh.proximity.closest_point(mesh, points)
    np.testing.assert_allclose(ours.distance, reference, atol=1e-9)
    np.testing.assert_allclose(ours.distance, brute_force(points, mesh), atol=1e-9)
    # The closest points are on their triangles and at the reported distance.
    np.testing.assert_allclose(np.linalg.norm(ours.point - points, axis=1), ours.distance, atol=1e-9)
    np.testing.assert_allclose(ours.weights.sum(axis=1), 1.0, atol=1e-12)
    assert ours.weights.min() >= -1e-12


def test_large_mesh_far_queries_are_exact():
    """A dense mesh queried from 1-15 mm away: the hierarchy's pruning never loses the nearest triangle."""
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=30.0)
    mesh.vertices[:, 2] *= 0.7
    rng = np.random.default_rng(3)
    directions = rng.standard_normal((200, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    points = directions * rng.uniform(15, 45, (200, 1))
    found = MeshDistance(mesh).unsigned(points)
    np.testing.assert_allclose(found, brute_force(points, mesh), atol=1e-9)


def test_points_on_vertices_and_edges_are_at_zero():
    mesh = irregular_mesh()
    edges = mesh.vertices[mesh.edges_unique]
    points = np.concatenate([mesh.vertices, edges.mean(axis=1)])
    assert MeshDistance(mesh).unsigned(points).max() < 1e-9


def test_signs_follow_inside_and_outside():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=10.0)
    rng = np.random.default_rng(4)
    points = rng.uniform(-15, 15, (2000, 3))
    signed = MeshDistance(sphere).signed(points)
    inside = sphere.contains(points)
    far_from_surface = np.abs(np.linalg.norm(points, axis=1) - 10.0) > 0.05
    assert np.all((signed < 0)[far_from_surface] == inside[far_from_surface])
    # The pseudonormal sign is also right when the closest point is a corner or on an edge.
    corners = sphere.vertices * 1.2
    assert np.all(MeshDistance(sphere).signed(corners) > 0)
    assert np.all(MeshDistance(sphere).signed(sphere.vertices * 0.8) < 0)


def test_degenerate_and_tiny_meshes():
    """Zero-area triangles are handled through their edges; meshes smaller than a leaf work."""
    triangle = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0]], [[0, 1, 2], [0, 1, 3]], process=False)
    points = np.array([[0.25, 0.25, 2.0], [1.5, 0.0, 0.0], [1.5, 1.0, 0.0], [-1.0, -1.0, 0.0]])
    assert len(triangle.faces) < LEAF_SIZE
    # (1.5, 1, 0) is 1.0 from the zero-area "triangle" (the segment 0..2 on x), 1.06 from the other.
    np.testing.assert_allclose(MeshDistance(triangle).unsigned(points), [2.0, 0.0, 1.0, np.sqrt(2)], atol=1e-12)


def test_closest_points_by_region():
    """Projection inside the face, or the nearest edge or corner, with matching barycentric weights."""
    packed = pack_triangles(np.array([[[0, 0, 0], [2, 0, 0], [0, 2, 0]]] * 4, dtype=float))
    points = np.array([[0.5, 0.5, 1.0], [1.0, -1.0, 0.0], [-1.0, -1.0, 0.0], [2.0, 2.0, 0.0]])
    closest, weights = closest_points(points, packed)
    np.testing.assert_allclose(closest, [[0.5, 0.5, 0], [1, 0, 0], [0, 0, 0], [1, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(weights, [[0.5, 0.25, 0.25], [0.5, 0.5, 0], [1, 0, 0], [0, 0.5, 0.5]], atol=1e-12)


@pytest.mark.parametrize("count", [1, 7, 9, 1000])
def test_hierarchy_returns_the_nearest_triangle_index(count):
    rng = np.random.default_rng(count)
    corners = rng.uniform(-5, 5, (count, 3, 3))
    points = rng.uniform(-8, 8, (200, 3))
    squared, triangle = TriangleBVH(corners).nearest(points)
    packed = pack_triangles(corners)
    all_squared = squared_distances(points[:, :1], points[:, 1:2], points[:, 2:], packed[:, None, :])
    np.testing.assert_allclose(squared, all_squared.min(axis=1), atol=1e-9)
    np.testing.assert_allclose(all_squared[np.arange(len(points)), triangle], squared, atol=1e-9)
