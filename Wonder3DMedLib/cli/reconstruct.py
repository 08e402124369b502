"""``wonder3dmed reconstruct``: the main job, slice -> views -> mesh in RAS mm -> report."""

from __future__ import annotations

import argparse
from pathlib import Path

from Wonder3DMedLib.cli._unavailable import not_available
from Wonder3DMedLib.cli.arguments import (
    MESH_FORMATS,
    RECON_METHODS,
    add_device_option,
    add_diffusion_options,
    labelled_path,
    slice_spec,
)

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reconstruct",
        help="the main job: slice -> views -> mesh in RAS mm -> report",
        description=(
            "prepare -> views (Wonder3D diffusion with the weights, or oracle views rendered from "
            "--oracle REFERENCE) -> mesh -> placement in RAS millimetres over the slice -> optional "
            "comparison (--compare). Writes the mesh (tagged SPACE=RAS as 3D Slicer reads it), views.png, "
            "report.json and a self-contained report.html."
        ),
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="volume file or DICOM series folder")
    parser.add_argument("--slice", type=slice_spec, required=True, metavar="AXIS:INDEX", help="slice to use (as in `prepare`)")
    mask = parser.add_mutually_exclusive_group(required=True)
    mask.add_argument("--mask", type=labelled_path, metavar="FILE[:LABEL]", help="labelmap or segmentation of the object")
    mask.add_argument("--auto-mask", action="store_true", help="find the object automatically")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (must not exist, see --overwrite)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", type=Path, metavar="DIR", help="Wonder3D v1.0 checkpoint folder (default: search, see `doctor`)")
    source.add_argument(
        "--oracle", type=labelled_path, metavar="REFERENCE[:LABEL]",
        help="render the views from this reference instead of generating them (measures the reconstruction alone)",
    )
    parser.add_argument("--recon", choices=RECON_METHODS, default="fast", help="reconstruction backend (default: fast)")
    add_device_option(parser)
    add_diffusion_options(parser)
    parser.add_argument("--format", choices=MESH_FORMATS, default="stl", help="mesh file format (default: stl)")
    parser.add_argument("--compare", type=labelled_path, metavar="REFERENCE[:LABEL]", help="compare the mesh with this reference")
    parser.add_argument("--overwrite", action="store_true", help="replace the contents of an existing output folder")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return not_available(args)
