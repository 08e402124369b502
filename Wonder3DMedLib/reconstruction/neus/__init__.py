"""NeuS-ortho backend: Wonder3D's instant-nsr-pl reconstruction, faithfully, in pure PyTorch.

Submodules: :mod:`.config` (every number, the original's values as defaults, a CPU
preset), :mod:`.field` (progressive hash grid, SDF and colour MLPs, variance),
:mod:`.sampling` (occupancy grid, ray marching, NeuS alpha, compositing), :mod:`.losses`,
:mod:`.data` (views → per-pixel targets), :mod:`.train` (the optimisation) and
:mod:`.result` (the queryable SDF handed to meshing).

Entry point::

    from Wonder3DMedLib.reconstruction.neus import reconstruct_neus, NeusConfig
    result = reconstruct_neus(views, config=NeusConfig.cpu(), device="auto", progress=callback)
    grid = result.sdf_grid(192)          # (192, 192, 192), model frame, negative inside

As a ``--recon`` backend (:mod:`.backend`): ``reconstruct_field(views, *, resolution, progress,
steps=None, device='auto', config=None) -> ReconstructedField``.
"""

from Wonder3DMedLib.reconstruction.neus.backend import reconstruct_field
from Wonder3DMedLib.reconstruction.neus.config import NeusConfig
from Wonder3DMedLib.reconstruction.neus.result import NeusResult, TrainingStats, grid_cell_centres
from Wonder3DMedLib.reconstruction.neus.train import reconstruct_neus

__all__ = ["NeusConfig", "reconstruct_field", "NeusResult", "TrainingStats", "grid_cell_centres", "reconstruct_neus"]
