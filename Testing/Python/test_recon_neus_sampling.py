"""NeuS sampling: occupancy grid, ray marching, NeuS alpha and compositing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from Wonder3DMedLib.reconstruction.cameras import camera_rays, ray_box_bounds, wonder3d_cameras
from Wonder3DMedLib.reconstruction.neus.sampling import (
    OccupancyGrid,
    RaySamples,
    composite,
    drop_occluded,
    march_rays,
    neus_alpha,
    occupancy_alpha,
)


def ball(radius: float):
    return lambda points: (points.norm(dim=-1) < radius).float()


def cell_bounds(grid: OccupancyGrid) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest and farthest distance from the origin of every cell (for exact inside/outside tests)."""
    coords = grid.cell_coordinates(torch.arange(grid.num_cells)).float()
    low = coords / grid.resolution * 2 - 1
    high = low + 2.0 / grid.resolution
    nearest = torch.where(low > 0, low, torch.where(high < 0, -high, torch.zeros_like(low))).norm(dim=1)
    farthest = torch.maximum(low.abs(), high.abs()).norm(dim=1)
    return nearest, farthest


def test_warm_up_evaluates_every_cell_and_binarises():
    grid = OccupancyGrid(16)
    grid.update(0, ball(0.5), threshold=1e-3, ema_decay=0.95, warmup_steps=256,
                generator=torch.Generator().manual_seed(0))
    nearest, farthest = cell_bounds(grid)
    assert torch.all(grid.binary[farthest < 0.5])  # wholly inside: occupied
    assert not torch.any(grid.binary[nearest > 0.5])  # wholly outside: empty
    assert torch.all((grid.occupancy == 0) | (grid.occupancy == 1))


def test_ema_keeps_the_decayed_maximum():
    grid = OccupancyGrid(8)
    grid.update(0, lambda p: torch.full((len(p),), 0.4), threshold=1e-3, ema_decay=0.95, warmup_steps=10)
    grid.update(1, lambda p: torch.full((len(p),), 0.1), threshold=1e-3, ema_decay=0.95, warmup_steps=10)
    assert torch.allclose(grid.occupancy, torch.full((512,), 0.38))
    grid.update(2, lambda p: torch.full((len(p),), 0.5), threshold=1e-3, ema_decay=0.95, warmup_steps=10)
    assert torch.allclose(grid.occupancy, torch.full((512,), 0.5))


def test_threshold_is_the_mean_when_the_mean_is_below_it():
    grid = OccupancyGrid(4)
    values = torch.zeros(64)
    values[:8] = 1e-4  # mean 1.25e-5 < 1e-3: cells above the mean are occupied

    def field(points):
        cells = ((points + 1) * 0.5 * 4).long().clamp(0, 3)
        return values[cells[:, 0] * 16 + cells[:, 1] * 4 + cells[:, 2]]

    grid.update(0, field, threshold=1e-3, ema_decay=0.95, warmup_steps=1)
    assert grid.binary.sum() == 8 and torch.all(grid.binary[:8])
    grid.update(0, lambda p: torch.full((len(p),), 0.5e-3), threshold=1e-3, ema_decay=0.95, warmup_steps=1)
    assert not torch.any(grid.binary)  # all equal to the mean: nothing exceeds it


def test_after_warm_up_a_quarter_uniform_plus_occupied_cells_are_refreshed():
    for radius, resolution in ((0.5, 8), (0.2, 8)):
        grid = OccupancyGrid(resolution)
        grid.update(0, ball(radius), threshold=1e-3, ema_decay=0.95, warmup_steps=1)
        occupied = int(grid.binary.sum())
        seen = []

        def record(points):
            seen.append(len(points))
            return torch.zeros(len(points))

        grid.update(5, record, threshold=1e-3, ema_decay=0.95, warmup_steps=1)
        quarter = resolution**3 // 4
        # nerfacc: N/4 uniform cells plus all occupied cells, or N/4 of them if there are more
        assert seen == [quarter + min(quarter, occupied)]


def occupied_sphere_grid(resolution: int = 32, radius: float = 0.6) -> OccupancyGrid:
    grid = OccupancyGrid(resolution)
    grid.update(0, lambda p: ((p.norm(dim=-1) - radius).abs() < 0.1).float(), threshold=1e-3,
                ema_decay=0.95, warmup_steps=1, generator=torch.Generator().manual_seed(1))
    return grid


def view_rays(view: int, size: int = 24):
    rays = camera_rays(wonder3d_cameras()[view], size, frame="world")
    near, far = ray_box_bounds(rays.origins, rays.directions)
    as_tensor = lambda a: torch.as_tensor(np.asarray(a).reshape(-1, *np.asarray(a).shape[2:]), dtype=torch.float32)
    return as_tensor(rays.origins), as_tensor(rays.directions), as_tensor(near), as_tensor(far)


