"""The neural SDF and colour field of the NeuS-ortho backend, in pure PyTorch.

Data form: points ``(n, 3)`` float32 tensors in the **original's world frame** (Blender,
z-up; the reconstruction box is [−1, 1]³, model units). The field is trained in that
frame, exactly as Wonder3D's instant-nsr-pl does, because the hash grid is not
rotation-invariant; :mod:`~Wonder3DMedLib.reconstruction.neus.train` converts model-frame
queries with :func:`~Wonder3DMedLib.reconstruction.cameras.model_to_world_rotation`.

Parts (Wonder3D ``models/geometry.py``, ``network_utils.py``, ``texture.py``, ``neus.py``):

* :class:`HashGridEncoding` — tiny-cuda-nn's multi-resolution hash grid re-implemented
  (same level resolutions, dense/hashed tables, coherent prime hash, trilinear weights,
  init U(−1e-4, 1e-4)) with the *progressive band* mask: only the first
  ``active_levels`` levels contribute.
* :class:`SdfNetwork` — ``[xyz, encoding]`` (23) → 64 → 13, Softplus(β=100), weight
  norm, geometric sphere initialisation (radius 0.5); channel 0 is the SDF.
* :class:`ColorNetwork` — 13 features + 3 normal → 64 → 64 → 3, ReLU, sigmoid; no view direction.
* :class:`Variance` — the scalar ``s`` with ``inv_s = exp(10 s)``.
* :class:`NeusField` — encoding + SDF network, with finite-difference gradients whose
  step follows the finest active level.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from Wonder3DMedLib.reconstruction.neus.config import NeusConfig

__all__ = [
    "HASH_PRIMES",
    "HashGridEncoding",
    "SdfNetwork",
    "ColorNetwork",
    "Variance",
    "NeusField",
    "FieldOutput",
    "tiny_cuda_nn_available",
]

#: tiny-cuda-nn's coherent prime hash factors for x, y, z (the hash is the XOR of coordinate × factor).
HASH_PRIMES = (1, 2654435761, 805459861)

_UINT32 = 0xFFFFFFFF
_PARAM_INIT_SCALE = 1e-4


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The autocast dtype active for ``device_type``, or None (works on torch 2.1 to current)."""
    try:
        if torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
        return None
    except (TypeError, AttributeError):  # torch < 2.4: only the CUDA query exists
        if device_type == "cuda" and torch.is_autocast_enabled():
            return torch.get_autocast_gpu_dtype()
        return None


def tiny_cuda_nn_available() -> bool:
    """Whether the optional ``tinycudann`` package is importable (never required)."""
    return importlib.util.find_spec("tinycudann") is not None


