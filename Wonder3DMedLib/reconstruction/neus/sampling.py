"""Where the NeuS-ortho backend samples its rays, and how samples become pixels.

Data form: rays as ``(n, 3)`` float32 origins/directions plus ``(n,)`` entry/exit
parameters ``near``/``far`` of the box [−1, 1]³ (world frame, model units); samples in
*packed* form — one row per sample, ``ray_indices`` ``(m,)`` int64 sorted by ray, then by
depth — as nerfacc 0.3.3 (which the original uses) produces them.

Pure-PyTorch equivalents of what Wonder3D takes from nerfacc:

* :class:`OccupancyGrid` — 128³ cells over the box; every 16 steps the field's NeuS alpha
  of one marching step is evaluated at a random point in (all, during warm-up; else a
  quarter of the cells uniformly plus up to as many occupied) cells, kept as an EMA
  maximum (decay 0.95), binarised at ``min(mean, 1e-3)``;
* :func:`march_rays` — uniform steps from the box entry (stratified by one random offset
  per ray), keeping the steps whose midpoint lies in an occupied cell;
* :func:`drop_occluded` — nerfacc's early ray termination: drop the samples a ray can no
  longer see (transmittance below ``eps``), judged from a gradient-free SDF pass;
* :func:`neus_alpha` — NeuS' discrete opacity from the SDF at the midpoint and the cosine
  between ray and normal (with cosine annealing);
* :func:`composite` — front-to-back weights ``T_i · α_i`` and per-ray sums.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

__all__ = ["OccupancyGrid", "RaySamples", "march_rays", "drop_occluded", "neus_alpha", "occupancy_alpha", "composite", "Composited"]

_MAX_CANDIDATES = 4_000_000


class OccupancyGrid:
    """Binary occupancy of the cells of the box [−1, 1]³, refreshed from the field.

    Cells are indexed ``i·R² + j·R + k`` for cell ``(i, j, k)`` along (x, y, z); cell
    ``(i, j, k)`` spans ``[−1 + 2i/R, −1 + 2(i+1)/R]`` in x, and so on.

    Parameters
    ----------
    resolution : int
        Cells per side (the original: 128).
    device : torch.device or str
    """

    def __init__(self, resolution: int, *, device: torch.device | str = "cpu"):
        if resolution < 1:
            raise ValueError(f"resolution must be positive, got {resolution}")
        self.resolution = int(resolution)
        self.num_cells = self.resolution**3
        self.device = torch.device(device)
        self.occupancy = torch.zeros(self.num_cells, device=self.device)
        self.binary = torch.zeros(self.num_cells, dtype=torch.bool, device=self.device)

    def cell_coordinates(self, indices: torch.Tensor) -> torch.Tensor:
        """``(n,)`` cell indices → ``(n, 3)`` int64 cell coordinates ``(i, j, k)``."""
        r = self.resolution
        return torch.stack([indices // (r * r), (indices // r) % r, indices % r], dim=-1)

    def _cells_to_update(self, step: int, warmup_steps: int, generator: torch.Generator | None) -> torch.Tensor:
        if step < warmup_steps:
            return torch.arange(self.num_cells, device=self.device)
        count = self.num_cells // 4
        uniform = torch.randint(self.num_cells, (count,), device=self.device, generator=generator)
        occupied = torch.nonzero(self.binary)[:, 0]
        if count < len(occupied):
            occupied = occupied[torch.randint(len(occupied), (count,), device=self.device, generator=generator)]
        return torch.cat([uniform, occupied])

    @torch.no_grad()
    def update(
        self,
        step: int,
        occupancy_fn: Callable[[torch.Tensor], torch.Tensor],
        *,
        threshold: float,
        ema_decay: float,
        warmup_steps: int,
        generator: torch.Generator | None = None,
    ) -> None:
        """Re-evaluate cells and re-binarise (nerfacc 0.3.3 ``OccupancyGrid._update``).

        Parameters
        ----------
        step : int
            Training step; before ``warmup_steps`` every cell is evaluated.
        occupancy_fn : callable
            ``(n, 3)`` world points → ``(n,)`` occupancy in [0, 1].
        threshold : float
            A cell is occupied if its value exceeds ``min(mean of all cells, threshold)``.
        ema_decay : float
            Old values decay by this factor before the maximum with the new ones.
        generator : torch.Generator, optional
        """
        indices = self._cells_to_update(step, warmup_steps, generator)
        coordinates = self.cell_coordinates(indices).float()
        jitter = torch.rand(coordinates.shape, device=self.device, generator=generator)
        points = (coordinates + jitter) / self.resolution * 2.0 - 1.0
        values = occupancy_fn(points).reshape(-1).float()
        # Matches nerfacc 0.3.3: plain indexed maximum (a cell drawn twice keeps one of its values).
        self.occupancy[indices] = torch.maximum(self.occupancy[indices] * ema_decay, values)
        self.binary = self.occupancy > torch.clamp(self.occupancy.mean(), max=threshold)

    def occupied(self, points: torch.Tensor) -> torch.Tensor:
        """``(n, 3)`` world points → ``(n,)`` bool: inside the box and in an occupied cell."""
        inside = ((points >= -1.0) & (points <= 1.0)).all(dim=-1)
        cells = ((points + 1.0) * 0.5 * self.resolution).long().clamp(0, self.resolution - 1)
        r = self.resolution
        flat = cells[:, 0] * (r * r) + cells[:, 1] * r + cells[:, 2]
        return inside & self.binary[flat]


@dataclass(frozen=True, eq=False)
class RaySamples:
    """Packed samples of a batch of rays.

    Attributes
    ----------
    ray_indices : (m,) int64 — which ray each sample belongs to (sorted)
    t_starts, t_ends : (m,) float32 — the step's interval along the ray (model units)
    """

    ray_indices: torch.Tensor
    t_starts: torch.Tensor
    t_ends: torch.Tensor

    @property
    def midpoints(self) -> torch.Tensor:
        """(m,) float32: ray parameter of each sample (the step's midpoint)."""
        return (self.t_starts + self.t_ends) * 0.5

    def __len__(self) -> int:
        return int(self.ray_indices.shape[0])


@torch.no_grad()
def march_rays(
    origins: torch.Tensor,
    directions: torch.Tensor,
    near: torch.Tensor,
    far: torch.Tensor,
    grid: OccupancyGrid | None,
    *,
    step_size: float,
    stratified: bool,
    generator: torch.Generator | None = None,
) -> RaySamples:
    """Uniform steps along each ray inside the box, kept where the occupancy grid is set.

    Step ``k`` of a ray covers ``[t₀ + k·δ, t₀ + (k+1)·δ]`` with ``t₀ = near`` (plus one
    uniform random offset in ``[0, δ)`` per ray when ``stratified``); it is emitted while
    its start is before ``far`` and its midpoint is inside the box in an occupied cell —
    the samples nerfacc 0.3.3's ``ray_marching`` (no cone angle, AABB contraction) emits.

    Parameters
    ----------
    origins, directions : (n, 3) float32 — world frame; directions unit length
    near, far : (n,) float32 — box entry/exit parameters (``near ≥ far`` misses the box)
    grid : OccupancyGrid or None — None samples the whole box
    step_size : float — δ, model units
    stratified : bool
    generator : torch.Generator, optional

    Returns
    -------
    RaySamples
    """
    device = origins.device
    n = origins.shape[0]
    start = near.clone()
    if stratified:
        start = start + torch.rand(n, device=device, generator=generator) * step_size
    counts = torch.where(far > start, torch.ceil((far - start) / step_size), torch.zeros_like(start)).long()
    pieces: list[tuple[torch.Tensor, torch.Tensor]] = []
    ray_begin = 0
    while ray_begin < n:
        # Bound memory: the candidates of a chunk of rays, at most _MAX_CANDIDATES at a time.
        cumulative = torch.cumsum(counts[ray_begin:], dim=0)
        fit = int(torch.searchsorted(cumulative, torch.tensor(_MAX_CANDIDATES, device=device), right=True))
        ray_end = ray_begin + max(fit, 1)
        chunk_counts = counts[ray_begin:ray_end]
        rays = torch.repeat_interleave(torch.arange(ray_begin, ray_end, device=device), chunk_counts)
        first = torch.cumsum(chunk_counts, dim=0) - chunk_counts
        k = torch.arange(rays.shape[0], device=device) - torch.repeat_interleave(first, chunk_counts)
        t_starts = start[rays] + k.float() * step_size
        midpoint = t_starts + 0.5 * step_size
        if grid is not None:
            points = origins[rays] + directions[rays] * midpoint[:, None]
            keep = grid.occupied(points)
            rays, t_starts = rays[keep], t_starts[keep]
        pieces.append((rays, t_starts))
        ray_begin = ray_end
    if pieces:
        ray_indices = torch.cat([p[0] for p in pieces])
        t_starts = torch.cat([p[1] for p in pieces])
    else:
        ray_indices = torch.zeros(0, dtype=torch.long, device=device)
        t_starts = torch.zeros(0, device=device)
    return RaySamples(ray_indices=ray_indices, t_starts=t_starts, t_ends=t_starts + step_size)


@torch.no_grad()
def drop_occluded(samples: RaySamples, sdf: torch.Tensor, inv_s: torch.Tensor, *, eps: float) -> RaySamples:
    """Early ray termination: keep each ray's samples until its transmittance is surely below ``eps``.

    NeuS' opacity telescopes along a ray: the transmittance in front of a sample is at most
    ``Φ(inv_s · min SDF of the ray's earlier samples)`` (``Φ`` the logistic CDF; annealed
    cosines only lower it further, and where the SDF rises the opacity is clipped at 0). A
    sample is dropped when that bound is below ``eps`` — behind an opaque surface, where its
    rendering weight is below ``eps``. This is what nerfacc's ``ray_marching`` does with an
    ``alpha_fn`` and ``early_stop_eps``; the original (no ``alpha_fn``) renders the hidden
    interior too, which on a CPU costs most of the samples of a step.

    Parameters
    ----------
    samples : RaySamples — packed, sorted by ray then depth
    sdf : (m,) — SDF at the sample midpoints (no gradient needed)
    inv_s : 0-d tensor — NeuS sharpness
    eps : float in (0, 1) — transmittance below which samples are dropped

    Returns
    -------
    RaySamples — the kept samples, same order
    """
    m = len(samples)
    if m == 0 or not 0.0 < eps < 1.0:
        return samples
    ray_indices = samples.ray_indices
    n_rays = int(ray_indices.max()) + 1
    counts = torch.bincount(ray_indices, minlength=n_rays)
    first = torch.cumsum(counts, dim=0) - counts
    position = torch.arange(m, device=sdf.device) - first[ray_indices]
    table = torch.full((n_rays, int(counts.max()) + 1), float("inf"), device=sdf.device, dtype=sdf.dtype)
    table[ray_indices, position + 1] = sdf  # column 0 stays +inf: nothing in front of the first sample
    lowest_in_front = torch.cummin(table, dim=1).values[ray_indices, position]
    threshold = math.log(eps / (1.0 - eps)) / float(inv_s.clip(1e-6, 1e6))  # Φ(inv_s · x) = eps
    keep = lowest_in_front >= threshold
    return RaySamples(ray_indices=ray_indices[keep], t_starts=samples.t_starts[keep], t_ends=samples.t_ends[keep])


def neus_alpha(
    sdf: torch.Tensor,
    normals: torch.Tensor,
    directions: torch.Tensor,
    dists: torch.Tensor,
    inv_s: torch.Tensor,
    *,
    cos_anneal_ratio: float,
) -> torch.Tensor:
    """NeuS' opacity of each step from the SDF at its midpoint.

    The SDF at the step's ends is extrapolated with ``cos = (d · n)``, annealed as
    ``−(relu(−cos/2 + 1/2)·(1 − r) + relu(−cos)·r)`` (always ≤ 0); then
    ``α = (Φ(prev) − Φ(next) + 1e-5) / (Φ(prev) + 1e-5)`` with the logistic CDF
    ``Φ(x) = sigmoid(inv_s · x)``, clipped to [0, 1].

    Parameters
    ----------
    sdf : (m,) — SDF at the sample midpoints
    normals : (m, 3) — unit SDF gradients there
    directions : (m, 3) — unit ray directions
    dists : (m,) — step lengths
    inv_s : 0-d tensor — clipped to [1e-6, 1e6]
    cos_anneal_ratio : float in [0, 1]

    Returns
    -------
    (m,) float32
    """
    inv_s = inv_s.clip(1e-6, 1e6)
    true_cos = (directions * normals).sum(dim=-1)
    iter_cos = -(F.relu(-true_cos * 0.5 + 0.5) * (1.0 - cos_anneal_ratio) + F.relu(-true_cos) * cos_anneal_ratio)
    next_sdf = sdf + iter_cos * dists * 0.5
    prev_sdf = sdf - iter_cos * dists * 0.5
    prev_cdf = torch.sigmoid(prev_sdf * inv_s)
    next_cdf = torch.sigmoid(next_sdf * inv_s)
    return ((prev_cdf - next_cdf + 1e-5) / (prev_cdf + 1e-5)).clip(0.0, 1.0)


def occupancy_alpha(sdf: torch.Tensor, inv_s: torch.Tensor, step_size: float) -> torch.Tensor:
    """The occupancy grid's value: NeuS alpha of one step centred on a point, assuming a
    ray along the SDF gradient (the original's ``occ_eval_fn``).

    Parameters
    ----------
    sdf : (n,) ; inv_s : 0-d tensor ; step_size : float

    Returns
    -------
    (n,) float32 in [0, 1]
    """
    inv_s = inv_s.clip(1e-6, 1e6)
    prev_cdf = torch.sigmoid((sdf + step_size * 0.5) * inv_s)
    next_cdf = torch.sigmoid((sdf - step_size * 0.5) * inv_s)
    return ((prev_cdf - next_cdf + 1e-5) / (prev_cdf + 1e-5)).clip(0.0, 1.0)


@dataclass(frozen=True, eq=False)
class Composited:
    """Front-to-back compositing of packed samples.

    Attributes
    ----------
    weights : (m,) — ``α_i · Π_{j<i} (1 − α_j)`` per sample
    opacity : (n_rays,) — sum of the weights of each ray
    values : dict of name -> (n_rays, c) — weighted sums of per-sample values
    """

    weights: torch.Tensor
    opacity: torch.Tensor
    values: dict


def composite(
    alpha: torch.Tensor, ray_indices: torch.Tensor, n_rays: int, values: dict[str, torch.Tensor]
) -> Composited:
    """Volume-render packed samples (nerfacc ``render_weight_from_alpha`` + ``accumulate_along_rays``).

    Parameters
    ----------
    alpha : (m,) — opacity of each sample
    ray_indices : (m,) int64 — sorted by ray, samples of a ray in depth order
    n_rays : int
    values : dict of name -> (m, c) per-sample values to accumulate

    Returns
    -------
    Composited
    """
    device = alpha.device
    m = alpha.shape[0]
    if m == 0:
        zeros = torch.zeros(n_rays, device=device, dtype=alpha.dtype)
        return Composited(
            weights=alpha,
            opacity=zeros + 0.0 * alpha.sum(),
            values={name: v.new_zeros(n_rays, v.shape[-1]) + 0.0 * v.sum() for name, v in values.items()},
        )
    counts = torch.bincount(ray_indices, minlength=n_rays)
    first = torch.cumsum(counts, dim=0) - counts
    position = torch.arange(m, device=device) - first[ray_indices]
    longest = int(counts.max())
    # Exclusive cumulative product per ray on a padded (rays, longest) table (exact, differentiable).
    keep = torch.ones(n_rays, longest, device=device, dtype=alpha.dtype).index_put((ray_indices, position), 1.0 - alpha)
    transmittance = torch.cumprod(keep, dim=1)
    transmittance = torch.cat([torch.ones_like(transmittance[:, :1]), transmittance[:, :-1]], dim=1)
    weights = alpha * transmittance[ray_indices, position]
    opacity = torch.zeros(n_rays, device=device, dtype=weights.dtype).index_add(0, ray_indices, weights)
    sums = {
        name: torch.zeros(n_rays, v.shape[-1], device=device, dtype=v.dtype).index_add(0, ray_indices, weights[:, None] * v)
        for name, v in values.items()
    }
    return Composited(weights=weights, opacity=opacity, values=sums)