@pytest.mark.parametrize("view", [0, 1, 2])
def test_marching_samples_only_occupied_cells_inside_the_box(view):
    grid = occupied_sphere_grid()
    origins, directions, near, far = view_rays(view)
    samples = march_rays(origins, directions, near, far, grid, step_size=0.02, stratified=True,
                         generator=torch.Generator().manual_seed(2))
    assert len(samples) > 0
    points = origins[samples.ray_indices] + directions[samples.ray_indices] * samples.midpoints[:, None]
    assert torch.all(points.abs() <= 1.0 + 1e-6)
    assert torch.all(grid.occupied(points))
    assert torch.all(samples.t_starts < far[samples.ray_indices])
    assert torch.allclose(samples.t_ends - samples.t_starts, torch.full((len(samples),), 0.02))
    same_ray = samples.ray_indices[1:] == samples.ray_indices[:-1]
    assert torch.all(samples.ray_indices[1:] >= samples.ray_indices[:-1]), "samples must be sorted by ray"
    assert torch.all(samples.t_starts[1:][same_ray] > samples.t_starts[:-1][same_ray]), "then by depth"


def test_marching_matches_a_brute_force_walk():
    """Without jitter, sample k of a ray starts at near + k·step: check against a plain loop."""
    grid = occupied_sphere_grid(resolution=16)
    origins, directions, near, far = view_rays(1, size=8)
    step = 0.05
    samples = march_rays(origins, directions, near, far, grid, step_size=step, stratified=False)
    expected = []
    for ray in range(len(origins)):
        k = 0
        while float(near[ray]) + k * step < float(far[ray]):
            start = float(near[ray]) + k * step
            point = origins[ray] + directions[ray] * (start + step / 2)
            if bool(grid.occupied(point[None])[0]):
                expected.append((ray, start))
            k += 1
    got = list(zip(samples.ray_indices.tolist(), samples.t_starts.tolist()))
    assert len(got) == len(expected)
    for (ray_a, t_a), (ray_b, t_b) in zip(got, expected):
        assert ray_a == ray_b and t_a == pytest.approx(t_b, abs=1e-5)


def test_stratified_offsets_stay_within_one_step():
    origins, directions, near, far = view_rays(0, size=8)
    samples = march_rays(origins, directions, near, far, None, step_size=0.1, stratified=True,
                         generator=torch.Generator().manual_seed(3))
    first = torch.ones(len(samples), dtype=torch.bool)
    first[1:] = samples.ray_indices[1:] != samples.ray_indices[:-1]
    offsets = samples.t_starts[first] - near[samples.ray_indices[first]]
    assert torch.all(offsets >= 0) and torch.all(offsets < 0.1)
    assert float(offsets.std()) > 0.01


def test_rays_missing_the_box_give_no_samples():
    origins = torch.tensor([[5.0, 5.0, 5.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0]])
    samples = march_rays(origins, directions, torch.tensor([3.0]), torch.tensor([2.0]), None, step_size=0.1,
                         stratified=True)
    assert len(samples) == 0


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_neus_alpha_by_hand():
    # A step of length 0.1 centred on the surface, ray against the normal (cos = -1), inv_s = 20.
    sdf = torch.tensor([0.0, 0.05, 0.0])
    normals = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    dists = torch.full((3,), 0.1)
    inv_s = torch.tensor(20.0)
    alpha = neus_alpha(sdf, normals, directions, dists, inv_s, cos_anneal_ratio=1.0)
    # ratio 1: iter_cos = -relu(-cos) = -1 for cos = -1; 0 for cos = 0
    prev, nxt = sigmoid(20 * 0.05), sigmoid(-20 * 0.05)
    assert float(alpha[0]) == pytest.approx((prev - nxt + 1e-5) / (prev + 1e-5), rel=1e-5)
    prev, nxt = sigmoid(20 * 0.1), sigmoid(0.0)
    assert float(alpha[1]) == pytest.approx((prev - nxt + 1e-5) / (prev + 1e-5), rel=1e-5)
    assert float(alpha[2]) == pytest.approx(1e-5 / (0.5 + 1e-5), rel=1e-4)  # grazing ray: nothing
    # ratio 0: iter_cos = -relu(-cos/2 + 1/2) = -1 for cos = -1, -0.5 for cos = 0
    annealed = neus_alpha(sdf, normals, directions, dists, inv_s, cos_anneal_ratio=0.0)
    prev, nxt = sigmoid(20 * 0.025), sigmoid(-20 * 0.025)
    assert float(annealed[2]) == pytest.approx((prev - nxt + 1e-5) / (prev + 1e-5), rel=1e-5)


def test_occupancy_alpha_is_one_step_along_the_gradient():
    inv_s = torch.tensor(20.0)
    value = occupancy_alpha(torch.tensor([0.0, 2.0, -2.0]), inv_s, 0.01)
    prev, nxt = sigmoid(20 * 0.005), sigmoid(-20 * 0.005)
    assert float(value[0]) == pytest.approx((prev - nxt + 1e-5) / (prev + 1e-5), rel=1e-5)
    assert float(value[1]) < 1e-3  # far outside: empty
    assert float(value[2]) > 0.5  # deep inside: the ratio tends to 1


