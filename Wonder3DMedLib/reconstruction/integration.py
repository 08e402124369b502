"""Orthographic normal integration with discontinuities: one view's normal map -> a height map.

Data form: per-pixel arrays of one square view — normals ``(H, W, 3)`` in that view's own
camera frame (x image-right, y image-up, z towards the camera; see
:func:`~Wonder3DMedLib.reconstruction.cameras.normals_in_camera`) and a foreground mask
``(H, W)``; heights ``w`` in **pixels** towards the camera (the ``w`` of the view pixel frame).

Method: bilateral normal integration (BiNI; Cao, Santo, Shi, Okura, Matsushita, *Bilateral
Normal Integration*, ECCV 2022), orthographic case, written here from the paper. For each
pixel and axis there are two one-sided difference equations, e.g. ``n_z (w_right − w) = −n_x``
and ``n_z (w − w_left) = −n_x``; iteratively re-weighted least squares gives each pair the
weights ``σ(k·(Δ₋² − Δ₊²))`` and ``1 − σ(…)`` from the current solution, so a pixel next to a
depth discontinuity stops pulling the far side. Rows grow downwards, hence
``∂w/∂row = +n_y / n_z`` and ``∂w/∂col = −n_x / n_z``.

Extensions used by the fast backend: a weak prior towards given heights (fixes the free
offset of every piece) and soft *point constraints* at sub-pixel positions between two
horizontally adjacent pixels (absolute heights known from other views' silhouettes).
The first solve is direct (SuperLU); later ones are warm-started conjugate gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

__all__ = ["PixelGraph", "PointConstraints", "Integration", "integrate_normals"]

_MIN_NZ = 1e-2


class PixelGraph:
    """The 4-connected graph of a mask's pixels and the sparse structure of its normal equations.

    Parameters
    ----------
    mask : (H, W) bool

    Attributes
    ----------
    index : (H, W) int64
        Unknown index of each foreground pixel, −1 elsewhere.
    size : int
        Number of unknowns.
    edge_a, edge_b : (m,) int64
        Edges ``a → b``: first all horizontal edges (``b`` right of ``a``), then all vertical
        ones (``b`` below ``a``).
    horizontal : int
        Number of horizontal edges.
    """

    def __init__(self, mask: np.ndarray):
        mask = np.asarray(mask, dtype=bool)
        self.mask = mask
        self.index = np.full(mask.shape, -1, dtype=np.int64)
        self.size = int(mask.sum())
        self.index[mask] = np.arange(self.size)
        rows, cols = np.nonzero(mask[:, :-1] & mask[:, 1:])
        h_a, h_b = self.index[rows, cols], self.index[rows, cols + 1]
        rows, cols = np.nonzero(mask[:-1, :] & mask[1:, :])
        v_a, v_b = self.index[rows, cols], self.index[rows + 1, cols]
        self.horizontal = len(h_a)
        self.edge_a = np.concatenate([h_a, v_a])
        self.edge_b = np.concatenate([h_b, v_b])
        n, a, b = self.size, self.edge_a, self.edge_b
        keys = np.concatenate([a * n + a, b * n + b, a * n + b, b * n + a, np.arange(n) * (n + 1)])
        unique, self._slot = np.unique(keys, return_inverse=True)
        self._structure = sp.csr_matrix(
            (np.zeros(len(unique)), (unique // n, unique % n)), shape=(n, n)
        )
        self._structure.sort_indices()

    def laplacian(self, edge_weights: np.ndarray, diagonal: np.ndarray) -> sp.csr_matrix:
        """``Σ_e w_e (δ_b − δ_a)(δ_b − δ_a)ᵀ + diag(diagonal)`` as CSR (n × n)."""
        values = np.concatenate([edge_weights, edge_weights, -edge_weights, -edge_weights, diagonal])
        matrix = self._structure.copy()
        matrix.data = np.bincount(self._slot, weights=values, minlength=matrix.nnz)
        return matrix


@dataclass(frozen=True, eq=False)
class PointConstraints:
    """Soft absolute heights at points between two horizontally adjacent pixels.

    Attributes
    ----------
    left, right : (c,) int64
        Unknown indices (``PixelGraph.index``) of the pixels at ``col`` and ``col + 1``.
    fraction : (c,) float64 in [0, 1]
        Position between them.
    height : (c,) float64
        Required height (pixels) at that position.
    weight : (c,) float64
        Weight of each constraint relative to one difference equation.
    """

    left: np.ndarray
    right: np.ndarray
    fraction: np.ndarray
    height: np.ndarray
    weight: np.ndarray

    def normal_equations(self, n: int) -> tuple[sp.csr_matrix, np.ndarray]:
        a, b, t, w = self.left, self.right, self.fraction, self.weight
        rows = np.concatenate([a, b, a, b])
        cols = np.concatenate([a, b, b, a])
        values = np.concatenate([w * (1 - t) ** 2, w * t**2, w * (1 - t) * t, w * (1 - t) * t])
        matrix = sp.csr_matrix((values, (rows, cols)), shape=(n, n))
        rhs = np.bincount(a, weights=w * (1 - t) * self.height, minlength=n)
        rhs += np.bincount(b, weights=w * t * self.height, minlength=n)
        return matrix, rhs


@dataclass(frozen=True, eq=False)
class Integration:
    """Result of :func:`integrate_normals`.

    Attributes
    ----------
    heights : (H, W) float64
        Heights towards the camera in pixels; NaN outside the mask.
    graph : PixelGraph
    forward_u, forward_v : (n,) float64
        Final bilateral weights of each pixel's forward (right / down) difference; the
        backward one has ``1 − weight`` (pixels with one neighbour on an axis keep 1).
    iterations : int
    """

    heights: np.ndarray
    graph: PixelGraph
    forward_u: np.ndarray
    forward_v: np.ndarray
    iterations: int

    def edge_weights(self) -> np.ndarray:
        """(m,) float64: mean of the two bilateral weights of each edge (≈ 0 across a discontinuity)."""
        forward, backward = _edge_term_weights(self.graph, self.forward_u, self.forward_v)
        return 0.5 * (forward + backward)


def _edge_term_weights(graph: PixelGraph, forward_u: np.ndarray, forward_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights of the ``a``-forward and ``b``-backward terms of every edge."""
    h = graph.horizontal
    a, b = graph.edge_a, graph.edge_b
    has_forward = np.zeros((2, graph.size), dtype=bool)
    has_forward[0, a[:h]] = True
    has_forward[1, a[h:]] = True
    forward = np.concatenate([forward_u[a[:h]], forward_v[a[h:]]])
    backward = np.concatenate(
        [
            np.where(has_forward[0, b[:h]], 1.0 - forward_u[b[:h]], 1.0),
            np.where(has_forward[1, b[h:]], 1.0 - forward_v[b[h:]], 1.0),
        ]
    )
    return forward, backward


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50.0, 50.0)))


