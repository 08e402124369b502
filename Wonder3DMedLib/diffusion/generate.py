"""One call from a framed input to the six generated views: device and precision choice,
checkpoint loading, sampling, masks.

Data form: input as accepted by :meth:`MVDiffusionImagePipeline.prepare_images`; output
:class:`~Wonder3DMedLib.views.MultiviewImages` (``source='diffusion'``, normals in the front
camera's frame, masks from :mod:`Wonder3DMedLib.diffusion.masks`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from Wonder3DMedLib.diffusion.cameras import CameraTable
from Wonder3DMedLib.diffusion.pipeline import DEFAULT_SEED, MVDiffusionImagePipeline
from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.progress import ProgressCallback, report
from Wonder3DMedLib.views import MultiviewImages

__all__ = ["DTYPE_NAMES", "resolve_device", "resolve_dtype", "load_pipeline", "check_sampling_options", "generate_views"]

#: Precisions accepted by ``--dtype`` (besides ``auto``).
DTYPE_NAMES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA, then Apple MPS, then CPU; other names are checked to exist.

    Raises
    ------
    InputError
        Unknown device name, or a device this machine does not have.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(f"unknown device {name!r}", hint="use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise InputError(f"device {name!r} is not available on this machine", hint="use --device cpu (or auto)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"device {name!r} is not available on this machine", hint="use --device cpu (or auto)")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` -> float16 on CUDA, float32 elsewhere; float16 is refused on the CPU.

    Raises
    ------
    InputError
        Unknown name, or float16 on the CPU (slow, and not every CPU operation supports it).
    """
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name not in DTYPE_NAMES:
        raise InputError(f"unknown precision {name!r}", hint=f"use auto or one of {', '.join(DTYPE_NAMES)}")
    if name == "float16" and device.type == "cpu":
        raise InputError("float16 needs a GPU", hint="on the CPU use float32 (the default) or bfloat16")
    return DTYPE_NAMES[name]


def load_pipeline(weights: str | Path | None = None, *, device: str = "auto", dtype: str = "auto") -> MVDiffusionImagePipeline:
    """Find the checkpoint (``weights``, ``$WONDER3DMED_WEIGHTS``, the offline HF cache) and load it."""
    torch_device = resolve_device(device)
    return MVDiffusionImagePipeline.from_pretrained(
        weights, torch_dtype=resolve_dtype(dtype, torch_device), device=torch_device
    )


def check_sampling_options(
    *, steps: int, guidance: float, eta: float, seed: int, pipeline: MVDiffusionImagePipeline | None = None
) -> None:
    """Refuse sampling options that cannot work, naming the option (before or after loading).

    Raises
    ------
    InputError
        Steps below 1 (or above what the pipeline's scheduler allows), a guidance scale or η
        that is not a finite number (η also below 0), a seed outside 0 … 2⁶⁴ − 1.
    """
    import math

    limit = pipeline.max_inference_steps() if pipeline is not None else None
    if not (isinstance(steps, int) and steps >= 1 and (limit is None or steps <= limit)):
        allowed = f"from 1 to {limit}" if limit is not None else "of at least 1"
        raise InputError(f"the number of steps (--steps) must be a whole number {allowed}, got {steps!r}")
    if not math.isfinite(guidance):
        raise InputError(f"the guidance scale (--guidance) must be a finite number, got {guidance!r}")
    if not (math.isfinite(eta) and eta >= 0):
        raise InputError(f"DDIM eta (--eta) must be 0 or more (0 deterministic, 1 as Wonder3D), got {eta!r}")
    if not (isinstance(seed, int) and 0 <= seed < 2**64):
        raise InputError(f"the seed (--seed) must be a whole number from 0 to 2^64 - 1, got {seed!r}")


def generate_views(
    image,
    *,
    pipeline: MVDiffusionImagePipeline,
    steps: int = 50,
    guidance: float = 1.0,
    eta: float = 1.0,
    seed: int = DEFAULT_SEED,
    camera_table: CameraTable | str = CameraTable.PIPELINE,
    already_framed: bool = False,
    progress: ProgressCallback | None = None,
) -> MultiviewImages:
    """Generate the six views of one framed input with Wonder3D's defaults.

    Parameters
    ----------
    image
        A framed image or RGBA image (see :meth:`MVDiffusionImagePipeline.prepare_images`).
    pipeline : MVDiffusionImagePipeline
        From :func:`load_pipeline`.
    steps, guidance, eta, seed
        DDIM steps, classifier-free guidance scale (1 = off), DDIM η, sampler seed.
    camera_table : {'pipeline', 'dataset'}
    already_framed : bool
        The input is an already framed RGBA image (``wonder3dmed prepare`` output).
    progress : ProgressCallback, optional
        May raise :class:`~Wonder3DMedLib.errors.Cancelled`.

    Returns
    -------
    MultiviewImages
        ``source='diffusion'``; ``metadata`` holds the sampling parameters.
    """
    check_sampling_options(steps=steps, guidance=guidance, eta=eta, seed=seed, pipeline=pipeline)
    report(progress, 0.0, "sampling")
    output = pipeline(
        image,
        num_inference_steps=steps,
        guidance_scale=guidance,
        eta=eta,
        seed=seed,
        camera_table_variant=camera_table,
        already_framed=already_framed,
        output_type="np",
        progress=progress,
    )
    meta = output.metadata
    description = (
        f"Wonder3D v1.0 multiview diffusion: {steps} DDIM steps, guidance {guidance:g}, eta {eta:g}, seed {seed}, "
        f"{meta['dtype']} on {meta['device']}"
    )
    return output.to_multiview_images(description=description)
