"""NeuS training: configuration, per-pixel targets, devices, and a short CPU run on a sphere."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import trimesh

from Wonder3DMedLib.errors import Cancelled, InputError
from Wonder3DMedLib.reconstruction.cameras import model_to_world_rotation, wonder3d_cameras
from Wonder3DMedLib.reconstruction.neus import NeusConfig, NeusResult, TrainingStats, grid_cell_centres, reconstruct_neus
from Wonder3DMedLib.reconstruction.neus.config import WONDER3D_VIEW_WEIGHTS
from Wonder3DMedLib.reconstruction.neus.field import ColorNetwork, NeusField, Variance
from Wonder3DMedLib.reconstruction.neus.data import training_pixels
from Wonder3DMedLib.reconstruction.neus.train import default_config, resolve_device
from Wonder3DMedLib.reconstruction.render import render_views
from Wonder3DMedLib.views import MultiviewImages

# ---------------------------------------------------------------- configuration


def test_defaults_are_the_original_configuration():
    config = NeusConfig()
    assert (config.steps, config.seed, config.image_size) == (3000, 42, 1024)
    assert config.view_weights == (1.0, 0.8, 0.2, 1.0, 0.4, 0.7)
    assert (config.hash_levels, config.hash_features_per_level, config.hash_log2_table_size) == (10, 2, 19)
    assert (config.hash_base_resolution, config.hash_start_levels, config.hash_level_update_steps) == (32, 4, 1000)
    assert config.render_step_size == pytest.approx(1.732 * 2 / 1024)
    assert (config.initial_rays, config.max_rays, config.samples_per_step) == (256, 8192, 262144)
    assert (config.lambda_normal, config.lambda_rgb_mse, config.lambda_mask) == (1.0, 0.5, 1.0)
    assert (config.lambda_eikonal, config.lambda_sparsity, config.lambda_normal_smooth) == (0.2, 0.5, 1.0)
    assert (config.normal_keep, config.rgb_keep, config.mask_keep) == (0.8, 0.8, 0.9)
    assert (config.lr_geometry, config.lr_texture, config.lr_variance) == (1e-3, 1e-2, 1e-3)
    assert config.adam_betas == (0.9, 0.99) and config.adam_eps == 1e-15
    json.dumps(config.to_dict())


def test_learning_rate_schedule_constant_then_exponential_to_a_tenth():
    config = NeusConfig()
    assert config.learning_rate_factor(0) == 1.0 and config.learning_rate_factor(500) == 1.0
    assert config.learning_rate_factor(1750) == pytest.approx(0.1**0.5)
    assert config.learning_rate_factor(3000) == pytest.approx(0.1)
    # the original's ExponentialLR: gamma = 0.1 ** (1 / 2500) per step after step 500
    assert config.learning_rate_factor(501) / config.learning_rate_factor(500) == pytest.approx(0.1 ** (1 / 2500))


def test_cos_anneal_ratio_never_reaches_one_in_the_original_run():
    config = NeusConfig()
    assert config.cos_anneal_ratio(0) == 0.0
    assert config.cos_anneal_ratio(3000) == pytest.approx(0.15)
    assert dataclasses.replace(config, cos_anneal_end=0).cos_anneal_ratio(0) == 1.0


def test_with_steps_compresses_the_schedule():
    short = NeusConfig().with_steps(600)
    assert (short.hash_level_update_steps, short.lr_constant_steps, short.occupancy_warmup_steps) == (200, 100, 51)
    assert short.occupancy_update_every == 3  # 16 · 600 / 3000: the grid forgets stale cells at the original's pace
    assert short.cos_anneal_end == 4000
    assert short.active_levels(599) == NeusConfig().active_levels(2999) == 6
    assert short.learning_rate_factor(600) == pytest.approx(0.1)


def test_cpu_preset_keeps_the_model_and_losses():
    cpu, full = NeusConfig.cpu(), NeusConfig()
    kept = ("hash_levels", "hash_log2_table_size", "feature_dim", "sdf_hidden", "lambda_normal", "lambda_mask",
            "lambda_rgb_mse", "lambda_eikonal", "lambda_normal_smooth", "lr_geometry", "lr_texture",
            "view_weights", "facing_threshold", "geometry_aware", "random_points", "smoothness_jitter")
    assert all(getattr(cpu, name) == getattr(full, name) for name in kept)
    assert cpu.random_points == 2048 and cpu.lambda_sparsity == 0.0 and full.lambda_sparsity == 0.5
    assert cpu.steps == 3000 and cpu.image_size is None and cpu.samples_per_step < full.samples_per_step
    assert cpu.occupancy_update_every == 16 and NeusConfig.cpu(1000).occupancy_update_every == 5
    assert cpu.early_stop_eps == 1e-4 and full.early_stop_eps == 0.0
    assert cpu.occupancy_ema_decay == 0.5 and full.occupancy_ema_decay == 0.95
    # the two biased settings of the original are dropped: annealing at 1 from the start, no ranking
    assert cpu.cos_anneal_ratio(0) == 1.0 and (cpu.normal_keep, cpu.rgb_keep, cpu.mask_keep) == (1.0, 1.0, 1.0)
    assert default_config(torch.device("cpu")) == cpu
    assert default_config(torch.device("cuda")) == full


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_oracle_views_get_equal_view_weights(device):
    """The original's weights encode distrust of generated side views; rendered views are exact."""
    generated = default_config(torch.device(device), "diffusion")
    oracle = default_config(torch.device(device), "oracle")
    assert generated.view_weights == WONDER3D_VIEW_WEIGHTS == default_config(torch.device(device), "files").view_weights
    assert oracle.view_weights == (1.0,) * 6
    assert dataclasses.replace(oracle, view_weights=WONDER3D_VIEW_WEIGHTS) == generated


