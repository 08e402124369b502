"""``wonder3dmed prepare``: one slice of a volume -> Wonder3D's framed RGBA input + frame.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from Wonder3DMedLib.cli._unavailable import not_available
from Wonder3DMedLib.cli.arguments import labelled_path, slice_spec

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="frame the object on one slice for Wonder3D (input.png + frame.json)",
        description=(
            "Read a volume (DICOM file or series folder, NIfTI, NRRD, MHA/MHD), take one slice, window it "
            "to 8 bit, isolate the object (a mask file or an automatic mask) and frame it exactly as "
            "Wonder3D preprocesses its input. Writes input.png (RGBA 256x256), frame.json (model frame <-> "
            "slice pixels <-> RAS mm) and slice_preview.png (the windowed slice with the mask outline)."
        ),
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="volume file or DICOM series folder")
    parser.add_argument(
        "--slice", type=slice_spec, required=True, metavar="AXIS:INDEX",
        help="slice to use: axial|coronal|sagittal (through the volume's direction matrix) or i|j|k, and its index",
    )
    mask = parser.add_mutually_exclusive_group(required=True)
    mask.add_argument(
        "--mask", type=labelled_path, metavar="FILE[:LABEL]",
        help="labelmap or segmentation file, optionally with the label value or segment name of the object",
    )
    mask.add_argument("--auto-mask", action="store_true", help="find the object automatically (Otsu threshold)")
    parser.add_argument(
        "--window", metavar="PRESET|C,W",
        help="intensity window: a preset (brain, soft-tissue, bone, lung), center,width, or the DICOM window "
        "when omitted (else an automatic percentile window)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return not_available(args)
