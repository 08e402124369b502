"""NeuS field: hash-grid encoding against a per-point reference, sphere init, FD normals, precision plumbing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from Wonder3DMedLib.reconstruction.neus.config import NeusConfig
from Wonder3DMedLib.reconstruction.neus.field import (
    HASH_PRIMES,
    ColorNetwork,
    HashGridEncoding,
    NeusField,
    Variance,
)


def reference_encoding(points01: np.ndarray, encoding: HashGridEncoding) -> np.ndarray:
    """tiny-cuda-nn's HashGrid written out point by point with Python integers (uint32 maths)."""
    table = encoding.table.detach().double().numpy()
    features = encoding.features_per_level
    out = np.zeros((len(points01), encoding.n_levels * features))
    for p, point in enumerate(points01):
        for level in range(encoding.active_levels):
            scale = np.float32(encoding.scales[level])
            resolution, size = encoding.resolutions[level], encoding.sizes[level]
            position = [np.float32(np.float32(v) * scale) + np.float32(0.5) for v in point]
            base = [math.floor(v) for v in position]
            fraction = [float(v) - b for v, b in zip(position, base)]
            for corner in range(8):
                coords = [(base[d] + ((corner >> d) & 1)) % 2**32 for d in range(3)]
                weight = 1.0
                for d in range(3):
                    weight *= fraction[d] if (corner >> d) & 1 else 1.0 - fraction[d]
                if resolution**3 <= size:
                    index = (coords[0] + coords[1] * resolution + coords[2] * resolution**2) % 2**32
                else:
                    index = 0
                    for d in range(3):
                        index ^= (coords[d] * HASH_PRIMES[d]) % 2**32
                entry = encoding.offsets[level] + index % size
                out[p, level * features : (level + 1) * features] += weight * table[:, entry]
    return out


@pytest.fixture(scope="module")
def encoding() -> HashGridEncoding:
    torch.manual_seed(0)
    grid = HashGridEncoding(NeusConfig())
    with torch.no_grad():  # values large enough that any indexing mistake shows
        grid.table.uniform_(-1.0, 1.0)
    return grid


def test_level_layout_matches_tiny_cuda_nn():
    grid = HashGridEncoding(NeusConfig())
    # scale_l = 32 * 2^(0.4 l) - 1, resolution = ceil(scale) + 1
    assert grid.resolutions == [32, 43, 56, 74, 98, 128, 169, 223, 295, 389]
    assert grid.dense == [True] * 4 + [False] * 6  # 74^3 fits in 2^19 entries, 98^3 does not
    assert grid.sizes[:4] == [32**3, 79512, 56**3, 74**3]  # 43^3 = 79507 rounded up to a multiple of 8
    assert grid.sizes[4:] == [2**19] * 6
    assert grid.table.numel() == 7_677_696  # the ~7.7 M parameters of the original's hash grid
    assert float(grid.table.detach().abs().max()) <= 1e-4  # tiny-cuda-nn's U(-1e-4, 1e-4) init


def test_matches_reference_at_random_points(encoding):
    encoding.active_levels = 10
    points = np.random.default_rng(1).random((40, 3)).astype(np.float32)
    ours = encoding(torch.from_numpy(points)).detach().double().numpy()
    np.testing.assert_allclose(ours, reference_encoding(points, encoding), atol=2e-6)


def test_matches_reference_outside_the_unit_cube(encoding):
    """Points a little outside [0, 1]³ (jittered smoothness points) wrap like uint32 on the GPU."""
    encoding.active_levels = 10
    points = np.array([[-0.01, 0.5, 0.5], [0.3, -0.004, 1.01], [1.002, 0.7, -0.02]], dtype=np.float32)
    ours = encoding(torch.from_numpy(points)).detach().double().numpy()
    np.testing.assert_allclose(ours, reference_encoding(points, encoding), atol=2e-6)


def test_grid_vertices_read_one_entry_dense_and_hashed(encoding):
    """At a grid vertex the weight of one corner is 1: the feature is that table entry."""
    encoding.active_levels = 10
    table = encoding.table.detach().numpy()
    for level, vertex in ((0, (3, 17, 9)), (4, (5, 60, 71))):
        scale = encoding.scales[level]
        point = torch.tensor([[(v - 0.5) / scale for v in vertex]], dtype=torch.float64).float()
        feature = encoding(point).detach().numpy()[0, level * 2 : level * 2 + 2]
        i, j, k = vertex
        if level == 0:  # dense: x + y·res + z·res²
            entry = i + j * 32 + k * 32 * 32
        else:  # hashed: x ⊕ 2654435761·y ⊕ 805459861·z modulo 2^19
            entry = encoding.offsets[level] + ((i ^ (j * 2654435761) ^ (k * 805459861)) % 2**32) % 2**19
        np.testing.assert_allclose(feature, table[:, entry], atol=1e-5)


def test_interpolation_is_trilinear_along_an_edge(encoding):
    encoding.active_levels = 1
    scale = encoding.scales[0]
    a = torch.tensor([[(4 - 0.5) / scale, (7 - 0.5) / scale, (2 - 0.5) / scale]])
    b = a + torch.tensor([[1.0 / scale, 0.0, 0.0]])
    quarter = a + torch.tensor([[0.25 / scale, 0.0, 0.0]])
    fa, fb, fq = (encoding(p).detach()[0, :2] for p in (a, b, quarter))
    torch.testing.assert_close(fq, 0.75 * fa + 0.25 * fb, atol=1e-5, rtol=1e-4)


