"""Wonder3D checkpoint folders (hub layout) -> Wonder3DMed's model objects, and back.

Data form: a local folder in the layout of ``flamehaze1115/wonder3d-v1.0`` —
``model_index.json``, ``unet/``, ``vae/``, ``image_encoder/``, ``feature_extractor/``,
``scheduler/`` (see :mod:`Wonder3DMedLib.weights`). Weights are ``.safetensors`` or torch
pickles (``.bin``; the hub stores float16 pickles).

Rules:

* Pickles are read with torch's weights-only unpickler, which only rebuilds tensors and
  plain containers and refuses anything that would run code; nothing here ever calls an
  unrestricted ``torch.load``, and the network is never used (every loader reads a local
  folder; transformers and diffusers are handed tensors, not paths to pickles).
* ``model_index.json`` names the UNet by the original module
  ``mvdiffusion.models.unet_mv2d_condition``; that (or our own module path) maps to
  :class:`~Wonder3DMedLib.diffusion.unet_mv2d.UNetMV2DConditionModel`.
* Old joint-attention key names are renamed (``attn_joint_twice``/``norm_joint_twice`` ->
  ``*_mid``, ``attn_joint``/``norm_joint`` -> ``*_last``), and stale UNet config keys of the
  hub config are reported and ignored (or, when their new name is absent, translated).
* Keys and shapes must then fit the model built from the config exactly; anything else is a
  :class:`~Wonder3DMedLib.errors.WeightsError` naming the file and the offending keys.
"""

from __future__ import annotations

import inspect
import json
import logging
import pickle
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from Wonder3DMedLib.errors import WeightsError
from Wonder3DMedLib.weights import HOW_TO_GET_WEIGHTS

__all__ = [
    "UNET_MODULES",
    "ORIGINAL_UNET_MODULE",
    "LEGACY_KEY_RENAMES",
    "STALE_UNET_CONFIG_KEYS",
    "read_state_dict",
    "rename_legacy_keys",
    "unet_init_kwargs",
    "read_model_index",
    "load_unet",
    "load_vae",
    "load_image_encoder",
    "load_feature_extractor",
    "load_scheduler",
    "write_model_index",
    "transformers_progress_bars_off",
]

logger = logging.getLogger(__name__)

#: Module of the UNet class as the hub's model_index.json names it.
ORIGINAL_UNET_MODULE = "mvdiffusion.models.unet_mv2d_condition"

#: model_index.json module names that mean our UNet class.
UNET_MODULES = (ORIGINAL_UNET_MODULE, "Wonder3DMedLib.diffusion.unet_mv2d")

#: Old -> current names of the joint (cross-domain) attention modules in UNet state dicts.
LEGACY_KEY_RENAMES = (
    ("attn_joint_twice.", "attn_joint_mid."),
    ("norm_joint_twice.", "norm_joint_mid."),
    ("attn_joint.", "attn_joint_last."),
    ("norm_joint.", "norm_joint_last."),
)

#: Stale UNet config keys of the hub config: old name -> current name (None: no successor).
STALE_UNET_CONFIG_KEYS = {
    "joint_attention": "cd_attention_last",
    "joint_attention_twice": "cd_attention_mid",
    "cross_domain_attention": None,
}

# Components of a Wonder3D pipeline folder: (library, class) pairs accepted in model_index.json.
_EXPECTED_COMPONENTS = {
    "vae": ("diffusers", "AutoencoderKL"),
    "image_encoder": ("transformers", "CLIPVisionModelWithProjection"),
    "feature_extractor": ("transformers", "CLIPImageProcessor"),
}

