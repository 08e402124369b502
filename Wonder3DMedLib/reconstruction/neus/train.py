"""Optimise a NeuS-ortho field on six views: Wonder3D's second stage, faithfully.

Data form: :class:`~Wonder3DMedLib.views.MultiviewImages` in (normals in the front-camera
frame, masks, colours); :class:`~Wonder3DMedLib.reconstruction.neus.result.NeusResult` out
(an SDF and colour field queried in the model frame).

One step (Wonder3D ``systems/neus_ortho.py`` + ``models/neus.py``, nerfacc 0.3.3):

1. draw ``n`` pixels uniformly over the six views (``n`` adapts to ≈262 k samples, ≤ 8192);
2. progressive schedule: hash levels, finite-difference step, cosine annealing; every 16
   steps refresh the occupancy grid;
3. march the pixels' rays through occupied cells, evaluate SDF, finite-difference normals
   and colours, NeuS alpha, composite opacity / normal / colour;
4. losses (normal, RGB, mask, eikonal, sparsity, 3D normal smoothness) with their weights;
5. AdamW step with per-group learning rates (constant, then exponential decay to 0.1×).

On CUDA the step runs under fp16 autocast with a gradient scaler (the MLPs stay float32,
as in the original); on CPU everything is float32.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque

import numpy as np
import torch
from torch.nn import functional as F

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.progress import ProgressCallback, report
from Wonder3DMedLib.reconstruction.neus import losses
from Wonder3DMedLib.reconstruction.neus.config import EQUAL_VIEW_WEIGHTS, NeusConfig
from Wonder3DMedLib.reconstruction.neus.data import TrainingPixels, training_pixels
from Wonder3DMedLib.reconstruction.neus.field import ColorNetwork, NeusField, Variance, tiny_cuda_nn_available
from Wonder3DMedLib.reconstruction.neus.result import NeusResult, TrainingStats
from Wonder3DMedLib.reconstruction.neus.sampling import (
    OccupancyGrid,
    composite,
    drop_occluded,
    march_rays,
    neus_alpha,
    occupancy_alpha,
)
from Wonder3DMedLib.views import MultiviewImages

__all__ = ["reconstruct_neus", "resolve_device", "default_config", "NeusTrainer"]

_REPORT_INTERVAL_S = 0.5
_ETA_WINDOW = 50


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``'auto'`` → CUDA when available, else CPU; anything else is checked and returned.

    Raises
    ------
    InputError
        If the name is not a torch device or CUDA is asked for but not available.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise InputError(f"unknown device {device!r}", hint="use 'auto', 'cpu', 'cuda' or 'cuda:N'") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available", hint="use --device cpu")
    if resolved.type not in ("cpu", "cuda"):
        raise InputError(f"device {device!r} is not supported by the NeuS backend", hint="use 'cpu' or 'cuda'")
    return resolved


def default_config(device: torch.device, source: str = "files") -> NeusConfig:
    """The original's configuration on CUDA, the reduced :meth:`NeusConfig.cpu` preset on CPU.

    ``source`` is :attr:`MultiviewImages.source`: the original's unequal view weights encode
    how far generated side views can be trusted, so views rendered from a reference surface
    (``'oracle'``, exact in every view) get equal weights (:data:`EQUAL_VIEW_WEIGHTS`).
    """
    config = NeusConfig() if device.type == "cuda" else NeusConfig.cpu()
    if source == "oracle":
        config = dataclasses.replace(config, view_weights=EQUAL_VIEW_WEIGHTS)
    return config


def _adamw(groups: list[dict], config: NeusConfig) -> torch.optim.AdamW:
    """AdamW with the original's settings; the fused kernel when this torch has it (same maths,
    one pass over the 7.7 M hash-grid parameters instead of about ten)."""
    options = dict(betas=config.adam_betas, eps=config.adam_eps, weight_decay=config.weight_decay)
    try:
        return torch.optim.AdamW(groups, fused=True, **options)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, **options)


def _grad_scaler(enabled: bool):
    """fp16 loss scaling (a no-op when disabled), on torch 2.1 to current."""
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


class NeusTrainer:
    """Holds the networks, occupancy grid, optimiser and training pixels; runs steps.

    Parameters
    ----------
    pixels : TrainingPixels
    config : NeusConfig
    device : torch.device
    """

    def __init__(self, pixels: TrainingPixels, config: NeusConfig, device: torch.device):
        self.pixels = pixels
        self.config = config
        self.device = device
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(config.seed)
        accelerate = config.use_tiny_cuda_nn and device.type == "cuda" and tiny_cuda_nn_available()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.field = NeusField(config, accelerate=accelerate).to(device)
            self.texture = ColorNetwork(config).to(device)
            self.variance = Variance(config).to(device)
        self.grid = OccupancyGrid(config.occupancy_resolution, device=device)
        self.optimizer = _adamw(
            [
                {"params": list(self.field.parameters()), "lr": config.lr_geometry, "name": "geometry"},
                {"params": list(self.texture.parameters()), "lr": config.lr_texture, "name": "texture"},
                {"params": list(self.variance.parameters()), "lr": config.lr_variance, "name": "variance"},
            ],
            config,
        )
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.mixed_precision = config.mixed_precision and device.type == "cuda"
        self.scaler = _grad_scaler(self.mixed_precision)
        self.rays = config.initial_rays
        self.background = torch.zeros(3, device=device)

    @torch.no_grad()
    def _sdf_no_grad(self, points: torch.Tensor) -> torch.Tensor:
        chunk = self.config.eval_chunk
        values = [
            self.field(points[start : start + chunk], with_grad=False, with_feature=False).sdf
            for start in range(0, points.shape[0], chunk)
        ]
        return torch.cat(values) if values else points.new_zeros(0)

    def _occupancy(self, points: torch.Tensor) -> torch.Tensor:
        return occupancy_alpha(self._sdf_no_grad(points), self.variance.inv_s.detach(), self.config.render_step_size)

    @staticmethod
    def _positions(origins: torch.Tensor, directions: torch.Tensor, samples) -> torch.Tensor:
        ray_of = samples.ray_indices
        return origins[ray_of] + directions[ray_of] * samples.midpoints[:, None]

    def prepare_step(self, step: int) -> float:
        """Progressive schedule and occupancy refresh at ``step``; returns the cosine-anneal ratio."""
        config = self.config
        self.field.set_step(step)
        if step % config.occupancy_update_every == 0:
            self.grid.update(
                step,
                self._occupancy,
                threshold=config.occupancy_threshold,
                ema_decay=config.occupancy_ema_decay,
                warmup_steps=config.occupancy_warmup_steps,
                generator=self.generator,
            )
        return config.cos_anneal_ratio(step)

    def _losses(self, step: int, cos_anneal_ratio: float) -> tuple[dict[str, torch.Tensor], int]:
        config, pixels, device = self.config, self.pixels, self.device
        chosen = torch.randint(len(pixels), (self.rays,), device=device, generator=self.generator)
        origins, directions = pixels.origins[chosen], pixels.directions[chosen]
        samples = march_rays(
            origins, directions, pixels.near[chosen], pixels.far[chosen], self.grid,
            step_size=config.render_step_size, stratified=True, generator=self.generator,
        )
        if config.early_stop_eps > 0:
            samples = drop_occluded(samples, self._sdf_no_grad(self._positions(origins, directions, samples)),
                                    self.variance.inv_s, eps=config.early_stop_eps)
        ray_of = samples.ray_indices
        positions = self._positions(origins, directions, samples)
        random_points = torch.rand(config.random_points, 3, device=device, generator=self.generator) * 2.0 - 1.0
        jitter = torch.randn(random_points.shape, device=device, generator=self.generator) * config.smoothness_jitter
        m, r = len(samples), config.random_points
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=self.mixed_precision):
            out = self.field(torch.cat([positions, random_points, random_points + jitter]), with_grad=True)
            gradient = out.gradient[:m]
            normals = F.normalize(gradient, p=2, dim=-1)
            alpha = neus_alpha(
                out.sdf[:m], normals, directions[ray_of], samples.t_ends - samples.t_starts, self.variance.inv_s,
                cos_anneal_ratio=cos_anneal_ratio,
            )
            colors = self.texture(out.feature[:m], normals)
            rendered = composite(alpha, ray_of, self.rays, {"rgb": colors, "normal": normals})
            rendered_normals = F.normalize(rendered.values["normal"], p=2, dim=-1)
            rendered_colors = rendered.values["rgb"] + self.background * (1.0 - rendered.opacity[:, None])
            hit = rendered.opacity > 0
            terms = {
                "normal": losses.normal_loss(
                    rendered_normals, pixels.normals[chosen], directions, pixels.foreground[chosen],
                    pixels.view_weights[chosen], keep=config.normal_keep, facing_threshold=config.facing_threshold,
                    geometry_aware=config.geometry_aware,
                ),
                "rgb_mse": losses.rgb_mse_loss(
                    rendered_colors, pixels.colors[chosen], hit & pixels.color_valid[chosen], keep=config.rgb_keep
                ),
                "mask": losses.mask_loss(
                    rendered.opacity, pixels.foreground[chosen], pixels.view_weights[chosen],
                    keep=config.mask_keep, clamp=config.opacity_clamp,
                ),
                "eikonal": losses.eikonal_loss(gradient),
                "sparsity": losses.sparsity_loss(out.sdf[m : m + r], scale=config.sparsity_scale),
                "normal_smooth": losses.normal_smoothness_loss(out.gradient[m : m + r], out.gradient[m + r :]),
            }
        return terms, m

    def weights(self) -> dict[str, float]:
        """Loss weight of each term (the original's ``lambda_*``)."""
        c = self.config
        return {
            "normal": c.lambda_normal, "rgb_mse": c.lambda_rgb_mse, "mask": c.lambda_mask,
            "eikonal": c.lambda_eikonal, "sparsity": c.lambda_sparsity, "normal_smooth": c.lambda_normal_smooth,
        }

    def step(self, step: int) -> dict[str, float]:
        """Run optimisation step ``step`` (0-based); returns its losses and bookkeeping."""
        config = self.config
        cos_anneal_ratio = self.prepare_step(step)
        terms, samples = self._losses(step, cos_anneal_ratio)
        weights = self.weights()
        total = sum(weights[name] * value for name, value in terms.items())
        factor = config.learning_rate_factor(step)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        record = {name: float(value.detach()) for name, value in terms.items()}
        record.update(total=float(total.detach()), rays=float(self.rays), samples=float(samples),
                      inv_s=float(self.variance.inv_s.detach()))
        # Matches Wonder3D: dynamic ray sampling towards samples_per_step, smoothed 0.9/0.1, capped.
        target = int(self.rays * config.samples_per_step / samples) if samples > 0 else config.max_rays
        self.rays = max(1, min(int(self.rays * 0.9 + target * 0.1), config.max_rays))
        return record

    def export_state(self) -> None:
        """Put the field in the state the original exports from (its step counter = ``steps``)."""
        # Matches Wonder3D: export runs update_step(global_step=max_steps), one level more than trained.
        self.field.set_step(self.config.steps)


def _format_eta(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _check_views(views: MultiviewImages) -> None:
    if not isinstance(views, MultiviewImages):
        raise InputError(f"views must be MultiviewImages, got {type(views).__name__}")
    empty = [index for index in range(views.masks.shape[0]) if not views.masks[index].any()]
    if len(empty) == views.masks.shape[0]:
        raise InputError("the views have no foreground pixels in any view (all masks are empty)",
                         hint="check the normal maps' alpha channel: it holds the foreground mask")


def reconstruct_neus(
    views: MultiviewImages,
    *,
    config: NeusConfig | None = None,
    device: str | torch.device = "auto",
    progress: ProgressCallback | None = None,
) -> NeusResult:
    """Fit Wonder3D's ortho NeuS to six views and return the field.

    Parameters
    ----------
    views : MultiviewImages
        Six views (normals in the front-camera frame, masks, colours), any square size.
    config : NeusConfig, optional
        Defaults to the original's configuration on CUDA and to :meth:`NeusConfig.cpu`
        (a reduced, documented preset) on CPU, with equal view weights for ``'oracle'``
        views (:func:`default_config`).
    device : {'auto', 'cpu', 'cuda', 'cuda:N'}
    progress : callable, optional
        ``progress(fraction, message)``, called about twice a second with the step, the
        losses and an ETA from the mean of the last 50 steps; may raise ``Cancelled``.

    Returns
    -------
    NeusResult
        SDF / colour queries in the model frame and training statistics.

    Raises
    ------
    InputError
        Views without any foreground, or an unusable device.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    _check_views(views)
    device = resolve_device(device)
    config = default_config(device, views.source) if config is None else config
    report(progress, 0.0, "NeuS: preparing the views")
    pixels = training_pixels(views, size=config.image_size, view_weights=config.view_weights, device=device)
    trainer = NeusTrainer(pixels, config, device)
    history: dict[str, list[float]] = {}
    durations: deque[float] = deque(maxlen=_ETA_WINDOW)
    last_report = 0.0
    for step in range(config.steps):
        step_started = time.perf_counter()
        record = trainer.step(step)
        now = time.perf_counter()
        record["seconds"] = now - step_started
        durations.append(record["seconds"])
        for name, value in record.items():
            history.setdefault(name, []).append(value)
        if now - last_report >= _REPORT_INTERVAL_S or step == config.steps - 1:
            last_report = now
            eta = float(np.mean(durations)) * (config.steps - step - 1)
            report(
                progress,
                (step + 1) / config.steps,
                f"NeuS step {step + 1}/{config.steps} · loss {record['total']:.4f} · {int(record['rays'])} rays · "
                f"ETA {_format_eta(eta)}",
            )
    trainer.export_state()
    arrays = {name: np.asarray(values, dtype=np.float64) for name, values in history.items()}
    window = max(1, min(50, config.steps // 10))
    names = list(losses.LOSS_TERMS) + ["total"]
    stats = TrainingStats(
        steps=config.steps,
        seconds=time.perf_counter() - started,
        cpu_seconds=time.process_time() - cpu_started,
        seconds_per_step=float(arrays["seconds"].mean()),
        device=str(device),
        initial_losses={name: float(arrays[name][:window].mean()) for name in names},
        final_losses={name: float(arrays[name][-window:].mean()) for name in names},
        window=window,
        history=arrays,
    )
    report(progress, 1.0, f"NeuS done: {config.steps} steps in {_format_eta(stats.seconds)}")
    return NeusResult(
        field=trainer.field, texture=trainer.texture, variance=trainer.variance, config=config, stats=stats,
        device=device,
    )
