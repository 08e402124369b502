"""Every number of the NeuS-ortho backend, with the original's values as defaults.

Data form: :class:`NeusConfig`, a frozen dataclass of plain numbers (JSON-serialisable
with :meth:`NeusConfig.to_dict`). The defaults are those of Wonder3D's
``instant-nsr-pl/configs/neuralangelo-ortho-wmask.yaml`` and the code it runs
(``models/neus.py``, ``models/geometry.py``, ``systems/neus_ortho.py``, nerfacc 0.3.3's
occupancy grid). :meth:`NeusConfig.cpu` is the documented reduced preset for machines
without a GPU.

Units: lengths are in model units (the reconstruction box is [−1, 1]³); steps are
optimisation steps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["NeusConfig", "WONDER3D_VIEW_WEIGHTS", "EQUAL_VIEW_WEIGHTS"]

#: The original's per-view loss weights (front, front_right, right, back, left, front_left).
WONDER3D_VIEW_WEIGHTS = (1.0, 0.8, 0.2, 1.0, 0.4, 0.7)

#: Weights for views that are exact in every direction (rendered from a reference surface).
EQUAL_VIEW_WEIGHTS = (1.0,) * 6

# Matches Wonder3D: models/neus.py uses 1.732 (not sqrt(3)) in render_step_size.
_SQRT3_AS_IN_ORIGINAL = 1.732


@dataclass(frozen=True)
class NeusConfig:
    """Configuration of :func:`~Wonder3DMedLib.reconstruction.neus.train.reconstruct_neus`.

    Defaults reproduce Wonder3D's instant-nsr-pl "ortho NeuS" run (3000 steps, 1024² images,
    ≈262 k samples per step). Use :meth:`cpu` for a run that finishes in minutes on a CPU.

    Attributes
    ----------
    steps : int
        Optimisation steps (original: 3000).
    seed : int
        Seed of every random draw (network init, rays, jitter, random points); original 42.
    image_size : int or None
        Side the views are resized to before training, with PIL's default filter as the
        original (1024). ``None`` keeps the views' own size.
    view_weights : tuple of 6 float
        Per-view loss weights in ``VIEW_NAMES`` order (asymmetric on purpose, as in the original).
    hash_levels, hash_features_per_level, hash_log2_table_size, hash_base_resolution, hash_per_level_scale
        Multi-resolution hash grid (10 levels × 2 features, table 2^19, base 32, ×1.3195).
    hash_start_levels, hash_level_update_steps
        Progressive levels: 4 active at step 0, one more every 1000 steps.
    feature_dim : int
        Output width of the SDF MLP (channel 0 is the SDF, all channels feed the colour MLP).
    sdf_hidden, sdf_hidden_layers, sphere_init_radius, softplus_beta
        SDF MLP: 1 hidden layer of 64, Softplus(β=100), weight norm, sphere init radius 0.5.
    color_hidden, color_hidden_layers
        Colour MLP: 2 hidden ReLU layers of 64, sigmoid output, no view direction.
    variance_init : float
        Initial ``s`` of the learned variance; ``inv_s = exp(10 s)``.
    occupancy_resolution, occupancy_update_every, occupancy_warmup_steps, occupancy_ema_decay,
    occupancy_threshold
        Occupancy grid over [−1, 1]³ (128³, every 16 steps, all cells during the first 256
        steps, EMA 0.95, binarised at ``min(mean, 1e-3)``).
    num_samples_per_ray : int
        Sets the marching step ``1.732 · 2 / num_samples_per_ray`` (original 1024 → 0.0034).
    initial_rays, max_rays, samples_per_step
        Dynamic ray count: start with 256 rays, rescale after each step to keep about
        ``samples_per_step`` samples (original ``256 · 1024``), at most 8192 rays.
    early_stop_eps : float
        Early ray termination: samples behind the point where a ray's transmittance is surely
        below this are not rendered (0 = off, as in the original, which renders the hidden
        interior of the object too; see :func:`~.sampling.drop_occluded`).
    cos_anneal_end : int
        Step at which NeuS' cosine annealing reaches 1 (original 20000, never reached).
    random_points, smoothness_jitter
        Uniform points per step for the sparsity and 3D-smoothness terms (2048), and the
        standard deviation of their jitter (0.01).
    lambda_normal, lambda_rgb_mse, lambda_mask, lambda_eikonal, lambda_sparsity, lambda_normal_smooth
        Loss weights 1.0, 0.5, 1.0, 0.2, 0.5, 1.0 (the original's terms of weight 0 —
        RGB L1, curvature, opaque, distortion — are not computed).
    sparsity_scale : float
        ``exp(−sparsity_scale·|SDF|)`` (100).
    normal_keep, rgb_keep, mask_keep : float
        Ranking loss: fraction of smallest per-ray errors kept (0.8, 0.8, 0.9).
    facing_threshold : float
        Normal loss only where cos(ray, target normal) < this (−0.1).
    geometry_aware : bool
        Weight normal errors by ``exp(|cos|) / Σ exp(|cos|)``.
    opacity_clamp : float
        Opacity clamped to ``[c, 1 − c]`` in the mask BCE (1e-3).
    lr_geometry, lr_texture, lr_variance, adam_betas, adam_eps, weight_decay
        AdamW (1e-3, 1e-2, 1e-3, (0.9, 0.99), 1e-15, torch's default weight decay 0.01).
    lr_constant_steps, lr_final_factor
        Learning rates constant for 500 steps, then exponential decay reaching 0.1× at ``steps``.
    mixed_precision : bool
        fp16 autocast with a gradient scaler on CUDA (ignored on CPU, where everything is float32).
    use_tiny_cuda_nn : bool
        Use tiny-cuda-nn's hash grid on CUDA when it is installed (never required).
    eval_chunk : int
        Points per chunk when evaluating the field without gradients (memory bound).
    """

    steps: int = 3000
    seed: int = 42
    image_size: int | None = 1024
    view_weights: tuple[float, ...] = WONDER3D_VIEW_WEIGHTS

    hash_levels: int = 10
    hash_features_per_level: int = 2
    hash_log2_table_size: int = 19
    hash_base_resolution: int = 32
    hash_per_level_scale: float = 1.3195079107728942
    hash_start_levels: int = 4
    hash_level_update_steps: int = 1000

    feature_dim: int = 13
    sdf_hidden: int = 64
    sdf_hidden_layers: int = 1
    sphere_init_radius: float = 0.5
    softplus_beta: float = 100.0
    color_hidden: int = 64
    color_hidden_layers: int = 2
    variance_init: float = 0.3

    occupancy_resolution: int = 128
    occupancy_update_every: int = 16
    occupancy_warmup_steps: int = 256
    occupancy_ema_decay: float = 0.95
    occupancy_threshold: float = 1e-3
    num_samples_per_ray: int = 1024
    initial_rays: int = 256
    max_rays: int = 8192
    samples_per_step: int = 256 * 1024
    early_stop_eps: float = 0.0
    cos_anneal_end: int = 20000
    random_points: int = 2048
    smoothness_jitter: float = 0.01

    lambda_normal: float = 1.0
    lambda_rgb_mse: float = 0.5
    lambda_mask: float = 1.0
    lambda_eikonal: float = 0.2
    lambda_sparsity: float = 0.5
    lambda_normal_smooth: float = 1.0
    sparsity_scale: float = 100.0
    normal_keep: float = 0.8
    rgb_keep: float = 0.8
    mask_keep: float = 0.9
    facing_threshold: float = -0.1
    geometry_aware: bool = True
    opacity_clamp: float = 1e-3

    lr_geometry: float = 1e-3
    lr_texture: float = 1e-2
    lr_variance: float = 1e-3
    adam_betas: tuple[float, float] = (0.9, 0.99)
    adam_eps: float = 1e-15
    weight_decay: float = 0.01
    lr_constant_steps: int = 500
    lr_final_factor: float = 0.1

    mixed_precision: bool = True
    use_tiny_cuda_nn: bool = True
    eval_chunk: int = 262144

    def __post_init__(self) -> None:
        positive_ints = (
            "steps", "hash_levels", "hash_features_per_level", "hash_base_resolution", "hash_start_levels",
            "hash_level_update_steps", "feature_dim", "sdf_hidden", "sdf_hidden_layers", "color_hidden",
            "color_hidden_layers", "occupancy_resolution", "occupancy_update_every", "num_samples_per_ray",
            "initial_rays", "max_rays", "samples_per_step", "eval_chunk",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"NeusConfig.{name} must be a positive integer, got {value!r}")
        if self.image_size is not None and (not isinstance(self.image_size, int) or self.image_size < 8):
            raise ValueError(f"NeusConfig.image_size must be None or an integer ≥ 8, got {self.image_size!r}")
        if len(self.view_weights) != 6 or any(w < 0 for w in self.view_weights):
            raise ValueError(f"NeusConfig.view_weights must be 6 non-negative numbers, got {self.view_weights!r}")
        if not 1 <= self.hash_log2_table_size <= 24:
            raise ValueError(f"NeusConfig.hash_log2_table_size must be in [1, 24], got {self.hash_log2_table_size}")
        if self.hash_start_levels > self.hash_levels:
            raise ValueError(
                f"NeusConfig.hash_start_levels ({self.hash_start_levels}) exceeds hash_levels ({self.hash_levels})"
            )
        if self.feature_dim < 1 or self.sdf_hidden_layers < 1:
            raise ValueError("NeusConfig.feature_dim and sdf_hidden_layers must be at least 1")
        for name in ("normal_keep", "rgb_keep", "mask_keep", "occupancy_ema_decay", "lr_final_factor"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"NeusConfig.{name} must be in (0, 1], got {value!r}")
        if not 0.0 <= self.early_stop_eps < 1.0:
            raise ValueError(f"NeusConfig.early_stop_eps must be in [0, 1), got {self.early_stop_eps!r}")
        if not 0.0 <= self.opacity_clamp < 0.5:
            raise ValueError(f"NeusConfig.opacity_clamp must be in [0, 0.5), got {self.opacity_clamp!r}")
        if self.lr_constant_steps < 0 or self.occupancy_warmup_steps < 0 or self.cos_anneal_end < 0:
            raise ValueError("NeusConfig step counts (lr_constant_steps, occupancy_warmup_steps, cos_anneal_end) "
                             "must not be negative")
        if self.initial_rays > self.max_rays:
            raise ValueError(f"NeusConfig.initial_rays ({self.initial_rays}) exceeds max_rays ({self.max_rays})")

    @property
    def render_step_size(self) -> float:
        """Marching step along rays (model units): ``1.732 · 2 / num_samples_per_ray``."""
        return _SQRT3_AS_IN_ORIGINAL * 2.0 / self.num_samples_per_ray

    def active_levels(self, step: int) -> int:
        """Hash-grid levels enabled at ``step`` (4 at step 0, +1 every 1000 steps, at most 10)."""
        return min(self.hash_start_levels + max(step, 0) // self.hash_level_update_steps, self.hash_levels)

    def finite_difference_eps(self, step: int) -> float:
        """Finite-difference step at ``step``: the cell size ``2 / res`` of the finest active level.

        ``res = base · scale^(levels − 1)``: 0.0272 with 4 levels, 0.0118 with 7.
        """
        resolution = self.hash_base_resolution * self.hash_per_level_scale ** (self.active_levels(step) - 1)
        return 2.0 / resolution

    def learning_rate_factor(self, step: int) -> float:
        """Multiplier of every learning rate at ``step``: 1 for ``lr_constant_steps`` steps,
        then ``lr_final_factor ** ((step − constant) / (steps − constant))``."""
        decay_steps = self.steps - self.lr_constant_steps
        if step <= self.lr_constant_steps or decay_steps <= 0:
            return 1.0
        return float(self.lr_final_factor ** ((step - self.lr_constant_steps) / decay_steps))

    def cos_anneal_ratio(self, step: int) -> float:
        """NeuS' cosine-annealing ratio at ``step`` (``min(1, step / cos_anneal_end)``; 1 if the end is 0)."""
        return 1.0 if self.cos_anneal_end == 0 else min(1.0, step / self.cos_anneal_end)

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dictionary of every field."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    def with_steps(self, steps: int) -> NeusConfig:
        """The same schedule compressed (or stretched) to ``steps`` steps.

        Every step-based number (level updates, constant-LR phase, occupancy warm-up and
        refresh interval, cosine-annealing end) is scaled by ``steps / self.steps``, so at the
        last step the run is at the same point of its schedule as the original at step 3000
        (7 hash levels, LR 0.1×, annealing ratio 0.15), and the occupancy grid has been
        refreshed as often: its EMA forgets stale cells at the same pace (refreshing every 16
        steps of a 1000-step run would keep most of the box occupied to the end).
        """
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        scale = steps / self.steps

        def scaled(value: int) -> int:
            return max(1, int(round(value * scale))) if value > 0 else 0

        return dataclasses.replace(
            self,
            steps=steps,
            hash_level_update_steps=scaled(self.hash_level_update_steps),
            lr_constant_steps=scaled(self.lr_constant_steps),
            occupancy_warmup_steps=scaled(self.occupancy_warmup_steps),
            occupancy_update_every=scaled(self.occupancy_update_every),
            cos_anneal_end=scaled(self.cos_anneal_end),
        )

    @classmethod
    def cpu(cls, steps: int = 3000) -> NeusConfig:
        """Reduced preset for a CPU: minutes instead of most of a day on 2 cores (6–8 idle, far more when shared).

        The original's model, loss terms, and optimiser are kept. The budget changes:

        * the original's 3000 steps by default; fewer compress the schedule with
          :meth:`with_steps`, so a run ends at the same point of it (6–7 hash levels, LR 0.1×).
          Compressing costs accuracy on anatomy: on the left thalamus 1000 steps reach 0.82×
          the visual hull's Chamfer, 3000 steps about 0.3×;
        * views are used at their own size (``image_size=None``; Wonder3D's are 256²;
          upsampling them to the original's 1024² was measured worse);
        * the marching step is 4× coarser (``num_samples_per_ray=256``, step 0.0135) and each
          step draws about 4096 samples instead of 262 144;
        * early ray termination (``early_stop_eps=1e-4``): samples hidden behind the surface
          are not rendered, so those 4096 samples cover more rays (at most 2048; 2–4× more on
          the benchmark sphere; on the left thalamus 35–200 per step over 1000 steps, up to
          ≈ 1100 by the end of 3000);
        * the occupancy grid is 64³ instead of 128³, and forgets faster (``occupancy_ema_decay``
          0.5 instead of 0.95): the warm-up marks a thick shell occupied while the surface is
          still soft (``inv_s`` ≈ 20), and at 0.95 per refresh most of it stays occupied for
          most of the run, so a step's samples cover fewer rays (on the 64² training-test
          sphere after 300 steps: 0.48 of the box occupied and 75 rays per step at 0.95, 0.30
          and 160 at 0.5; the ball itself fills 0.20).

        The smoothness term keeps the original's 2048 random points (256 until 2026-12-05:
        a third less time, but the flat left pallidum reached only 0.00464 CD/diag against
        0.00293–0.00310 with 2048).

        Three settings of the original cost accuracy here, and this preset drops them:

        * the cosine annealing runs to 1 at step 0 (``cos_anneal_end=0``, NeuS' unbiased
          estimator); the original stops at 0.15, where rays passing just outside the
          surface turn partly opaque and the surface shrinks to compensate;
        * no ranking (``normal_keep = rgb_keep = mask_keep = 1``): the dropped 10–20 % worst
          rays of a step are the silhouette rays of a still-growing surface, so an object
          larger than the initial sphere (radius 0.5; Wonder3D frames objects to ¾ of the
          image, radius up to 0.75) stops growing well inside its silhouettes;
        * no sparsity term (``lambda_sparsity=0``): ``exp(−100·|SDF|)`` at uniform random
          points penalises the volume of the thin shell around the surface, that is its
          area; without it the 3000-step Chamfer above the sampling floor drops by 12–21 %
          (sphere, left thalamus), and the floaters it exists to suppress are removed by
          meshing, which keeps the largest component.

        Measured on ground-truth views of a sphere of radius 0.75 (1000 steps, 256²): IoU
        0.77 with the original's settings at this budget, 0.98 with this preset
        (docs/reconstruction.md).
        """
        return dataclasses.replace(
            cls().with_steps(steps),
            image_size=None,
            num_samples_per_ray=256,
            samples_per_step=4096,
            initial_rays=256,
            max_rays=2048,
            early_stop_eps=1e-4,
            occupancy_resolution=64,
            occupancy_ema_decay=0.5,
            cos_anneal_end=0,
            lambda_sparsity=0.0,
            normal_keep=1.0,
            rgb_keep=1.0,
            mask_keep=1.0,
        )