# Keys that older transformers saved as persistent buffers; current models rebuild them.
_REBUILT_BUFFER_SUFFIXES = ("position_ids",)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weights file without executing code.

    Parameters
    ----------
    path : str or Path
        ``.safetensors``, or a torch pickle (``.bin``, ``.pt``, ``.pth``) read with
        ``torch.load(weights_only=True)`` (memory-mapped when the file allows it).

    Returns
    -------
    dict of str -> tensor
        On the CPU, in the file's dtypes.

    Raises
    ------
    WeightsError
        Unreadable file, a pickle that needs code to load, or content that is not a flat
        mapping of names to tensors.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state_dict = load_file(str(path), device="cpu")
        except Exception as error:  # safetensors raises its own SafetensorError besides OSError
            raise WeightsError(f"cannot read weights: {error}".splitlines()[0], path=path, hint=HOW_TO_GET_WEIGHTS) from None
    else:
        try:
            try:
                state_dict = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as error:
                if "mmap" not in str(error):
                    raise
                state_dict = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            text = str(error).lower()
            if "unsupported global" not in text and "unsupported class" not in text:  # damaged, not refused
                raise WeightsError(f"cannot read weights: {error}".splitlines()[0], path=path, hint=HOW_TO_GET_WEIGHTS) from None
            raise WeightsError(
                "refusing to load this pickle: it holds objects other than tensors, and unpickling them could run code",
                path=path,
                hint="use the official checkpoint files, or convert trusted files to .safetensors",
            ) from None
        except (OSError, RuntimeError, ValueError, EOFError) as error:
            raise WeightsError(f"cannot read weights: {error}".splitlines()[0], path=path, hint=HOW_TO_GET_WEIGHTS) from None
    if not isinstance(state_dict, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()
    ):
        raise WeightsError("the weights file does not hold a flat name -> tensor mapping", path=path)
    return state_dict