@pytest.mark.parametrize(
    "field,value,match",
    [("steps", 0, "steps"), ("image_size", 4, "image_size"), ("view_weights", (1.0,) * 5, "view_weights"),
     ("mask_keep", 1.5, "mask_keep"), ("hash_start_levels", 11, "hash_start_levels"), ("initial_rays", 9000, "initial_rays"),
     ("early_stop_eps", 1.0, "early_stop_eps")],
)
def test_invalid_configuration_names_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(NeusConfig(), **{field: value})


# ---------------------------------------------------------------- training targets


@pytest.fixture(scope="module")
def sphere_views() -> MultiviewImages:
    return render_views(trimesh.creation.icosphere(subdivisions=4, radius=0.6), size=48)


def test_training_pixels_follow_the_original_dataset(sphere_views):
    weights = NeusConfig().view_weights
    pixels = training_pixels(sphere_views, view_weights=weights)
    assert len(pixels) == 6 * 48 * 48 and pixels.size == 48
    foreground = pixels.foreground.numpy().reshape(6, 48, 48).astype(bool)
    np.testing.assert_array_equal(foreground, sphere_views.masks)
    # targets: world-frame normals (model normals rotated by R_front^T), zero on the background
    decoded = np.round(sphere_views.normals * 255) / 255 * 2 - 1
    expected = decoded.reshape(-1, 3) @ model_to_world_rotation().T
    normals = pixels.normals.numpy()
    on = foreground.reshape(-1)
    np.testing.assert_allclose(normals[on], expected[on], atol=1e-5)
    assert np.all(normals[~on] == 0)
    # every foreground normal of a sphere faces its camera
    facing = np.einsum("nd,nd->n", pixels.directions.numpy()[on], normals[on])
    assert np.all(facing < 0)
    # colours composited on black; only white background pixels are unusable
    colors = pixels.colors.numpy()
    assert np.all(colors[~on] == 0) and np.all(colors[on] > 0)
    np.testing.assert_array_equal(pixels.color_valid.numpy(), on)
    np.testing.assert_allclose(pixels.view_weights.numpy().reshape(6, -1)[:, 0], weights)
    # rays: unit directions along each camera's view, all entering the box before leaving it
    directions = pixels.directions.numpy().reshape(6, -1, 3)
    for index, camera in enumerate(wonder3d_cameras()):
        np.testing.assert_allclose(directions[index], np.broadcast_to(model_to_world_rotation() @ camera.direction,
                                                                      directions[index].shape), atol=1e-6)
    assert torch.all(pixels.near < pixels.far)


