"""NeuS losses against values computed by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from Wonder3DMedLib.reconstruction.neus import losses


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# ---------------------------------------------------------------- ranking loss


def test_ranking_keeps_the_smallest_errors():
    errors = t([4.0, 1.0, 3.0, 2.0, 5.0])
    # keep int(0.8 * 5) = 4 smallest: 1, 2, 3, 4
    assert float(losses.ranking_loss(errors, keep=0.8)) == pytest.approx(2.5)
    assert float(losses.ranking_loss(errors, keep=0.8, reduction="sum")) == pytest.approx(10.0)
    # int(0.5 * 5) = 2: 1, 2
    assert float(losses.ranking_loss(errors, keep=0.5)) == pytest.approx(1.5)
    assert float(losses.ranking_loss(errors, keep=1.0)) == pytest.approx(3.0)


def test_ranking_weights_apply_after_the_sort():
    """Weights never decide which rays are dropped: the largest error (5, weight 0.1) still goes."""
    errors = t([4.0, 1.0, 3.0, 2.0, 5.0])
    weights = t([10.0, 20.0, 30.0, 40.0, 0.1])
    # kept errors 1, 2, 3, 4 at indices 1, 3, 2, 0 -> 1*20 + 2*40 + 3*30 + 4*10
    assert float(losses.ranking_loss(errors, keep=0.8, weights=weights, reduction="sum")) == pytest.approx(230.0)
    assert float(losses.ranking_loss(errors, keep=0.8, weights=weights)) == pytest.approx(57.5)


def test_ranking_of_nothing_is_zero_and_keeps_the_graph():
    errors = t([2.0]).requires_grad_(True)
    value = losses.ranking_loss(errors, keep=0.8)  # int(0.8) = 0 rays kept
    assert float(value.detach()) == 0.0 and value.requires_grad
    with pytest.raises(ValueError, match="reduction"):
        losses.ranking_loss(errors, keep=0.5, reduction="max")


# ---------------------------------------------------------------- normal loss

RAY = [0.0, 0.0, -1.0]  # every ray looks along -z


def normal_batch():
    """Four rays: a facing foreground ray, a grazing one (cos −0.05), a background ray and a
    facing ray whose target is on the background mask."""
    s = math.sqrt(1 - 0.05**2)
    targets = t([[0.0, 0.0, 1.0], [s, 0.0, 0.05], [0.0, 0.0, 0.0], [0.6, 0.0, 0.8]])
    rendered = t([[0.6, 0.0, 0.8], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.6, 0.0, 0.8]])
    directions = t([RAY] * 4)
    foreground = t([1.0, 1.0, 0.0, 0.0])
    view_weights = t([0.5, 1.0, 1.0, 1.0])
    return rendered, targets, directions, foreground, view_weights


def test_normal_loss_facing_rule_geometry_weights_and_view_weights():
    rendered, targets, directions, foreground, view_weights = normal_batch()
    value = losses.normal_loss(rendered, targets, directions, foreground, view_weights, keep=1.0)
    # cos(ray, target) = [-1, -0.05, 0, -0.8] -> zeroed above -0.1 -> [-1, 0, 0, -0.8]
    # only ray 0 is foreground AND facing; its error is 1 - 0.8 = 0.2
    # geometry-aware: × e^1 / (e^1 + e^0 + e^0 + e^0.8) over the whole batch; × view weight 0.5
    expected = 0.2 * math.e / (math.e + 2.0 + math.exp(0.8)) * 0.5
    assert float(value) == pytest.approx(expected, rel=1e-9)


def test_normal_loss_without_geometry_awareness_is_a_weighted_mean():
    rendered, targets, directions, foreground, view_weights = normal_batch()
    foreground = t([1.0, 1.0, 0.0, 1.0])  # now rays 0 and 3 count (errors 0.2 and 0)
    value = losses.normal_loss(rendered, targets, directions, foreground, view_weights, keep=1.0,
                               geometry_aware=False)
    assert float(value) == pytest.approx((0.2 * 0.5 + 0.0 * 1.0) / 2)


def test_normal_loss_ranking_drops_the_worst_and_sums():
    directions = t([RAY] * 5)
    targets = t([[0.0, 0.0, 1.0]] * 5)
    angles = [0.0, 0.1, 0.2, 0.3, 1.5]
    rendered = t([[math.sin(a), 0.0, math.cos(a)] for a in angles])
    ones = t([1.0] * 5)
    value = losses.normal_loss(rendered, targets, directions, ones, ones, keep=0.8)
    # all cos = -1 -> equal weights e/(5e) = 1/5; keep 4 smallest errors and SUM
    expected = sum(1 - math.cos(a) for a in angles[:4]) / 5
    assert float(value) == pytest.approx(expected, rel=1e-9)


def test_facing_cosines_of_a_zero_normal_are_zero():
    cosines = losses.facing_cosines(t([RAY, RAY]), t([[0.0, 0.0, 0.0], [0.0, 0.0, 2.0]]))
    assert cosines.tolist() == pytest.approx([0.0, -1.0])


# ---------------------------------------------------------------- colour, mask, regularisers


def test_rgb_mse_sums_channels_ranks_and_means_over_valid_rays():
    rendered = t([[0.1, 0.2, 0.3], [0.5, 0.5, 0.5], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.2, 0.2, 0.2]])
    target = t([[0.1, 0.2, 0.5], [0.4, 0.5, 0.5], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.2, 0.2, 0.2]])
    valid = torch.tensor([True, True, True, True, False])
    # per-ray errors on valid rays: 0.04, 0.01, 3.0, 0.0 -> keep int(0.8*4)=3 smallest: 0, 0.01, 0.04
    value = losses.rgb_mse_loss(rendered, target, valid, keep=0.8)
    assert float(value) == pytest.approx((0.0 + 0.01 + 0.04) / 3)


def test_mask_loss_clamps_opacity_and_weights_views():
    opacity = t([0.0, 1.0, 0.5, 0.9])
    foreground = t([1.0, 0.0, 1.0, 1.0])
    weights = t([1.0, 1.0, 2.0, 3.0])
    # BCE with opacity clamped to [1e-3, 1 - 1e-3]: -log(1e-3), -log(1e-3), -log(0.5), -log(0.9)
    errors = [-math.log(1e-3), -math.log(1e-3), -math.log(0.5), -math.log(0.9)]
    value = losses.mask_loss(opacity, foreground, weights, keep=0.5)  # int(2) smallest: rays 3, 2
    assert float(value) == pytest.approx((errors[3] * 3.0 + errors[2] * 2.0) / 2)
    full = losses.mask_loss(opacity, foreground, weights, keep=1.0)
    assert float(full) == pytest.approx(sum(e * w for e, w in zip(errors, [1, 1, 2, 3])) / 4)


def test_eikonal_sparsity_and_smoothness():
    gradients = t([[2.0, 0.0, 0.0], [0.0, 0.6, 0.8], [0.0, 0.0, 0.5]])
    assert float(losses.eikonal_loss(gradients)) == pytest.approx((1.0 + 0.0 + 0.25) / 3)
    assert float(losses.eikonal_loss(t([[0.0, 0.0, 0.0]])[:0])) == 0.0
    assert float(losses.sparsity_loss(t([0.0, 0.01, -0.02]))) == pytest.approx((1 + math.exp(-1) + math.exp(-2)) / 3)
    assert float(losses.sparsity_loss(t([0.1]), scale=10.0)) == pytest.approx(math.exp(-1))
    a = t([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    b = t([[0.5, 0.0, 0.0], [0.0, 1.0, 0.3]])
    assert float(losses.normal_smoothness_loss(a, b)) == pytest.approx((0.5 + 0.3) / 6)


def test_normal_loss_gradient_flows_only_through_selected_rays():
    rendered, targets, directions, foreground, view_weights = normal_batch()
    rendered = rendered.clone().requires_grad_(True)
    losses.normal_loss(rendered, targets, directions, foreground, view_weights, keep=1.0).backward()
    assert torch.count_nonzero(rendered.grad[1:]) == 0
    assert torch.count_nonzero(rendered.grad[0]) > 0
