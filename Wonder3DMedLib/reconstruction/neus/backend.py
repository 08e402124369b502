"""The ``--recon neus`` backend: :func:`reconstruct_neus` behind the backends contract.

Data form: :class:`~Wonder3DMedLib.views.MultiviewImages` in;
:class:`~Wonder3DMedLib.reconstruction.backends.ReconstructedField` out, whose ``sdf`` is the
trained network queried in the model frame (a function, negative inside) with the original's
two-pass export (``refine=True``) and whose ``colors`` is the colour network at the vertices
(the original's vertex colours).
"""

from __future__ import annotations

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.progress import ProgressCallback
from Wonder3DMedLib.reconstruction.backends import ReconstructedField
from Wonder3DMedLib.reconstruction.neus.config import NeusConfig
from Wonder3DMedLib.reconstruction.neus.train import default_config, reconstruct_neus, resolve_device
from Wonder3DMedLib.views import MultiviewImages

__all__ = ["reconstruct_field", "backend_config"]


def backend_config(
    device, *, steps: int | None = None, config: NeusConfig | None = None, source: str = "files"
) -> NeusConfig:
    """The configuration a run uses: ``config`` or the default for the device and the views'
    ``source`` (:func:`~.train.default_config`), compressed to ``steps`` if given.

    Raises
    ------
    InputError
        ``steps`` is not a positive integer.
    """
    config = default_config(device, source) if config is None else config
    if steps is None:
        return config
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"the NeuS step count must be a positive integer, got {steps!r}")
    return config.with_steps(steps)


def reconstruct_field(
    views: MultiviewImages,
    *,
    resolution: int = 192,
    progress: ProgressCallback | None = None,
    steps: int | None = None,
    device: str = "auto",
    config: NeusConfig | None = None,
) -> ReconstructedField:
    """Fit NeuS-ortho to the views and hand its SDF and colour networks to meshing.

    Parameters
    ----------
    views : MultiviewImages
    resolution : int
        Marching-cubes grid of the export (unused by training; kept for the contract).
    progress : callable, optional
        Training progress with an ETA from the measured step times; may raise ``Cancelled``.
    steps : int, optional
        Compress the schedule to this many steps (:meth:`NeusConfig.with_steps`); default:
        3000 (the original's) on CUDA and, with the CPU preset, on CPU.
    device : {'auto', 'cpu', 'cuda', 'cuda:N'}
    config : NeusConfig, optional
        Replaces the default configuration (the device's, with equal view weights for
        ``'oracle'`` views).

    Returns
    -------
    ReconstructedField
        ``method='neus'``; ``sdf`` a function of model-frame points (model units, negative
        inside); ``refine=True``; ``colors`` from the colour network; ``details`` the training
        summary (steps, seconds, losses).
    """
    resolved = resolve_device(device)
    config = backend_config(resolved, steps=steps, config=config, source=views.source)
    result = reconstruct_neus(views, config=config, device=resolved, progress=progress)

    def colors(points, normals):
        # Matches Wonder3D: the export feeds the field's own SDF-gradient normal, not the mesh's.
        return result.color(points)

    return ReconstructedField(
        sdf=result.sdf, method="neus", colors=colors, refine=True,
        details={**result.stats.summary(), "config_steps": result.config.steps},
    )