def _weights_file(folder: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise WeightsError(
        "weights not found; expected one of " + ", ".join(names), path=folder, hint=HOW_TO_GET_WEIGHTS
    )


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise WeightsError("configuration file not found", path=path, hint=HOW_TO_GET_WEIGHTS) from None
    except (OSError, ValueError) as error:
        raise WeightsError(f"invalid JSON: {error}", path=path) from None
    if not isinstance(data, dict):
        raise WeightsError("the configuration is not a JSON object", path=path)
    return data


def rename_legacy_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of ``state_dict`` with the old joint-attention names replaced (:data:`LEGACY_KEY_RENAMES`)."""
    renamed = {}
    for key, tensor in state_dict.items():
        for old, new in LEGACY_KEY_RENAMES:
            if old in key:
                key = key.replace(old, new)
                break
        renamed[key] = tensor
    return renamed


def unet_init_kwargs(config: dict, *, source: str = "config") -> dict:
    """Constructor arguments of the UNet from a ``unet/config.json`` mapping.

    Metadata keys (``_class_name``, ``_diffusers_version``...) are dropped. Stale Wonder3D
    keys (:data:`STALE_UNET_CONFIG_KEYS`) are removed with a warning; when the key that
    replaced one is absent, the stale value is used for it. Other unknown keys are an error.
    """
    from Wonder3DMedLib.diffusion.unet_mv2d import UNetMV2DConditionModel

    accepted = set(inspect.signature(UNetMV2DConditionModel.__init__).parameters) - {"self"}
    kwargs = {key: value for key, value in config.items() if not key.startswith("_")}
    notes = []
    for stale, successor in STALE_UNET_CONFIG_KEYS.items():
        if stale not in kwargs:
            continue
        value = kwargs.pop(stale)
        if successor is not None and successor not in kwargs:
            kwargs[successor] = value
            notes.append(f"{stale}={value} (old name of {successor}) used as {successor}")
        elif successor is not None:
            notes.append(f"{stale}={value} ignored (old name of {successor}, which is set to {kwargs[successor]})")
        else:
            notes.append(f"{stale}={value} ignored (no longer used by Wonder3D v1.0)")
    if notes:
        warnings.warn(f"stale Wonder3D UNet config keys in {source}: " + "; ".join(notes), stacklevel=2)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise WeightsError(f"unknown UNet config keys {unknown}", path=source)
    return kwargs


def _build_with_weights(
    factory: Callable[[], nn.Module],
    state_dict: dict[str, torch.Tensor],
    *,
    dtype: torch.dtype,
    weights_path: Path,
) -> nn.Module:
    """Build a module on the meta device and adopt ``state_dict`` as its parameters (no random init)."""
    with torch.device("meta"):
        model = factory()
    _check_keys(model.state_dict(), state_dict, weights_path)
    converted = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
    model.load_state_dict(converted, strict=True, assign=True)
    leftover = [name for name, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftover:
        raise WeightsError(f"the weights leave tensors uninitialised: {leftover[:5]}", path=weights_path)
    return model.eval()


def _check_keys(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], weights_path: Path) -> None:
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    mismatched = [
        f"{k}: file {tuple(found[k].shape)}, model {tuple(expected[k].shape)}"
        for k in expected
        if k in found and tuple(found[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[:3]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    if mismatched:
        problems.append(f"{len(mismatched)} with other shapes (e.g. {mismatched[:3]})")
    if problems:
        raise WeightsError(
            "the weights do not fit the model built from config.json: " + "; ".join(problems),
            path=weights_path,
            hint="the folder must be a Wonder3D v1.0 checkpoint whose config.json belongs to its weights",
        )


def load_unet(folder: str | Path, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    """``unet/``-style folder -> :class:`UNetMV2DConditionModel` in ``dtype`` on ``device``, eval mode."""
    from Wonder3DMedLib.diffusion.unet_mv2d import UNetMV2DConditionModel

    folder = Path(folder)
    config_path = folder / "config.json"
    kwargs = unet_init_kwargs(_read_json(config_path), source=str(config_path))
    weights_path = _weights_file(folder, ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"))
    state_dict = rename_legacy_keys(read_state_dict(weights_path))
    try:
        model = _build_with_weights(
            lambda: UNetMV2DConditionModel(**kwargs), state_dict, dtype=dtype, weights_path=weights_path
        )
    except (TypeError, ValueError) as error:
        raise WeightsError(f"invalid UNet configuration: {error}", path=config_path) from None
    return model.to(device)


def load_vae(folder: str | Path, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    """``vae/`` folder -> diffusers ``AutoencoderKL`` in ``dtype`` on ``device``, eval mode."""
    from diffusers import AutoencoderKL

    folder = Path(folder)
    config = {k: v for k, v in _read_json(folder / "config.json").items() if not k.startswith("_")}
    weights_path = _weights_file(folder, ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"))
    state_dict = read_state_dict(weights_path)
    try:
        model = _build_with_weights(lambda: AutoencoderKL.from_config(config), state_dict, dtype=dtype, weights_path=weights_path)
    except (TypeError, ValueError) as error:
        raise WeightsError(f"invalid VAE configuration: {error}", path=folder / "config.json") from None
    return model.to(device)


def load_image_encoder(folder: str | Path, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    """``image_encoder/`` folder -> transformers ``CLIPVisionModelWithProjection``, eval mode.

    The weights are read here (weights-only) and handed to transformers as tensors, so
    transformers never opens a pickle; ``position_ids`` buffers saved by old transformers
    versions are dropped (current versions rebuild them).
    """
    import transformers
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    folder = Path(folder)
    _read_json(folder / "config.json")
    config = CLIPVisionConfig.from_pretrained(str(folder), local_files_only=True)
    weights_path = _weights_file(folder, ("model.safetensors", "pytorch_model.bin"))
    state_dict = {
        key: tensor.to(dtype) if tensor.is_floating_point() else tensor
        for key, tensor in read_state_dict(weights_path).items()
        if not key.endswith(_REBUILT_BUFFER_SUFFIXES)
    }
    with torch.device("meta"):
        expected = CLIPVisionModelWithProjection(config).state_dict()
    _check_keys({k: v for k, v in expected.items() if not k.endswith(_REBUILT_BUFFER_SUFFIXES)}, state_dict, weights_path)
    dtype_kwarg = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    with transformers_progress_bars_off():
        model = CLIPVisionModelWithProjection.from_pretrained(
            None, config=config, state_dict=state_dict, **{dtype_kwarg: dtype}
        )
    return model.eval().to(device)


@contextmanager
def transformers_progress_bars_off() -> Iterator[None]:
    """Silence transformers' own weight loading/saving bars (our progress display is the one shown)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def load_feature_extractor(folder: str | Path):
    """``feature_extractor/`` folder -> transformers' CLIP image processor on its PIL backend.

    That is the backend Wonder3D ran with (PIL bicubic resize); transformers 5 names it
    ``CLIPImageProcessorPil`` and would otherwise pick a torchvision backend when one is installed.
    """
    try:
        from transformers import CLIPImageProcessorPil as processor_cls
    except ImportError:  # transformers 4: CLIPImageProcessor is the PIL one
        from transformers import CLIPImageProcessor as processor_cls

    folder = Path(folder)
    _read_json(folder / "preprocessor_config.json")
    return processor_cls.from_pretrained(str(folder), local_files_only=True)


def load_scheduler(folder: str | Path, class_name: str = "DDIMScheduler"):
    """``scheduler/`` folder -> the diffusers scheduler ``class_name`` (DDIM for Wonder3D).

    Config keys the class does not take (the hub file's leftover ``skip_prk_steps``) are
    dropped quietly.
    """
    import diffusers
    from diffusers.schedulers.scheduling_utils import SchedulerMixin

    folder = Path(folder)
    scheduler_cls = getattr(diffusers, class_name, None)
    if not (isinstance(scheduler_cls, type) and issubclass(scheduler_cls, SchedulerMixin)):
        raise WeightsError(f"unknown scheduler class {class_name!r} (not a diffusers scheduler)", path=folder)
    config = _read_json(folder / "scheduler_config.json")
    accepted = set(inspect.signature(scheduler_cls.__init__).parameters)
    dropped = sorted(k for k in config if not k.startswith("_") and k not in accepted)
    if dropped:
        logger.debug("ignoring scheduler config keys %s", dropped)
    return scheduler_cls.from_config({k: v for k, v in config.items() if k.startswith("_") or k in accepted})


def read_model_index(folder: str | Path) -> dict[str, tuple[str | None, str | None]]:
    """Check ``model_index.json`` and return its components as ``name -> (library, class)``.

    Raises
    ------
    WeightsError
        A component is missing or is not the class Wonder3D uses (the UNet may be named by
        the original module or ours).
    """
    path = Path(folder) / "model_index.json"
    index = _read_json(path)
    components = {k: tuple(v) for k, v in index.items() if not k.startswith("_") and isinstance(v, (list, tuple))}
    problems = []
    unet = components.get("unet")
    if unet is None or unet[0] not in UNET_MODULES or unet[1] != "UNetMV2DConditionModel":
        problems.append(f"unet is {list(unet) if unet else None}, expected [{ORIGINAL_UNET_MODULE!r}, 'UNetMV2DConditionModel']")
    for name, expected in _EXPECTED_COMPONENTS.items():
        if components.get(name) != expected:
            found = components.get(name)
            problems.append(f"{name} is {list(found) if found else None}, expected {list(expected)}")
    scheduler = components.get("scheduler")
    if scheduler is None or scheduler[0] != "diffusers":
        problems.append(f"scheduler is {list(scheduler) if scheduler else None}, expected a diffusers scheduler")
    if problems:
        raise WeightsError("not a Wonder3D pipeline index: " + "; ".join(problems), path=path, hint=HOW_TO_GET_WEIGHTS)
    return components


def write_model_index(folder: str | Path, *, scheduler_class: str) -> Path:
    """Write ``model_index.json`` as the original pipeline does (UNet under its original module name)."""
    import diffusers

    index = {
        "_class_name": "MVDiffusionImagePipeline",
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": list(_EXPECTED_COMPONENTS["feature_extractor"]),
        "image_encoder": list(_EXPECTED_COMPONENTS["image_encoder"]),
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", scheduler_class],
        "unet": [ORIGINAL_UNET_MODULE, "UNetMV2DConditionModel"],
        "vae": list(_EXPECTED_COMPONENTS["vae"]),
    }
    path = Path(folder) / "model_index.json"
    path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return path