def test_compositing_by_hand():
    alpha = torch.tensor([0.5, 0.5, 0.2, 1.0, 0.3])
    rays = torch.tensor([0, 0, 1, 1, 1])
    colors = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5]])
    out = composite(alpha, rays, 3, {"rgb": colors})
    # ray 0: 0.5, 0.5·0.5; ray 1: 0.2, 0.8·1.0, 0 (blocked); ray 2: no samples
    torch.testing.assert_close(out.weights, torch.tensor([0.5, 0.25, 0.2, 0.8, 0.0]))
    torch.testing.assert_close(out.opacity, torch.tensor([0.75, 1.0, 0.0]))
    torch.testing.assert_close(out.values["rgb"], torch.tensor([[0.5, 0.25, 0.0], [0.8, 0.8, 1.0], [0.0, 0.0, 0.0]]))


def test_compositing_is_differentiable_and_handles_no_samples():
    alpha = torch.tensor([0.3, 0.6], requires_grad=True)
    out = composite(alpha, torch.tensor([0, 0]), 1, {})
    out.opacity.sum().backward()
    # opacity = a0 + (1 - a0) a1: d/da0 = 1 - a1 = 0.4, d/da1 = 1 - a0 = 0.7
    torch.testing.assert_close(alpha.grad, torch.tensor([0.4, 0.7]))
    empty = composite(torch.zeros(0), torch.zeros(0, dtype=torch.long), 2, {"rgb": torch.zeros(0, 3)})
    assert empty.opacity.shape == (2,) and empty.values["rgb"].shape == (2, 3)


def test_early_termination_by_hand():
    # inv_s = 10: transmittance bound Φ(10 · x) < 1e-2 once an earlier sample has x < ln(1/99)/10 ≈ -0.4595.
    sdf = torch.tensor([0.5, 0.0, -0.45, -0.47, 0.2, 0.3, -0.6, 1.0])
    rays = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1])
    samples = RaySamples(ray_indices=rays, t_starts=torch.arange(8.0), t_ends=torch.arange(8.0) + 1)
    kept = drop_occluded(samples, sdf, torch.tensor(10.0), eps=1e-2)
    # ray 0: -0.45 is not below the bound, -0.47 is: the sample after it (0.2) is hidden, the -0.47 one itself is
    # still seen; ray 1: everything after its -0.6 sample is hidden; rays never affect each other
    torch.testing.assert_close(kept.t_starts, torch.tensor([0.0, 1.0, 2.0, 3.0, 5.0, 6.0]))
    torch.testing.assert_close(kept.ray_indices, torch.tensor([0, 0, 0, 0, 1, 1]))
    assert drop_occluded(samples, sdf, torch.tensor(10.0), eps=0.0) is samples  # 0 = off
    empty = RaySamples(torch.zeros(0, dtype=torch.long), torch.zeros(0), torch.zeros(0))
    assert len(drop_occluded(empty, torch.zeros(0), torch.tensor(10.0), eps=1e-4)) == 0


@pytest.mark.parametrize("ratio", [1.0, 0.0])
def test_early_termination_drops_only_what_rendering_cannot_see(ratio):
    """On a ball's exact SDF, the dropped samples' compositing weights sum to less than eps per ray,
    and the opacity and normals of the kept samples are those of all samples."""
    radius, inv_s, eps = 0.6, torch.tensor(80.0), 1e-4
    origins, directions, near, far = view_rays(1)
    samples = march_rays(origins, directions, near, far, None, step_size=0.01, stratified=False)
    points = origins[samples.ray_indices] + directions[samples.ray_indices] * samples.midpoints[:, None]
    sdf = points.norm(dim=-1) - radius
    normals = torch.nn.functional.normalize(points, dim=-1)

    def render(selected: RaySamples, index: torch.Tensor):
        alpha = neus_alpha(sdf[index], normals[index], directions[selected.ray_indices],
                           selected.t_ends - selected.t_starts, inv_s, cos_anneal_ratio=ratio)
        return composite(alpha, selected.ray_indices, len(origins), {"normal": normals[index]})

    everything = render(samples, torch.arange(len(samples)))
    kept = drop_occluded(samples, sdf, inv_s, eps=eps)
    key = lambda s: s.ray_indices.double() * 1000.0 + s.t_starts.double()  # sorted: by ray, then depth
    index = torch.searchsorted(key(samples), key(kept))
    torch.testing.assert_close(key(samples)[index], key(kept))
    # behind the surface by more than ln(1/eps)/inv_s ≈ 0.115 (plus one step): nothing is kept
    assert float(sdf[index].min()) > -0.13 and int((sdf < -0.13).sum()) > 1000
    lost = torch.ones(len(samples), dtype=torch.bool)
    lost[index] = False
    hidden = torch.zeros(len(origins)).index_add(0, samples.ray_indices[lost], everything.weights[lost])
    assert float(hidden.max()) < eps
    partial = render(kept, index)
    torch.testing.assert_close(partial.opacity, everything.opacity, atol=2 * eps, rtol=0)
    torch.testing.assert_close(partial.values["normal"], everything.values["normal"], atol=2 * eps, rtol=0)