def _level_layout(config: NeusConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """tiny-cuda-nn's per-level scale, resolution, table size and dense flag (float32 maths as on the GPU)."""
    log2_scale = np.float32(np.log2(config.hash_per_level_scale))
    scales, resolutions, sizes, dense = [], [], [], []
    table_cap = 1 << config.hash_log2_table_size
    for level in range(config.hash_levels):
        scale = np.float32(np.exp2(np.float32(level) * log2_scale) * np.float32(config.hash_base_resolution) - 1.0)
        resolution = int(np.ceil(scale)) + 1
        dense_size = resolution**3
        size = min(((dense_size + 7) // 8) * 8, table_cap)
        scales.append(scale)
        resolutions.append(resolution)
        sizes.append(size)
        dense.append(dense_size <= size)
    return np.array(scales, np.float32), np.array(resolutions), np.array(sizes), np.array(dense)


class HashGridEncoding(nn.Module):
    """Multi-resolution hash encoding with a progressive level mask (tiny-cuda-nn "HashGrid").

    For level ``l``: ``scale = base · per_level_scale^l − 1``, ``resolution = ceil(scale) + 1``;
    the level's table holds ``min(next_multiple(resolution³, 8), 2^log2_table_size)`` entries.
    Levels whose ``resolution³`` fits are indexed densely (``x + y·res + z·res²``), finer ones
    by the coherent prime hash ``x ⊕ 2654435761·y ⊕ 805459861·z`` (uint32), both modulo the
    table size. A point ``p ∈ [0, 1]³`` sits at grid position ``p · scale + 0.5``; its
    feature is the trilinear blend of the 8 surrounding corners.

    Attributes
    ----------
    table : Parameter (features_per_level, total_entries) float32
        All levels' tables, level after level, one row per feature channel (one-dimensional
        gathers are several times faster on CPU than gathering feature pairs).
    active_levels : int
        Levels contributing to the output; the others output zeros (the original multiplies
        them by a 0/1 mask, which gives the same values and gradients).
    """

    def __init__(self, config: NeusConfig):
        super().__init__()
        scales, resolutions, sizes, dense = _level_layout(config)
        self.n_levels = config.hash_levels
        self.features_per_level = config.hash_features_per_level
        self.scales = scales.tolist()
        self.resolutions = resolutions.tolist()
        self.sizes = sizes.tolist()
        self.dense = dense.tolist()
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
        table = torch.empty(self.features_per_level, int(sizes.sum()))
        nn.init.uniform_(table, -_PARAM_INIT_SCALE, _PARAM_INIT_SCALE)
        self.table = nn.Parameter(table)
        self.active_levels = config.hash_start_levels

    @property
    def n_output_dims(self) -> int:
        """Width of the encoding: levels × features per level."""
        return self.n_levels * self.features_per_level

    def corner_rows_and_weights(self, x: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Table entries and trilinear weights of the 8 corners around each point, for one level.

        Parameters
        ----------
        x : (n, 3) float — positions in [0, 1]³ (the box mapped to the unit cube)
        level : int

        Returns
        -------
        entries : (8, n) int32 or int64 — columns of :attr:`table` (level offset included);
            corner ``c`` takes ``+1`` in x if ``c & 1``, in y if ``c & 2``, in z if ``c & 4``
        weights : (8, n) float32
        """
        position = x.float().t() * self.scales[level] + 0.5  # (3, n)
        floor = torch.floor(position)
        fraction = position - floor
        size, resolution = self.sizes[level], self.resolutions[level]
        # Inside the box the corner coordinates are small and non-negative: int32 maths
        # (about 3x faster on CPU). Elsewhere, int64 with tiny-cuda-nn's uint32 wrap-around.
        in_range = x.numel() == 0 or (float(floor.min()) >= 0 and float(floor.max()) < 2**20)
        grid = floor.to(torch.int32 if in_range else torch.int64)
        pairs = torch.stack([grid, grid + 1], dim=1)  # (3, 2, n): axis, corner bit, point
        if self.dense[level]:
            px, py, pz = pairs[0], pairs[1] * resolution, pairs[2] * (resolution * resolution)
            combined = pz[:, None, None] + py[None, :, None] + px[None, None, :]
        else:
            mask = size - 1  # hashed tables are 2^k long: the modulo keeps the low k bits
            wide = pairs.to(torch.int64)
            px = wide[0] & mask
            py = (wide[1] * HASH_PRIMES[1]) & mask
            pz = (wide[2] * HASH_PRIMES[2]) & mask
            if in_range:
                px, py, pz = px.to(torch.int32), py.to(torch.int32), pz.to(torch.int32)
            combined = pz[:, None, None] ^ py[None, :, None] ^ px[None, None, :]
        if not in_range:
            combined = combined & _UINT32
        entries = (combined % size).reshape(8, -1) + self.offsets[level]
        weight_pairs = torch.stack([1.0 - fraction, fraction], dim=1)  # (3, 2, n)
        weights = weight_pairs[2][:, None, None] * weight_pairs[1][None, :, None] * weight_pairs[0][None, None, :]
        return entries, weights.reshape(8, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode points.

        Parameters
        ----------
        x : (n, 3) float — positions in [0, 1]³

        Returns
        -------
        (n, levels · features_per_level) float32
            Level-major (level 0's features first); inactive levels are zero.
        """
        n = x.shape[0]
        active = max(0, min(self.active_levels, self.n_levels))
        if active == 0 or n == 0:
            return x.new_zeros(n, self.n_output_dims, dtype=torch.float32)
        parts = [self.corner_rows_and_weights(x, level) for level in range(active)]
        dtype = torch.int64 if any(p[0].dtype == torch.int64 for p in parts) else torch.int32
        entries = torch.stack([p[0].to(dtype) for p in parts]).reshape(-1)  # (active * 8 * n,)
        weights = torch.stack([p[1] for p in parts])  # (active, 8, n)
        # One gather from the flattened table for all feature channels: its backward is a
        # single scatter into one table-sized buffer.
        plane = self.table.shape[1]
        channels = torch.cat([entries + channel * plane for channel in range(self.features_per_level)])
        corners = self.table.view(-1).index_select(0, channels).view(self.features_per_level, active, 8, n)
        features = (weights * corners).sum(dim=2)  # (features, active, n)
        features = features.permute(2, 1, 0).reshape(n, active * self.features_per_level)
        if active < self.n_levels:
            features = F.pad(features, (0, (self.n_levels - active) * self.features_per_level))
        return features


class _TinyCudaNNHashGrid(nn.Module):
    """tiny-cuda-nn's own HashGrid behind the same interface (CUDA only, used when installed)."""

    def __init__(self, config: NeusConfig):
        super().__init__()
        import tinycudann

        self.n_levels = config.hash_levels
        self.features_per_level = config.hash_features_per_level
        self.encoding = tinycudann.Encoding(
            3,
            {
                "otype": "HashGrid",
                "n_levels": config.hash_levels,
                "n_features_per_level": config.hash_features_per_level,
                "log2_hashmap_size": config.hash_log2_table_size,
                "base_resolution": config.hash_base_resolution,
                "per_level_scale": config.hash_per_level_scale,
            },
        )
        self.active_levels = config.hash_start_levels

    @property
    def n_output_dims(self) -> int:
        return self.n_levels * self.features_per_level

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoding(x)
        mask = torch.zeros(self.n_output_dims, device=features.device, dtype=features.dtype)
        mask[: self.active_levels * self.features_per_level] = 1.0
        return features * mask


def _linear(dim_in: int, dim_out: int) -> nn.Linear:
    return nn.Linear(dim_in, dim_out, bias=True)


class SdfNetwork(nn.Module):
    """SDF MLP with geometric sphere initialisation and weight normalisation.

    ``(n, 3 + encoding) → (n, feature_dim)``; output channel 0 is the signed distance
    (≈ ``|x| − radius`` at initialisation), all channels are the geometry feature.
    """

    def __init__(self, dim_in: int, config: NeusConfig):
        super().__init__()
        hidden, dim_out = config.sdf_hidden, config.feature_dim
        layers: list[nn.Module] = []
        dims = [dim_in] + [hidden] * config.sdf_hidden_layers + [dim_out]
        for index in range(len(dims) - 1):
            layer = _linear(dims[index], dims[index + 1])
            is_first, is_last = index == 0, index == len(dims) - 2
            with torch.no_grad():
                # Matches Wonder3D: network_utils.VanillaMLP.make_linear sphere_init branch.
                if is_last:
                    nn.init.normal_(layer.weight, mean=math.sqrt(math.pi) / math.sqrt(dims[index]), std=1e-4)
                    nn.init.constant_(layer.bias, -config.sphere_init_radius)
                elif is_first:
                    nn.init.constant_(layer.bias, 0.0)
                    nn.init.constant_(layer.weight, 0.0)
                    nn.init.normal_(layer.weight[:, :3], 0.0, math.sqrt(2) / math.sqrt(dims[index + 1]))
                else:
                    nn.init.constant_(layer.bias, 0.0)
                    nn.init.normal_(layer.weight, 0.0, math.sqrt(2) / math.sqrt(dims[index + 1]))
            layers.append(nn.utils.parametrizations.weight_norm(layer))
            if not is_last:
                layers.append(nn.Softplus(beta=config.softplus_beta))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Matches Wonder3D: VanillaMLP runs in float32 with autocast disabled.
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.layers(x.float())


class ColorNetwork(nn.Module):
    """Colour MLP: ``[feature (13), normal (3)] → 64 → 64 → 3``, ReLU, sigmoid output.

    The view direction is not an input (the original disables it), so the colour of a
    surface point is view-independent ("albedo-like").
    """

    def __init__(self, config: NeusConfig):
        super().__init__()
        dims = [config.feature_dim + 3] + [config.color_hidden] * config.color_hidden_layers + [3]
        layers: list[nn.Module] = []
        for index in range(len(dims) - 1):
            layer = _linear(dims[index], dims[index + 1])
            with torch.no_grad():
                nn.init.constant_(layer.bias, 0.0)
                nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
            layers.append(layer)
            if index < len(dims) - 2:
                layers.append(nn.ReLU())
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
        """``(n, feature_dim)``, ``(n, 3)`` unit normals → ``(n, 3)`` float32 colours in [0, 1]."""
        with torch.autocast(device_type=features.device.type, enabled=False):
            inputs = torch.cat([features.float(), normals.float()], dim=-1)
            return torch.sigmoid(self.layers(inputs))


class Variance(nn.Module):
    """NeuS' learned sharpness: one scalar ``s``; ``inv_s = exp(10 s)`` (init s = 0.3 → inv_s ≈ 20)."""

    def __init__(self, config: NeusConfig):
        super().__init__()
        self.variance = nn.Parameter(torch.tensor(float(config.variance_init)))

    @property
    def inv_s(self) -> torch.Tensor:
        """0-d tensor: the inverse standard deviation of the logistic density."""
        return torch.exp(self.variance * 10.0)


class FieldOutput:
    """What :meth:`NeusField.forward` computed (plain holder; tensors keep their graph).

    Attributes
    ----------
    sdf : (n,) float32
    gradient : (n, 3) float32 or None — finite-difference SDF gradient (not normalised)
    feature : (n, feature_dim) float32 or None
    """

    __slots__ = ("sdf", "gradient", "feature")

    def __init__(self, sdf: torch.Tensor, gradient: torch.Tensor | None, feature: torch.Tensor | None):
        self.sdf = sdf
        self.gradient = gradient
        self.feature = feature


class NeusField(nn.Module):
    """Hash-grid encoding + SDF MLP over the box [−1, 1]³ (world frame).

    Call :meth:`set_step` at the start of every training step: it enables hash levels
    progressively and sets the finite-difference step to the finest active cell size.
    """

    def __init__(self, config: NeusConfig, *, accelerate: bool = False):
        super().__init__()
        self.config = config
        self.radius = 1.0
        self.encoding = _TinyCudaNNHashGrid(config) if accelerate else HashGridEncoding(config)
        self.network = SdfNetwork(3 + self.encoding.n_output_dims, config)
        self.finite_difference_eps = config.finite_difference_eps(0)

    def set_step(self, step: int) -> None:
        """Progressive schedule: active hash levels and finite-difference step at ``step``."""
        self.encoding.active_levels = self.config.active_levels(step)
        self.finite_difference_eps = self.config.finite_difference_eps(step)

    def _evaluate(self, points: torch.Tensor) -> torch.Tensor:
        unit = (points + self.radius) / (2.0 * self.radius)  # the box -> [0, 1]^3
        encoded = self.encoding(unit)
        autocast_dtype = _autocast_dtype(points.device.type)
        if autocast_dtype is not None:
            # Matches Wonder3D: tiny-cuda-nn's encoding outputs half precision under fp16 training.
            encoded = encoded.to(autocast_dtype)
        return self.network(torch.cat([unit * 2.0 - 1.0, encoded.to(unit.dtype)], dim=-1))

    def forward(self, points: torch.Tensor, *, with_grad: bool = True, with_feature: bool = True) -> FieldOutput:
        """Evaluate the field.

        Parameters
        ----------
        points : (n, 3) float32 — world frame, model units (the box is [−1, 1]³)
        with_grad : bool
            Also compute the central finite-difference gradient with step
            :attr:`finite_difference_eps`; the six offset points are clamped to the box,
            as in the original.
        with_feature : bool
            Also return the 13-channel feature.

        Returns
        -------
        FieldOutput
        """
        if not with_grad:
            out = self._evaluate(points)
            return FieldOutput(out[:, 0], None, out if with_feature else None)
        eps = self.finite_difference_eps
        offsets = points.new_tensor(
            [[eps, 0, 0], [-eps, 0, 0], [0, eps, 0], [0, -eps, 0], [0, 0, eps], [0, 0, -eps]]
        )
        shifted = (points[:, None, :] + offsets).clamp(-self.radius, self.radius).reshape(-1, 3)
        n = points.shape[0]
        out = self._evaluate(torch.cat([points, shifted], dim=0))
        centre = out[:n]
        shifted_sdf = out[n:, 0].view(n, 6)
        gradient = 0.5 * (shifted_sdf[:, 0::2] - shifted_sdf[:, 1::2]) / eps
        return FieldOutput(centre[:, 0], gradient, centre if with_feature else None)
