"""Where the Wonder3D v1.0 checkpoint is looked for, and whether it is complete.

Data form: folders in the Hugging Face pipeline layout of ``flamehaze1115/wonder3d-v1.0``
(``model_index.json``, ``unet/``, ``vae/``, ``image_encoder/``, ``feature_extractor/``,
``scheduler/``). Pure Python: nothing here loads weights or touches the network.

Search order: an explicit folder (``--weights``), the ``WONDER3DMED_WEIGHTS``
environment variable, then the local Hugging Face cache (offline lookup only).
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from Wonder3DMedLib.errors import WeightsError

__all__ = [
    "HUB_REPO_ID",
    "WEIGHTS_ENV",
    "REQUIRED_FILES",
    "HOW_TO_GET_WEIGHTS",
    "CheckpointCandidate",
    "missing_files",
    "damaged_files",
    "hub_cache_hint",
    "hf_cache_snapshot",
    "checkpoint_candidates",
    "find_checkpoint",
]

#: Hugging Face hub id of the released Wonder3D v1.0 pipeline.
HUB_REPO_ID = "flamehaze1115/wonder3d-v1.0"

#: Environment variable naming a local checkpoint folder.
WEIGHTS_ENV = "WONDER3DMED_WEIGHTS"

#: Files a complete checkpoint holds: for each, the accepted alternatives.
REQUIRED_FILES: dict[str, tuple[str, ...]] = {
    "pipeline index": ("model_index.json",),
    "UNet config": ("unet/config.json",),
    "UNet weights": ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin"),
    "VAE config": ("vae/config.json",),
    "VAE weights": ("vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.bin"),
    "image encoder config": ("image_encoder/config.json",),
    "image encoder weights": ("image_encoder/model.safetensors", "image_encoder/pytorch_model.bin"),
    "feature extractor config": ("feature_extractor/preprocessor_config.json",),
    "scheduler config": ("scheduler/scheduler_config.json",),
}

HOW_TO_GET_WEIGHTS = (
    f"on a machine with internet access run `hf download {HUB_REPO_ID} --local-dir wonder3d-v1.0` "
    "(about 5 GB; `huggingface-cli download` on older huggingface_hub), copy the folder here and pass "
    f"--weights wonder3d-v1.0 or set {WEIGHTS_ENV}; without weights, `--oracle REFERENCE` renders the "
    "views from a reference segmentation instead"
)


@dataclass(frozen=True)
class CheckpointCandidate:
    """One place a checkpoint was looked for.

    Attributes
    ----------
    origin : str
        Why this place was searched ('--weights', the environment variable, the cache).
    path : Path or None
        The folder, or None when the origin gave no folder (variable unset, not cached).
    missing : tuple of str
        Required files absent from the folder (all of them when it does not exist).
    """

    origin: str
    path: Path | None
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """True when the folder exists and holds every required file."""
        return self.path is not None and not self.missing


def missing_files(folder: str | Path) -> list[str]:
    """Required files absent from ``folder`` (each as ``a | b`` when alternatives exist)."""
    folder = Path(folder)
    missing = []
    for alternatives in REQUIRED_FILES.values():
        if not any((folder / name).is_file() for name in alternatives):
            missing.append(" | ".join(alternatives))
    return missing


def _weights_file_problem(path: Path) -> str | None:
    """Why a weights file cannot be complete, judged from its own structure without loading it."""
    size = path.stat().st_size
    if path.suffix == ".safetensors":
        with open(path, "rb") as stream:
            head = stream.read(8)
            if len(head) < 8:
                return "is empty or truncated"
            (header_size,) = struct.unpack("<Q", head)
            if header_size > size - 8:
                return "is truncated (its header runs past the end of the file)"
            try:
                header = json.loads(stream.read(header_size))
                end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"),
                          default=0)
            except (ValueError, KeyError, TypeError, IndexError):
                return "has an unreadable header"
        if size < 8 + header_size + end:
            return f"is truncated ({size} of {8 + header_size + end} bytes)"
        return None
    if not zipfile.is_zipfile(path):  # torch saves .bin as a zip archive; a cut one loses its directory
        return "is truncated or not a torch checkpoint archive"
    return None


def damaged_files(folder: str | Path) -> list[str]:
    """Weight files of ``folder`` that are present but visibly cut short or corrupt, with the reason.

    Checks the structure only (the safetensors header against the file size, the ``.bin``
    zip directory), so it takes milliseconds even for gigabyte files.
    """
    folder = Path(folder)
    damaged = []
    for alternatives in REQUIRED_FILES.values():
        for name in alternatives:
            path = folder / name
            if path.suffix in (".safetensors", ".bin") and path.is_file():
                problem = _weights_file_problem(path)
                if problem:
                    damaged.append(f"{name} {problem}")
                break
    return damaged


def _hub_cache_entry(repo_id: str = HUB_REPO_ID) -> str:
    """The folder name the Hugging Face cache gives a model repository."""
    return "models--" + repo_id.replace("/", "--")


def hub_cache_hint(path: str | Path) -> str | None:
    """A hint when ``path`` is a Hugging Face cache folder above the checkpoint itself
    (the cache root, the model's entry, or its ``snapshots`` folder)."""
    path = Path(path)
    candidates = (path, path / "snapshots", path / _hub_cache_entry() / "snapshots")
    snapshots = next((c for c in candidates if c.name == "snapshots" and c.is_dir()), None)
    if snapshots is None:
        return None
    revisions = sorted(p.name for p in snapshots.iterdir() if p.is_dir())
    example = snapshots / revisions[0] if revisions else snapshots / "<revision>"
    return f"this is a Hugging Face cache folder; pass the revision folder inside it, e.g. --weights {example}"


def hf_cache_snapshot(repo_id: str = HUB_REPO_ID) -> Path | None:
    """The cached snapshot folder of ``repo_id`` in the local Hugging Face cache, if any.

    Follows ``refs/main`` when present, else takes the most recently modified snapshot.
    Never touches the network.
    """
    from huggingface_hub import constants

    repo_dir = Path(constants.HF_HUB_CACHE) / _hub_cache_entry(repo_id)
    snapshots = repo_dir / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        candidate = snapshots / ref.read_text().strip()
        if candidate.is_dir():
            return candidate
    folders = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    return folders[-1] if folders else None


def _candidate(origin: str, path: Path | None) -> CheckpointCandidate:
    if path is None:
        return CheckpointCandidate(origin, None, ())
    missing = tuple(missing_files(path)) if path.is_dir() else tuple(" | ".join(a) for a in REQUIRED_FILES.values())
    return CheckpointCandidate(origin, path, missing)


def checkpoint_candidates(explicit: str | Path | None = None) -> list[CheckpointCandidate]:
    """Every place searched, in search order, with what each one lacks."""
    candidates = []
    if explicit is not None:
        candidates.append(_candidate("--weights", Path(explicit).expanduser()))
    env_value = os.environ.get(WEIGHTS_ENV)
    candidates.append(_candidate(f"${WEIGHTS_ENV}", Path(env_value).expanduser() if env_value else None))
    candidates.append(_candidate("Hugging Face cache", hf_cache_snapshot()))
    return candidates


def _state(candidate: CheckpointCandidate) -> str:
    if candidate.path is not None:
        return f"{candidate.path} lacks {len(candidate.missing)} required file(s)"
    return "not set" if candidate.origin.startswith("$") else f"no copy of {HUB_REPO_ID}"


def find_checkpoint(explicit: str | Path | None = None) -> Path:
    """The checkpoint folder to use.

    An explicit folder must be complete (it is never silently replaced by another);
    otherwise the first complete candidate wins.

    Raises
    ------
    WeightsError
        No complete checkpoint; the message lists what each place lacks and how to
        obtain the weights.
    """
    candidates = checkpoint_candidates(explicit)
    if explicit is not None:
        first = candidates[0]
        if first.complete:
            return first.path
        if not first.path.exists():
            raise WeightsError("the --weights folder does not exist", path=first.path, hint=HOW_TO_GET_WEIGHTS)
        if not first.path.is_dir():
            raise WeightsError("--weights names a file; it takes the checkpoint folder", path=first.path,
                               hint=HOW_TO_GET_WEIGHTS)
        raise WeightsError(
            "the --weights folder is not a complete Wonder3D checkpoint; missing: " + ", ".join(first.missing),
            path=first.path,
            hint=hub_cache_hint(first.path) or HOW_TO_GET_WEIGHTS,
        )
    for candidate in candidates:
        if candidate.complete:
            return candidate.path
    searched = "; ".join(f"{c.origin}: {_state(c)}" for c in candidates)
    raise WeightsError(f"no Wonder3D checkpoint found ({searched})", hint=HOW_TO_GET_WEIGHTS)
