"""What a NeuS-ortho reconstruction hands to meshing: a queryable SDF and colour field.

Data form: numpy arrays in the **model frame** (front camera axes: x image-right, y
image-up, z towards the front camera; the box [−1, 1]³; model units) in and out. The
trained networks live in the original's world frame (z-up); :class:`NeusResult` converts
with :func:`~Wonder3DMedLib.reconstruction.cameras.model_to_world_rotation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from Wonder3DMedLib.reconstruction.cameras import model_to_world_rotation
from Wonder3DMedLib.reconstruction.neus.config import NeusConfig
from Wonder3DMedLib.reconstruction.neus.field import ColorNetwork, NeusField, Variance

__all__ = ["TrainingStats", "NeusResult", "grid_cell_centres"]


def grid_cell_centres(resolution: int) -> np.ndarray:
    """Cell-centre coordinates of a ``resolution``-cell split of [−1, 1]: ``−1 + (2i + 1)/R``.

    Returns
    -------
    (resolution,) float64 — model units
    """
    if int(resolution) != resolution or resolution < 2:
        raise ValueError(f"resolution must be an integer of at least 2, got {resolution!r}")
    return -1.0 + (2.0 * np.arange(resolution) + 1.0) / resolution


@dataclass(frozen=True)
class TrainingStats:
    """How the optimisation went.

    Attributes
    ----------
    steps : int — optimisation steps run
    seconds : float — wall time of the whole reconstruction (data preparation included)
    cpu_seconds : float — CPU time of this process over the same span, all threads (on a
        shared machine wall time can be several times larger)
    seconds_per_step : float — mean wall time of one step (occupancy updates included)
    device : str — where it ran
    initial_losses, final_losses : dict of str -> float
        Mean of each loss term (and ``total``) over the first / last ``window`` steps.
    window : int — steps averaged in those means
    history : dict of str -> (steps,) float64 arrays
        Per step: every loss term, ``total``, ``rays``, ``samples``, ``inv_s``, ``seconds``.
    """

    steps: int
    seconds: float
    cpu_seconds: float
    seconds_per_step: float
    device: str
    initial_losses: dict
    final_losses: dict
    window: int
    history: dict = field(repr=False)

    @property
    def final_inv_s(self) -> float:
        """NeuS sharpness ``exp(10 s)`` at the last step (≈ 20 at the start)."""
        return float(self.history["inv_s"][-1])

    def summary(self) -> dict:
        """JSON-friendly summary (no per-step history)."""
        return {
            "steps": self.steps,
            "seconds": round(self.seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "seconds_per_step": round(self.seconds_per_step, 4),
            "device": self.device,
            "initial_losses": {k: round(v, 6) for k, v in self.initial_losses.items()},
            "final_losses": {k: round(v, 6) for k, v in self.final_losses.items()},
            "final_inv_s": round(self.final_inv_s, 3),
            "final_rays": int(self.history["rays"][-1]),
            "mean_samples_per_step": float(np.mean(self.history["samples"])),
        }


@dataclass(frozen=True, eq=False)
class NeusResult:
    """A trained NeuS-ortho field, queried in the model frame.

    Attributes
    ----------
    field : NeusField — hash grid + SDF MLP (world frame), at its export state
    texture : ColorNetwork
    variance : Variance
    config : NeusConfig — the configuration it was trained with
    stats : TrainingStats
    device : torch.device — where the networks live (queries run there)
    """

    field: NeusField
    texture: ColorNetwork
    variance: Variance
    config: NeusConfig
    stats: TrainingStats
    device: torch.device

    def _world_tensor(self, points_model: np.ndarray) -> torch.Tensor:
        world = points_model @ model_to_world_rotation().T
        return torch.as_tensor(world, dtype=torch.float32, device=self.device)

    @staticmethod
    def _checked(points: np.ndarray, name: str) -> np.ndarray:
        array = np.asarray(points, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != 3:
            raise ValueError(f"{name} must have shape (n, 3), got {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} must be finite")
        return array

    @torch.no_grad()
    def sdf(self, points: np.ndarray) -> np.ndarray:
        """Signed distance at model-frame points.

        Parameters
        ----------
        points : (n, 3) float — model frame, model units

        Returns
        -------
        (n,) float64
            Negative inside the surface, positive outside, in model units (the field is
            trained to unit gradient norm, so values near the surface are distances).
            Points outside the box [−1, 1]³ are evaluated as the original would (the
            encoding is not clamped) but were never trained: treat them as outside.
        """
        points = self._checked(points, "points")
        chunk = self.config.eval_chunk
        values = [
            self.field(self._world_tensor(points[start : start + chunk]), with_grad=False, with_feature=False).sdf
            for start in range(0, len(points), chunk)
        ]
        if not values:
            return np.zeros(0)
        return torch.cat(values).double().cpu().numpy()

    def sdf_grid(self, resolution: int) -> np.ndarray:
        """The SDF sampled at the cell centres of a ``resolution``³ split of the box.

        Parameters
        ----------
        resolution : int
            Cells per side, R.

        Returns
        -------
        (R, R, R) float32
            ``grid[i, j, k] = sdf(x_i, y_j, z_k)`` with ``x_i = −1 + (2i + 1)/R`` (same for
            y, z): index order (x, y, z) of the **model frame**, voxel size ``2/R``, the
            centre of voxel 0 at ``−1 + 1/R``. Negative inside.
        """
        centres = grid_cell_centres(resolution)
        grid = np.empty((resolution,) * 3, dtype=np.float32)
        y, z = np.meshgrid(centres, centres, indexing="ij")
        plane = np.stack([np.zeros(y.size), y.ravel(), z.ravel()], axis=1)
        for i, x in enumerate(centres):
            plane[:, 0] = x
            grid[i] = self.sdf(plane).reshape(resolution, resolution)
        return grid

    @torch.no_grad()
    def color(self, points: np.ndarray, normals: np.ndarray | None = None) -> np.ndarray:
        """Colour of the texture network at surface points.

        Parameters
        ----------
        points : (n, 3) float — model frame (mesh vertices)
        normals : (n, 3) float, optional — model-frame normals fed to the colour network.
            ``None`` uses the field's own SDF-gradient normals, as the original's export
            does (it also passes ``−normal`` as view direction, which the network ignores).

        Returns
        -------
        (n, 3) float64 in [0, 1]
        """
        points = self._checked(points, "points")
        if normals is not None:
            normals = self._checked(normals, "normals")
            if normals.shape != points.shape:
                raise ValueError(f"normals must have the shape of points {points.shape}, got {normals.shape}")
        chunk = self.config.eval_chunk
        colors = []
        for start in range(0, len(points), chunk):
            world = self._world_tensor(points[start : start + chunk])
            out = self.field(world, with_grad=normals is None, with_feature=True)
            if normals is None:
                direction = F.normalize(out.gradient, p=2, dim=-1)
            else:
                direction = F.normalize(self._world_tensor(normals[start : start + chunk]), p=2, dim=-1)
            colors.append(self.texture(out.feature, direction))
        if not colors:
            return np.zeros((0, 3))
        return torch.cat(colors).double().cpu().numpy()
