"""``wonder3dmed mesh``: six views -> a watertight surface."""

from __future__ import annotations

import argparse
from pathlib import Path

from Wonder3DMedLib.cli._unavailable import not_available
from Wonder3DMedLib.cli.arguments import RECON_METHODS

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "mesh",
        help="reconstruct a watertight surface from 6 views",
        description=(
            "Reconstruct a watertight mesh from a views folder in the original Wonder3D layout "
            "(normals_000_<view>.png RGBA with the mask in alpha, rgb_000_<view>.png, optional "
            "masked_colors/; any square resolution). Without --frame the mesh is in the model frame "
            "(front camera axes, box [-1,1]^3); with a frame.json from `prepare`, in RAS millimetres."
        ),
    )
    parser.add_argument("views_dir", type=Path, metavar="VIEWS_DIR", help="folder holding the six views")
    parser.add_argument("--out", type=Path, required=True, metavar="MESH.{ply,stl,obj}", help="output mesh file")
    parser.add_argument(
        "--recon", choices=RECON_METHODS, default="fast",
        help="fast: visual hull + normal integration on the CPU (seconds); neus: the original NeuS-style "
        "optimisation (minutes on a GPU, slow on a CPU) (default: fast)",
    )
    parser.add_argument("--mc-resolution", type=int, default=192, metavar="N", help="marching-cubes grid size (default: 192)")
    parser.add_argument("--frame", type=Path, metavar="frame.json", help="place the mesh in RAS mm with this frame record")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return not_available(args)
