"""The loss terms of Wonder3D's ortho NeuS (``instant-nsr-pl/systems/neus_ortho.py``).

Data form: one batch of ``n`` rays as float32 tensors — rendered ``(n, 3)`` normals and
colours, ``(n,)`` opacities — against the targets of their pixels (world-frame normals,
colours composited on black, foreground masks, colour-valid masks, per-view weights),
plus per-sample SDF gradients and the SDF at random points of the box.

Every term returns a 0-d tensor. The *ranking loss* of the original drops outliers: sort
the per-ray errors, keep the smallest ``int(keep · n)``, optionally multiply them by
per-ray weights (after the sort, so weights never change which rays are kept), then mean
or sum.

Terms and the original's weights (:class:`~Wonder3DMedLib.reconstruction.neus.config.NeusConfig`):

=================  =============================================================  ======  =============
term               definition                                                     weight  ranking
=================  =============================================================  ======  =============
normal             ``1 − cos(rendered, target)`` on foreground rays whose target   1.0     keep 80 %, sum
                   faces the camera (``cos(ray, target) < −0.1``), × ``exp|cos|``
                   ``/ Σ_batch exp|cos|`` (cos set to 0 where > −0.1), × view weight
rgb_mse            squared error summed over RGB on rays that hit something and    0.5     keep 80 %, mean
                   whose colour is valid
mask               BCE(opacity clamped to [1e-3, 1 − 1e-3], foreground)            1.0     keep 90 %, mean
                   × view weight, all rays
eikonal            ``(‖∇SDF‖ − 1)²`` at the ray samples, mean                      0.2     –
sparsity           ``exp(−100 |SDF|)`` at random points, mean                      0.5     –
normal_smooth      ``|∇SDF(p) − ∇SDF(p + N(0, 0.01²))|`` at random points, mean    1.0     –
=================  =============================================================  ======  =============
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = [
    "LOSS_TERMS",
    "ranking_loss",
    "facing_cosines",
    "normal_loss",
    "rgb_mse_loss",
    "mask_loss",
    "eikonal_loss",
    "sparsity_loss",
    "normal_smoothness_loss",
]

#: Names of the loss terms, in the order training reports them.
LOSS_TERMS = ("normal", "rgb_mse", "mask", "eikonal", "sparsity", "normal_smooth")

_REDUCTIONS = ("mean", "sum")


def ranking_loss(
    errors: torch.Tensor, *, keep: float, weights: torch.Tensor | None = None, reduction: str = "mean"
) -> torch.Tensor:
    """Keep the smallest ``int(keep · n)`` errors, weight them, reduce.

    Parameters
    ----------
    errors : (n,) float — one error per ray
    keep : float in (0, 1] — fraction kept (the original's ``penalize_ratio``)
    weights : (n,) float, optional — per-ray weights, applied after selection
    reduction : {'mean', 'sum'}

    Returns
    -------
    0-d tensor
        Zero (still attached to the graph) when nothing is kept — the original would give
        NaN for an empty mean, which its 8192-ray batches never meet.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if errors.ndim != 1:
        raise ValueError(f"errors must be one-dimensional (one value per ray), got shape {tuple(errors.shape)}")
    count = int(keep * errors.shape[0])
    if count == 0:
        return errors.sum() * 0.0
    _, order = torch.sort(errors)
    kept = errors[order[:count]]
    if weights is not None:
        kept = kept * weights[order[:count]]
    return kept.mean() if reduction == "mean" else kept.sum()


def facing_cosines(directions: torch.Tensor, target_normals: torch.Tensor) -> torch.Tensor:
    """Cosine between each ray and its pixel's target normal (0 where the normal is zero).

    Parameters
    ----------
    directions : (n, 3) ; target_normals : (n, 3)

    Returns
    -------
    (n,) — negative where the normal faces the camera
    """
    # Matches Wonder3D: torch.nn.CosineSimilarity(dim=-1, eps=1e-6).
    return F.cosine_similarity(directions, target_normals, dim=-1, eps=1e-6)


def normal_loss(
    rendered_normals: torch.Tensor,
    target_normals: torch.Tensor,
    directions: torch.Tensor,
    foreground: torch.Tensor,
    view_weights: torch.Tensor,
    *,
    keep: float = 0.8,
    facing_threshold: float = -0.1,
    geometry_aware: bool = True,
) -> torch.Tensor:
    """Normal term with the facing rule, geometry-aware weighting and view weights.

    Parameters
    ----------
    rendered_normals : (n, 3) — composited, normalised SDF normals (0 where nothing was hit)
    target_normals : (n, 3) — the views' normals, same frame (0 on background pixels)
    directions : (n, 3) — unit ray directions, same frame
    foreground : (n,) bool or float — the views' masks
    view_weights : (n,) — weight of each ray's view
    keep : float — ranking ratio (0.8)
    facing_threshold : float — rays count only where ``cos(ray, target) <`` this (−0.1)
    geometry_aware : bool — ``exp|cos| / Σ exp|cos|`` weighting and a *sum* (else a mean)

    Returns
    -------
    0-d tensor
    """
    cosines = facing_cosines(directions, target_normals)
    selected = (foreground > 0) & (cosines < facing_threshold)
    # Matches Wonder3D: cosines above the threshold are zeroed before the exp|cos| weighting,
    # and the normaliser sums over the whole batch (background rays included).
    cosines = torch.where(cosines > facing_threshold, torch.zeros_like(cosines), cosines)
    errors = 1.0 - F.cosine_similarity(rendered_normals, target_normals, dim=1)
    if geometry_aware:
        emphasis = torch.exp(cosines.abs())
        errors = errors * emphasis / emphasis.sum()
        return ranking_loss(errors[selected], keep=keep, weights=view_weights[selected], reduction="sum")
    return ranking_loss(errors[selected], keep=keep, weights=view_weights[selected], reduction="mean")


def rgb_mse_loss(
    rendered_colors: torch.Tensor, target_colors: torch.Tensor, valid: torch.Tensor, *, keep: float = 0.8
) -> torch.Tensor:
    """Colour term: per-ray squared error summed over RGB, ranking mean over ``valid`` rays.

    Parameters
    ----------
    rendered_colors, target_colors : (n, 3) — targets composited on the training background
    valid : (n,) bool — rays that hit something (opacity > 0) and whose colour is valid
    keep : float — ranking ratio (0.8)
    """
    errors = F.mse_loss(rendered_colors[valid], target_colors[valid], reduction="none").sum(dim=1)
    return ranking_loss(errors, keep=keep, reduction="mean")


def mask_loss(
    opacity: torch.Tensor,
    foreground: torch.Tensor,
    view_weights: torch.Tensor,
    *,
    keep: float = 0.9,
    clamp: float = 1e-3,
) -> torch.Tensor:
    """Mask term: binary cross-entropy of the clamped opacity against the foreground mask.

    Parameters
    ----------
    opacity : (n,) ; foreground : (n,) 0/1 ; view_weights : (n,)
    keep : float — ranking ratio (0.9)
    clamp : float — opacity clamped to ``[clamp, 1 − clamp]``
    """
    opacity = opacity.clamp(clamp, 1.0 - clamp)
    target = foreground.float()
    # Matches Wonder3D: criterions.binary_cross_entropy written out (stable under fp16).
    errors = -(target * torch.log(opacity) + (1.0 - target) * torch.log(1.0 - opacity))
    return ranking_loss(errors, keep=keep, weights=view_weights, reduction="mean")


def eikonal_loss(gradients: torch.Tensor) -> torch.Tensor:
    """Mean of ``(‖g‖ − 1)²`` over ``(m, 3)`` SDF gradients (0 when there are none)."""
    if gradients.shape[0] == 0:
        return gradients.sum() * 0.0
    return ((torch.linalg.norm(gradients, ord=2, dim=-1) - 1.0) ** 2).mean()


def sparsity_loss(sdf: torch.Tensor, *, scale: float = 100.0) -> torch.Tensor:
    """Mean of ``exp(−scale · |SDF|)`` at random points of the box (pushes surfaces away from empty space)."""
    return torch.exp(-scale * sdf.abs()).mean()


def normal_smoothness_loss(gradients: torch.Tensor, perturbed_gradients: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of raw SDF gradients at points and at jittered copies."""
    return (gradients - perturbed_gradients).abs().mean()
