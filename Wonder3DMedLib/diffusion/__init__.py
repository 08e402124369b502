"""Wonder3D v1.0 multiview cross-domain diffusion (torch; the only subpackage that imports diffusers/transformers).

``UNetMV2DConditionModel`` is the weight-compatible UNet, ``MVDiffusionImagePipeline`` the
sampling pipeline (one framed image -> 6 normal maps + 6 colour images + masks), and
``generate_views`` the one-call entry point the command line and the worker use.
"""

from Wonder3DMedLib.diffusion.cameras import CameraTable
from Wonder3DMedLib.diffusion.generate import generate_views, load_pipeline, resolve_device, resolve_dtype
from Wonder3DMedLib.diffusion.pipeline import MVDiffusionImagePipeline, MVDiffusionPipelineOutput
from Wonder3DMedLib.diffusion.unet_mv2d import UNetMV2DConditionModel

__all__ = [
    "UNetMV2DConditionModel",
    "MVDiffusionImagePipeline",
    "MVDiffusionPipelineOutput",
    "CameraTable",
    "generate_views",
    "load_pipeline",
    "resolve_device",
    "resolve_dtype",
]