def test_training_pixels_are_resized_like_the_original(sphere_views):
    pixels = training_pixels(sphere_views, size=96, view_weights=NeusConfig().view_weights)
    assert len(pixels) == 6 * 96 * 96
    coverage = pixels.foreground.numpy().reshape(6, -1).mean(axis=1)
    np.testing.assert_allclose(coverage, sphere_views.masks.reshape(6, -1).mean(axis=1), atol=0.01)
    norms = np.linalg.norm(pixels.normals.numpy()[pixels.foreground.numpy() > 0], axis=1)
    assert np.median(norms) == pytest.approx(1.0, abs=0.02)


# ---------------------------------------------------------------- devices and bad input


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(InputError, match="unknown device"):
        resolve_device("quantum")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda")


def test_views_without_foreground_are_refused(sphere_views):
    empty = MultiviewImages(sphere_views.normals, sphere_views.colors, np.zeros_like(sphere_views.masks))
    with pytest.raises(InputError, match="no foreground"):
        reconstruct_neus(empty, config=NeusConfig.cpu(steps=2), device="cpu")


def test_cancel_from_the_progress_callback_stops_the_run(sphere_views):
    calls = []

    def cancel_at_first_step(fraction, message):
        calls.append(message)
        if message.startswith("NeuS step"):
            raise Cancelled()

    config = dataclasses.replace(NeusConfig.cpu(steps=50), samples_per_step=512, random_points=64,
                                 occupancy_resolution=16)
    with pytest.raises(Cancelled):
        reconstruct_neus(sphere_views, config=config, device="cpu", progress=cancel_at_first_step)
    assert calls[-1].startswith("NeuS step 1/50")


# ---------------------------------------------------------------- a short CPU run on a sphere

#: Larger than the initial sphere (0.5), as the objects Wonder3D frames to ¾ of the image are.
SPHERE_RADIUS = 0.72
#: The reduced configuration of the training test: the first 300 steps of the CPU preset's
#: 1000-step schedule (constant learning rates, 4 hash levels, ≈ 4096 samples ≈ 100–200 rays
#: per step after early termination, 64³ occupancy grid with EMA 0.5, no sparsity term) on 64²
#: views of a sphere of radius 0.72, with 256 random points for the smoothness term instead of
#: 2048 to keep it to about a minute of CPU time.
SHORT_RUN = dataclasses.replace(NeusConfig.cpu(steps=1000), steps=300, random_points=256)
#: The same budget with the original's settings the preset drops: ranking (keep 80/80/90 %),
#: cosine annealing that stays near 0 and the sparsity term, and its occupancy EMA (0.95; with
#: the preset's 0.5 the shrinkage is as large but varies more with the thread count: 0.035–0.064
#: measured).
SHORT_RUN_BIASED = dataclasses.replace(SHORT_RUN, normal_keep=0.8, rgb_keep=0.8, mask_keep=0.9,
                                       cos_anneal_end=NeusConfig().with_steps(1000).cos_anneal_end,
                                       lambda_sparsity=NeusConfig().lambda_sparsity,
                                       occupancy_ema_decay=NeusConfig().occupancy_ema_decay)


def outer_crossings(result, directions: np.ndarray) -> np.ndarray:
    """Radius of the outermost zero crossing along rays from the centre (model units).

    Outermost, because NeuS may leave small positive pockets deep inside an object (no loss
    sees them: rays are opaque before reaching them).
    """
    radii = np.linspace(0.2, 0.95, 151)
    profile = np.stack([result.sdf(directions * r) for r in radii], axis=1)
    last_inside = len(radii) - 1 - np.argmax(profile[:, ::-1] <= 0, axis=1)
    return radii[np.minimum(last_inside + 1, len(radii) - 1)]


