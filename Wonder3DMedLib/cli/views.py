"""``wonder3dmed views``: Wonder3D multiview diffusion on a framed input."""

from __future__ import annotations

import argparse
from pathlib import Path

from Wonder3DMedLib.cli._unavailable import not_available
from Wonder3DMedLib.cli.arguments import add_device_option, add_diffusion_options

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "views",
        help="generate the 6 views with Wonder3D multiview diffusion",
        description=(
            "Run the Wonder3D v1.0 multiview cross-domain diffusion on a framed input (an input.png, or a "
            "folder written by `prepare`) and write 6 normal maps and 6 colour images in the original file "
            "layout (normals_000_<view>.png with the mask in alpha, rgb_000_<view>.png, "
            "masked_colors/rgb_000_<view>.png) plus the views.png contact sheet."
        ),
    )
    parser.add_argument("input", type=Path, metavar="INPUT_PNG_OR_PREPARED_DIR", help="input.png or a prepare folder")
    parser.add_argument("--weights", type=Path, metavar="DIR", help="Wonder3D v1.0 checkpoint folder (hub layout)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder for the views")
    add_diffusion_options(parser)
    add_device_option(parser)
    parser.add_argument(
        "--dtype", choices=("auto", "float32", "float16", "bfloat16"), default="auto",
        help="compute precision: auto = float16 on CUDA, float32 elsewhere (default: auto)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return not_available(args)
