"""What ``wonder3dmed doctor`` checks: packages, compute devices, weights, disk and memory.

Data form: a :class:`DoctorReport` (JSON-serialisable with :meth:`DoctorReport.to_dict`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from Wonder3DMedLib import NOT_FOR_DIAGNOSIS, __version__
from Wonder3DMedLib.weights import (
    HOW_TO_GET_WEIGHTS,
    CheckpointCandidate,
    checkpoint_candidates,
    damaged_files,
    hub_cache_hint,
)

__all__ = ["PackageStatus", "DeviceStatus", "DoctorReport", "REQUIRED_PACKAGES", "OPTIONAL_PACKAGES", "collect"]

#: (distribution name, import name, what it is for)
REQUIRED_PACKAGES = (
    ("numpy", "numpy", "arrays"),
    ("scipy", "scipy", "distance transforms, sparse solvers"),
    ("scikit-image", "skimage", "marching cubes, masks"),
    ("SimpleITK", "SimpleITK", "volume and DICOM series I/O"),
    ("pydicom", "pydicom", "DICOM headers and pixels"),
    ("trimesh", "trimesh", "meshes"),
    ("vtk", "vtk", "mesh files, offscreen renders"),
    ("Pillow", "PIL", "images"),
    ("tqdm", "tqdm", "progress bars"),
    ("psutil", "psutil", "memory checks, cancel"),
    ("torch", "torch", "diffusion and NeuS reconstruction"),
    ("diffusers", "diffusers", "diffusion building blocks, scheduler"),
    ("transformers", "transformers", "CLIP image encoder"),
    ("safetensors", "safetensors", "weight files"),
    ("huggingface_hub", "huggingface_hub", "offline weight-cache lookup"),
)

OPTIONAL_PACKAGES = (
    ("pylibjpeg", "pylibjpeg", "JPEG-compressed DICOM"),
    ("pylibjpeg-openjpeg", "openjpeg", "JPEG 2000-compressed DICOM"),
    ("fast-simplification", "fast_simplification", "mesh decimation"),
    ("slicer-core", "slicer", "MRML tests outside Slicer"),
)

_MIN_FREE_DISK_GB = 10.0
_MIN_MEMORY_GB = 16.0


@dataclass(frozen=True)
class PackageStatus:
    """One Python package: its installed version, or why it is unusable."""

    name: str
    purpose: str
    required: bool
    version: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.version is not None and self.error is None


@dataclass(frozen=True)
class DeviceStatus:
    """A torch compute device."""

    kind: str
    name: str
    memory_gb: float | None = None


@dataclass(frozen=True)
class DoctorReport:
    """Everything ``wonder3dmed doctor`` found."""

    wonder3dmed_version: str
    python: str
    platform: str
    packages: tuple[PackageStatus, ...]
    devices: tuple[DeviceStatus, ...]
    checkpoints: tuple[CheckpointCandidate, ...]
    disk_path: str
    disk_free_gb: float
    memory_total_gb: float
    memory_available_gb: float
    problems: tuple[str, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = field(default_factory=tuple)
    hf_cache: str = ""
    damaged: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """True when nothing prevents running Wonder3DMed (missing weights only warn)."""
        return not self.problems

    @property
    def checkpoint(self) -> CheckpointCandidate | None:
        """The checkpoint that would be used, if any."""
        return next((c for c in self.checkpoints if c.complete and not self.damaged.get(str(c.path))), None)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["checkpoints"] = [
            {"origin": c.origin, "path": None if c.path is None else str(c.path), "complete": c.complete,
             "missing": list(c.missing)}
            for c in self.checkpoints
        ]
        data["usable"] = self.usable
        return data

    def to_text(self) -> str:
        lines = [f"Wonder3DMed {self.wonder3dmed_version} on Python {self.python} ({self.platform})", ""]
        lines.append("Packages:")
        for package in self.packages:
            state = package.version if package.ok else ("MISSING" if package.version is None else "BROKEN")
            kind = "" if package.required else " (optional)"
            detail = f" — {package.error}" if package.error else ""
            lines.append(f"  {package.name:<22} {state:<16} {package.purpose}{kind}{detail}")
        lines += ["", "Compute devices:"]
        for device in self.devices:
            memory = f", {device.memory_gb:.1f} GB" if device.memory_gb is not None else ""
            lines.append(f"  {device.kind:<5} {device.name}{memory}")
        lines += ["", "Wonder3D weights (searched in this order):"]
        for candidate in self.checkpoints:
            if candidate.path is None:
                state = "not set" if candidate.origin.startswith("$") else f"not found (looked in {self.hf_cache})"
            elif not candidate.path.exists():
                state = "does not exist"
            elif not candidate.path.is_dir():
                state = "is a file, not a checkpoint folder"
            elif candidate.complete:
                damaged = self.damaged.get(str(candidate.path), ())
                state = "complete" if not damaged else "DAMAGED: " + "; ".join(damaged)
            else:
                hint = hub_cache_hint(candidate.path)
                state = f"incomplete, missing {', '.join(candidate.missing)}" + (f" ({hint})" if hint else "")
            where = "" if candidate.path is None else f": {candidate.path}"
            lines.append(f"  {candidate.origin}{where} — {state}")
        lines += [
            "",
            f"Disk: {self.disk_free_gb:.1f} GB free at {self.disk_path}",
            f"Memory: {self.memory_available_gb:.1f} GB available of {self.memory_total_gb:.1f} GB",
        ]
        for title, items in (("Problems", self.problems), ("Warnings", self.warnings)):
            if items:
                lines += ["", f"{title}:"] + [f"  - {item}" for item in items]
        lines += ["", "Status: " + ("usable" if self.usable else "NOT usable, fix the problems above"), NOT_FOR_DIAGNOSIS]
        return "\n".join(lines)


def _package_status(dist: str, module: str, purpose: str, required: bool) -> PackageStatus:
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        version = None
    error = None
    if version is not None:
        try:
            importlib.import_module(module)
        except Exception as exc:  # a broken install: report it, do not crash the doctor
            error = f"import {module} failed: {exc}"
    return PackageStatus(dist, purpose, required, version, error)


def _devices() -> tuple[DeviceStatus, ...]:
    import psutil

    devices = []
    try:
        import torch

        if torch.cuda.is_available():
            for index in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(index)
                devices.append(DeviceStatus("cuda", f"cuda:{index} {props.name}", props.total_memory / 1e9))
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            devices.append(DeviceStatus("mps", "Apple Metal (mps)"))
        threads = torch.get_num_threads()
    except Exception:  # torch missing or broken: reported with the packages
        threads = None
    cores = psutil.cpu_count(logical=False) or psutil.cpu_count()
    cpu_name = platform.processor() or platform.machine()
    detail = f"{cpu_name}, {cores} cores" + (f", torch uses {threads} threads" if threads else "")
    devices.append(DeviceStatus("cpu", detail, psutil.virtual_memory().total / 1e9))
    return tuple(devices)


def collect(weights: str | Path | None = None, *, disk_path: str | Path = ".") -> DoctorReport:
    """Check this machine for running Wonder3DMed.

    Parameters
    ----------
    weights : str or Path, optional
        A checkpoint folder to check first (as ``--weights``).
    disk_path : str or Path
        Where free disk space is measured (the output location).
    """
    import psutil

    packages = tuple(_package_status(d, m, p, True) for d, m, p in REQUIRED_PACKAGES) + tuple(
        _package_status(d, m, p, False) for d, m, p in OPTIONAL_PACKAGES
    )
    devices = _devices()
    candidates = tuple(checkpoint_candidates(weights))
    disk_path = Path(disk_path).resolve()
    probe = disk_path if disk_path.exists() else next(p for p in disk_path.parents if p.exists())
    free_gb = shutil.disk_usage(probe).free / 1e9
    memory = psutil.virtual_memory()
    problems, warnings = [], []
    for package in packages:
        if package.required and not package.ok:
            problems.append(f"{package.name} is {'missing' if package.version is None else 'broken'}: "
                            f"pip install '{package.name}'" + (f" ({package.error})" if package.error else ""))
    damaged = {str(c.path): tuple(damaged_files(c.path)) for c in candidates if c.complete}
    for candidate in candidates:
        # an explicit --weights is a request: a bad one is a problem; the variable and the cache only warn
        complaint = problems if candidate.origin == "--weights" else warnings
        if candidate.path is not None and not candidate.complete:
            what = ("does not exist" if not candidate.path.exists() else
                    "is a file, not a checkpoint folder" if not candidate.path.is_dir() else "is not a complete checkpoint")
            complaint.append(f"{candidate.origin} {candidate.path} {what}")
        elif damaged.get(str(candidate.path)):
            complaint.append(f"{candidate.origin} {candidate.path} has damaged files: "
                             + "; ".join(damaged[str(candidate.path)]))
    if not any(c.complete and not damaged[str(c.path)] for c in candidates):
        warnings.append("no Wonder3D checkpoint: diffusion is unavailable until you get one (" + HOW_TO_GET_WEIGHTS + ")")
    if not any(d.kind in ("cuda", "mps") for d in devices):
        warnings.append("no GPU: diffusion runs on the CPU (minutes per sampling step with the full model); "
                        "reconstruction and the oracle demo run fine on the CPU")
    if memory.total / 1e9 < _MIN_MEMORY_GB:
        warnings.append(f"{memory.total / 1e9:.0f} GB of memory: the full model in float32 on the CPU needs about "
                        f"{_MIN_MEMORY_GB:.0f} GB")
    if free_gb < _MIN_FREE_DISK_GB:
        warnings.append(f"only {free_gb:.1f} GB free disk at {probe}: the weights alone take about 5 GB")
    return DoctorReport(
        wonder3dmed_version=__version__,
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}",
        packages=packages,
        devices=devices,
        checkpoints=candidates,
        disk_path=str(probe),
        disk_free_gb=free_gb,
        memory_total_gb=memory.total / 1e9,
        memory_available_gb=memory.available / 1e9,
        problems=tuple(problems),
        warnings=tuple(warnings),
        hf_cache=_hub_cache_folder(),
        damaged=damaged,
    )


def _hub_cache_folder() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)