def test_progressive_levels_mask_the_finer_levels(encoding):
    points = torch.rand(64, 3, generator=torch.Generator().manual_seed(3))
    encoding.active_levels = 10
    full = encoding(points).detach()
    for active in (0, 4, 7):
        encoding.active_levels = active
        partial = encoding(points).detach()
        torch.testing.assert_close(partial[:, : 2 * active], full[:, : 2 * active])
        assert torch.count_nonzero(partial[:, 2 * active :]) == 0


def test_inactive_levels_get_zero_gradient():
    grid = HashGridEncoding(NeusConfig())
    grid.active_levels = 4
    grid(torch.rand(100, 3)).sum().backward()
    gradient = grid.table.grad
    assert gradient is not None and gradient.shape == grid.table.shape
    assert torch.count_nonzero(gradient[:, grid.offsets[4] :]) == 0
    assert torch.count_nonzero(gradient[:, : grid.offsets[4]]) > 0


def test_progressive_schedule_and_finite_difference_step():
    config = NeusConfig()
    assert [config.active_levels(s) for s in (0, 999, 1000, 2999, 3000, 99999)] == [4, 4, 5, 6, 7, 10]
    # the original logs "Update finite_difference_eps to 0.0272..." at the start
    assert config.finite_difference_eps(0) == pytest.approx(2 / (32 * 1.3195079107728942**3), rel=1e-12)
    assert config.finite_difference_eps(0) == pytest.approx(0.0272, abs=1e-4)
    assert config.finite_difference_eps(3000) == pytest.approx(0.0118, abs=1e-4)
    field = NeusField(config)
    field.set_step(2500)
    assert field.encoding.active_levels == 6
    assert field.finite_difference_eps == pytest.approx(config.finite_difference_eps(2500))


@pytest.fixture(scope="module")
def init_field() -> NeusField:
    torch.manual_seed(42)
    return NeusField(NeusConfig())


def unit_directions(n: int, seed: int = 0) -> torch.Tensor:
    directions = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed))
    return directions / directions.norm(dim=1, keepdim=True)


def test_sphere_init_gives_sdf_near_norm_minus_radius(init_field):
    """Geometric init: SDF ≈ |x| − 0.5. With one hidden layer of 64 units the level set is a
    irregular sphere (the
    zero crossing varies between about 0.4 and 0.7 with the direction), so the check is on the
    mean over directions and on where each direction crosses zero."""
    directions = unit_directions(500)
    with torch.no_grad():
        for radius in (0.3, 0.5, 0.7, 0.9):
            sdf = init_field(directions * radius, with_grad=False).sdf
            assert float(sdf.mean()) == pytest.approx(radius - 0.5, abs=0.06)
        radii = torch.linspace(0.05, 0.99, 95)
        profile = torch.stack([init_field(directions * r, with_grad=False).sdf for r in radii], dim=1)
    assert torch.all(profile[:, 1:] > profile[:, :-1]), "SDF must grow along every ray from the centre"
    crossing = radii[torch.argmax((profile > 0).int(), dim=1)]
    assert float(crossing.min()) > 0.3 and float(crossing.max()) < 0.8
    assert float(crossing.mean()) == pytest.approx(0.5, abs=0.05)


def test_finite_difference_normals_of_the_init_sphere_are_radial(init_field):
    directions = unit_directions(400, seed=5)
    init_field.set_step(0)
    out = init_field(directions * 0.5)
    cosines = torch.nn.functional.cosine_similarity(out.gradient, directions, dim=1).detach()
    assert float(cosines.median()) > 0.97
    assert float(cosines.min()) > 0.8
    assert float(out.gradient.detach().norm(dim=1).mean()) == pytest.approx(1.0, abs=0.2)  # |∇(|x| − r)| = 1


def test_finite_differences_match_the_formula_and_clamp_to_the_box(init_field):
    init_field.set_step(0)
    eps = init_field.finite_difference_eps
    points = torch.tensor([[0.2, -0.1, 0.4], [0.999, 0.0, 0.0]])
    with torch.no_grad():
        gradient = init_field(points).gradient
        for axis in range(3):
            step = torch.zeros(3)
            step[axis] = eps
            plus = init_field((points + step).clamp(-1, 1), with_grad=False).sdf
            minus = init_field((points - step).clamp(-1, 1), with_grad=False).sdf
            torch.testing.assert_close(gradient[:, axis], 0.5 * (plus - minus) / eps)


def test_feature_channel_zero_is_the_sdf_and_colours_are_in_range(init_field):
    points = torch.rand(50, 3) * 2 - 1
    out = init_field(points, with_grad=False)
    assert out.feature.shape == (50, 13)
    torch.testing.assert_close(out.feature[:, 0], out.sdf)
    colors = ColorNetwork(NeusConfig())(out.feature, torch.nn.functional.normalize(points, dim=1))
    assert colors.shape == (50, 3) and colors.dtype == torch.float32
    assert float(colors.detach().min()) >= 0.0 and float(colors.detach().max()) <= 1.0


def test_variance_starts_at_exp_3():
    assert float(Variance(NeusConfig()).inv_s.detach()) == pytest.approx(math.exp(3.0), rel=1e-6)


def test_autocast_keeps_the_mlps_in_float32(init_field):
    """Under mixed precision the encoding output is rounded to the autocast type (as tiny-cuda-nn's
    half output) while the MLPs run in float32, as the original's VanillaMLP. CUDA uses float16;
    the same code path is exercised here with CPU bfloat16."""
    points = torch.rand(32, 3) * 2 - 1
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = init_field(points)
    reference = init_field(points)
    assert out.sdf.dtype == torch.float32 and out.gradient.dtype == torch.float32
    torch.testing.assert_close(out.sdf, reference.sdf, atol=1e-3, rtol=1e-3)