@pytest.fixture(scope="module")
def short_run():
    views = render_views(trimesh.creation.icosphere(subdivisions=5, radius=SPHERE_RADIUS), size=64)
    messages = []
    result = reconstruct_neus(views, config=SHORT_RUN, device="cpu", progress=lambda f, m: messages.append((f, m)))
    return result, messages


@pytest.mark.slow
def test_short_run_reduces_the_losses(short_run):
    result, _ = short_run
    stats = result.stats
    assert stats.steps == 300 and len(stats.history["total"]) == 300
    assert stats.final_losses["total"] < 0.6 * stats.initial_losses["total"]
    for term in ("normal", "mask", "rgb_mse", "eikonal"):
        assert stats.final_losses[term] < stats.initial_losses[term], term
    assert stats.final_inv_s > 20.5  # the surface sharpens (inv_s starts at exp(3) ≈ 20.1)
    assert np.all(stats.history["rays"] <= SHORT_RUN.max_rays)
    assert stats.cpu_seconds > 0 and stats.seconds >= stats.seconds_per_step


def sphere_crossings(result) -> np.ndarray:
    directions = np.random.default_rng(0).normal(size=(200, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return outer_crossings(result, directions), directions


@pytest.mark.slow
def test_short_run_zero_level_set_is_near_the_sphere(short_run):
    """Sphere init (radius 0.5, crossings spread over ≈ 0.41–0.72) → the rendered sphere of radius 0.72.

    After 300 steps the mean crossing is measured within 0.0025 of the truth and the crossings
    span 0.045 (0.005 outside and 0.055 with the original's occupancy EMA of 0.95).
    """
    result, _ = short_run
    crossings, directions = sphere_crossings(result)
    assert abs(crossings.mean() - SPHERE_RADIUS) < 0.02
    assert crossings.max() - crossings.min() < 0.1  # the init's spread is about 0.3
    assert np.all(result.sdf(directions * 0.9) > 0)
    assert np.mean(result.sdf(directions * 0.3) < 0) > 0.9


@pytest.mark.slow
def test_the_original_ranking_annealing_and_sparsity_shrink_the_surface(short_run):
    """Why the CPU preset drops them: the same 300 steps with the original's ranking, annealing
    and sparsity end well inside the sphere (measured 0.029–0.063, the float sums vary with
    the threads and the machine; 0.022 with ranking and annealing alone; the preset within
    0.0025) — the dropped worst rays are the silhouette rays that would push the surface out,
    rays passing just outside a soft surface turn partly opaque, and the sparsity term
    penalises the surface's area."""
    views = render_views(trimesh.creation.icosphere(subdivisions=5, radius=SPHERE_RADIUS), size=64)
    biased, _ = sphere_crossings(reconstruct_neus(views, config=SHORT_RUN_BIASED, device="cpu"))
    preset, _ = sphere_crossings(short_run[0])
    shrink, preset_offset = SPHERE_RADIUS - biased.mean(), abs(SPHERE_RADIUS - preset.mean())
    assert shrink > 0.015 and shrink > 4 * preset_offset, (shrink, preset_offset)


@pytest.mark.slow
def test_the_preset_occupancy_grid_forgets_the_warm_up_shell(short_run):
    """Why the CPU preset's occupancy EMA is 0.5: at the original's 0.95 the thick shell the
    warm-up marks around the soft initial surface stays occupied, and the same samples per step
    cover fewer rays (measured over the last 50 of the 300 steps: 160 rays at 0.5, 75 at 0.95)."""
    views = render_views(trimesh.creation.icosphere(subdivisions=5, radius=SPHERE_RADIUS), size=64)
    slow_forgetting = reconstruct_neus(views, config=dataclasses.replace(SHORT_RUN, occupancy_ema_decay=0.95),
                                       device="cpu")
    preset_rays = short_run[0].stats.history["rays"][-50:].mean()
    assert preset_rays > 1.5 * slow_forgetting.stats.history["rays"][-50:].mean()
    crossings, _ = sphere_crossings(slow_forgetting)
    assert abs(crossings.mean() - SPHERE_RADIUS) < 0.02  # the original's decay is not wrong, only slower


@pytest.mark.slow
def test_result_queries_in_the_model_frame(short_run):
    result, _ = short_run
    grid = result.sdf_grid(12)
    assert grid.shape == (12, 12, 12) and grid.dtype == np.float32
    centres = grid_cell_centres(12)
    assert centres[0] == pytest.approx(-1 + 1 / 12) and centres[-1] == pytest.approx(1 - 1 / 12)
    i, j, k = 2, 7, 10
    point = np.array([[centres[i], centres[j], centres[k]]])
    assert grid[i, j, k] == pytest.approx(result.sdf(point)[0], abs=1e-6)
    assert result.sdf(np.zeros((0, 3))).shape == (0,)
    colors = result.color(np.array([[0.6, 0.0, 0.0], [0.0, 0.0, 0.6]]))
    assert colors.shape == (2, 3) and colors.dtype == np.float64
    assert np.all((colors >= 0) & (colors <= 1))
    given = result.color(np.array([[0.6, 0.0, 0.0]]), np.array([[1.0, 0.0, 0.0]]))
    assert given.shape == (1, 3)
    with pytest.raises(ValueError, match="shape"):
        result.sdf(np.zeros((4, 2)))


@pytest.mark.slow
def test_progress_reports_steps_and_an_eta(short_run):
    _, messages = short_run
    fractions = [f for f, _ in messages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("ETA" in m and "NeuS step" in m for _, m in messages)
    assert messages[-1][1].startswith("NeuS done")


def test_queries_convert_the_model_frame_to_the_original_world():
    """The networks live in the original's z-up world; a model point p is the world point R_front^T p."""
    config = NeusConfig.cpu()
    torch.manual_seed(0)
    field, texture, variance = NeusField(config), ColorNetwork(config), Variance(config)
    with torch.no_grad():  # make the field clearly anisotropic
        field.encoding.table.uniform_(-0.5, 0.5)
    field.encoding.active_levels = 6
    history = {name: np.zeros(1) for name in ("total", "rays", "samples", "inv_s", "seconds")}
    stats = TrainingStats(steps=1, seconds=0.0, cpu_seconds=0.0, seconds_per_step=0.0, device="cpu",
                          initial_losses={}, final_losses={}, window=1, history=history)
    result = NeusResult(field=field, texture=texture, variance=variance, config=config, stats=stats,
                        device=torch.device("cpu"))
    points = np.random.default_rng(2).uniform(-0.9, 0.9, size=(64, 3))
    world = torch.as_tensor(points @ model_to_world_rotation().T, dtype=torch.float32)
    with torch.no_grad():
        expected = field(world, with_grad=False).sdf.double().numpy()
        swapped = field(torch.as_tensor(points, dtype=torch.float32), with_grad=False).sdf.double().numpy()
    np.testing.assert_allclose(result.sdf(points), expected, atol=1e-6)
    assert np.abs(result.sdf(points) - swapped).max() > 1e-3  # the frames do differ


def test_runs_are_reproducible_with_the_seed(sphere_views):
    config = dataclasses.replace(SHORT_RUN, steps=3, occupancy_resolution=16, samples_per_step=1024, initial_rays=32)
    first = reconstruct_neus(sphere_views, config=config, device="cpu")
    second = reconstruct_neus(sphere_views, config=config, device="cpu")
    np.testing.assert_array_equal(first.stats.history["total"], second.stats.history["total"])
    other = reconstruct_neus(sphere_views, config=dataclasses.replace(config, seed=7), device="cpu")
    assert not np.array_equal(first.stats.history["total"], other.stats.history["total"])