def integrate_normals(
    normals: np.ndarray,
    mask: np.ndarray,
    *,
    prior: np.ndarray | None = None,
    prior_weight: float = 1e-6,
    constraints: PointConstraints | None = None,
    iterations: int = 30,
    sharpness: float = 2.0,
    tolerance: float = 1e-4,
    initial: Integration | None = None,
    graph: PixelGraph | None = None,
    unbiased_above: float | None = None,
) -> Integration:
    """Integrate one orthographic normal map into heights, keeping depth discontinuities (BiNI).

    Parameters
    ----------
    normals : (H, W, 3) float
        Unit normals in the view's camera frame (z towards the camera); only ``mask`` pixels are read.
    mask : (H, W) bool
        Pixels to integrate.
    prior : (H, W) float, optional
        Heights (pixels) the solution is weakly pulled towards; zero when omitted.
    prior_weight : float or (H, W) float
        Weight of the prior per pixel, relative to one difference equation (default: just
        enough to fix the free offset of each piece).
    constraints : PointConstraints, optional
        Absolute heights at sub-pixel points.
    iterations : int
        Maximum re-weighting iterations (1 = plain weighted least squares).
    sharpness : float
        BiNI's ``k``: how decisively a jump between neighbours cuts the pair (per pixel²).
    tolerance : float
        Stop when the weighted energy changes by less than this fraction.
    initial : Integration, optional
        Warm start: heights and bilateral weights of an earlier run on the same mask.
    graph : PixelGraph, optional
        Reuse a graph built for ``mask``.
    unbiased_above : float, optional
        Weight each equation ``n_z Δ = −n_x`` by ``1 / max(n_z, unbiased_above)``. Least
        squares on the plain equations estimates a slope as ``Σ n_z n_x / Σ n_z²``, which
        noise in the normals flattens (``n_z²`` gains the noise variance), so heights drift
        over a long piece; with weights ``1 / n_z`` it is ``Σ n_x / Σ n_z``, unbiased when the
        noise leaves the mean normal's direction unchanged. Below the floor every equation
        keeps the same weight, so near-grazing pixels, whose ``n_z`` noise can flip, do not
        dominate.
        ``None``: BiNI's plain equations.

    Returns
    -------
    Integration
    """
    mask = np.asarray(mask, dtype=bool)
    graph = graph if graph is not None else (initial.graph if initial is not None else PixelGraph(mask))
    n = graph.size
    if n == 0:
        raise ValueError("the mask to integrate is empty")
    selected = np.asarray(normals, dtype=np.float64)[mask]
    nx, ny = selected[:, 0], selected[:, 1]
    nz = np.maximum(selected[:, 2], _MIN_NZ)
    a, b, h = graph.edge_a, graph.edge_b, graph.horizontal
    # the a-forward and b-backward equations of every edge: c (w_b − w_a) = g
    coef_a = nz[a]
    coef_b = nz[b]
    scale = np.ones(n) if unbiased_above is None else 1.0 / np.maximum(nz, unbiased_above)
    scale_a, scale_b = scale[a], scale[b]
    target_a = np.concatenate([-nx[a[:h]], ny[a[h:]]])
    target_b = np.concatenate([-nx[b[:h]], ny[b[h:]]])
    prior_values = np.zeros(n) if prior is None else np.asarray(prior, dtype=np.float64)[mask]
    diagonal = np.broadcast_to(np.asarray(prior_weight, dtype=np.float64), mask.shape)[mask].copy()
    diagonal = np.maximum(diagonal, 1e-9)  # keeps every piece's offset defined
    extra, extra_rhs = (None, 0.0) if constraints is None else constraints.normal_equations(n)
    if initial is not None:
        heights = initial.heights[mask].copy()
        forward_u, forward_v = initial.forward_u.copy(), initial.forward_v.copy()
    else:
        heights = prior_values.copy()
        forward_u, forward_v = np.full(n, 0.5), np.full(n, 0.5)
    has = np.zeros((4, n), dtype=bool)
    has[0, a[:h]] = has[1, b[:h]] = has[2, a[h:]] = has[3, b[h:]] = True
    both_u, both_v = has[0] & has[1], has[2] & has[3]
    forward_u = np.where(both_u, forward_u, 1.0)
    forward_v = np.where(both_v, forward_v, 1.0)
    previous_energy = None
    iteration = 0
    for iteration in range(1, iterations + 1):
        w_forward, w_backward = _edge_term_weights(graph, forward_u, forward_v)
        term_a, term_b = w_forward * scale_a, w_backward * scale_b
        matrix = graph.laplacian(term_a * coef_a**2 + term_b * coef_b**2, diagonal)
        flux = term_a * coef_a * target_a + term_b * coef_b * target_b
        rhs = np.bincount(b, weights=flux, minlength=n) - np.bincount(a, weights=flux, minlength=n)
        rhs += diagonal * prior_values + extra_rhs
        if extra is not None:
            matrix = matrix + extra
        if iteration == 1 and initial is None:
            solver = sla.splu(matrix.tocsc(), permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True})
            heights = solver.solve(rhs)
        else:
            inverse_diagonal = 1.0 / matrix.diagonal()
            preconditioner = sla.LinearOperator(matrix.shape, matvec=lambda x: inverse_diagonal * x)
            heights, _ = sla.cg(matrix, rhs, x0=heights, rtol=1e-4, maxiter=100, M=preconditioner)
        difference = heights[b] - heights[a]
        scaled_a, scaled_b = coef_a * difference, coef_b * difference
        forward_sq = np.zeros((2, n))
        backward_sq = np.zeros((2, n))
        forward_sq[0, a[:h]], forward_sq[1, a[h:]] = scaled_a[:h] ** 2, scaled_a[h:] ** 2
        backward_sq[0, b[:h]], backward_sq[1, b[h:]] = scaled_b[:h] ** 2, scaled_b[h:] ** 2
        forward_u = np.where(both_u, _sigmoid(sharpness * (backward_sq[0] - forward_sq[0])), 1.0)
        forward_v = np.where(both_v, _sigmoid(sharpness * (backward_sq[1] - forward_sq[1])), 1.0)
        residual_a, residual_b = scaled_a - target_a, scaled_b - target_b
        energy = float(np.sum(term_a * residual_a**2 + term_b * residual_b**2))
        if previous_energy is not None and abs(energy - previous_energy) <= tolerance * max(previous_energy, 1e-12):
            break
        previous_energy = energy
    out = np.full(mask.shape, np.nan)
    out[mask] = heights
    return Integration(heights=out, graph=graph, forward_u=forward_u, forward_v=forward_v, iterations=iteration)
