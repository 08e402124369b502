"""Argument types and option groups shared by several subcommands."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

from Wonder3DMedLib.jobs import MESH_FORMATS, RECON_METHODS, LabelledPath

__all__ = [
    "SLICE_AXES",
    "LabelledPath",
    "SliceSpec",
    "labelled_path",
    "slice_spec",
    "add_diffusion_options",
    "add_device_option",
    "RECON_METHODS",
    "MESH_FORMATS",
]

#: Axis names accepted by ``--slice``: anatomical (resolved through the volume's
#: direction matrix) or the volume's own grid axes.
SLICE_AXES = ("axial", "coronal", "sagittal", "i", "j", "k")


@dataclass(frozen=True)
class SliceSpec:
    """``AXIS:INDEX`` or ``AXIS@R,A,S`` — which slice of the volume to use.

    Exactly one of ``index`` (grid index along the axis) and ``ras`` (a point in RAS mm the
    slice goes through, e.g. 3D Slicer's slice offset or a fiducial) is set.
    """

    axis: str
    index: int | None = None
    ras: tuple[float, float, float] | None = None

    def __str__(self) -> str:
        if self.ras is not None:
            return f"{self.axis}@{','.join(f'{v:g}' for v in self.ras)}"
        return f"{self.axis}:{self.index}"


def labelled_path(text: str) -> LabelledPath:
    """Parse ``FILE[:LABEL]``; a path that exists as given is never split."""
    if Path(text).exists():
        return LabelledPath(Path(text))
    head, sep, tail = text.rpartition(":")
    if sep and head and tail and not any(c in tail for c in "/\\"):
        return LabelledPath(Path(head), tail)
    return LabelledPath(Path(text))


def slice_spec(text: str) -> SliceSpec:
    """Parse ``AXIS:INDEX`` (e.g. ``axial:90``, ``k:12``) or ``AXIS@R,A,S`` (e.g. ``axial@0,-18,8``)."""
    at = "@" in text
    axis, _, rest = text.partition("@" if at else ":")
    axis = axis.strip().lower()
    if axis not in SLICE_AXES or not (at or ":" in text):
        raise argparse.ArgumentTypeError(
            f"expected AXIS:INDEX or AXIS@R,A,S with AXIS one of {', '.join(SLICE_AXES)} "
            f"(e.g. axial:90, or axial@0,-18,8 for the axial slice through that RAS point in mm), got {text!r}"
        )
    if at:
        try:
            point = tuple(float(v) for v in rest.split(","))
        except ValueError:
            point = ()
        if len(point) != 3 or not all(math.isfinite(v) for v in point):
            raise argparse.ArgumentTypeError(f"the point after '@' must be three numbers R,A,S in mm, got {rest!r} in {text!r}")
        return SliceSpec(axis, ras=point)
    try:
        value = int(rest)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the slice index must be a whole number, got {rest!r} in {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"the slice index must be 0 or more, got {value}")
    return SliceSpec(axis, value)


def add_device_option(
    parser: argparse.ArgumentParser,
    help: str = "torch device: auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps (default: auto)",
) -> None:
    """``--device``: where torch runs (``help`` for commands whose torch work supports fewer devices)."""
    parser.add_argument("--device", default="auto", help=help)


def add_diffusion_options(parser: argparse.ArgumentParser) -> None:
    """``--steps --guidance --seed``: sampling options with the original Wonder3D defaults."""
    group = parser.add_argument_group("diffusion sampling (defaults as the original Wonder3D)")
    group.add_argument("--steps", type=int, default=50, help="DDIM sampling steps (default: 50)")
    group.add_argument(
        "--guidance",
        type=float,
        default=1.0,
        help="classifier-free guidance scale; 1 disables guidance and halves the work (default: 1.0)",
    )
    group.add_argument("--seed", type=int, default=42, help="random seed of the sampler (default: 42)")
