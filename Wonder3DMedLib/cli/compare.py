"""``wonder3dmed compare``: metrics between a predicted surface and a reference."""

from __future__ import annotations

import argparse
from pathlib import Path

from Wonder3DMedLib.cli._unavailable import not_available
from Wonder3DMedLib.cli.arguments import labelled_path

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="surface and volume metrics between a prediction and a reference",
        description=(
            "Compare a predicted surface with a reference in millimetres, mesh to mesh: Hausdorff, HD95, "
            "ASSD, the two directed mean distances, Chamfer, surface Dice at tolerances, volumes, "
            "volumetric Dice and IoU, centroid offset. A reference (or prediction) given as a labelmap or "
            "segmentation becomes a surface by marching cubes in RAS mm; meshes are read with their "
            "SPACE=RAS/LPS tag."
        ),
    )
    parser.add_argument("prediction", type=labelled_path, metavar="PREDICTION", help="predicted mesh or labelmap")
    parser.add_argument("reference", type=labelled_path, metavar="REFERENCE[:LABEL]", help="reference mesh, or labelmap with its label")
    parser.add_argument(
        "--tolerance", type=float, nargs="+", default=[1.0, 2.0], metavar="MM",
        help="surface Dice tolerances in mm (default: 1 2)",
    )
    parser.add_argument("--align", action="store_true", help="also report metrics after rigid ICP alignment")
    parser.add_argument("--out", type=Path, required=True, metavar="report.{json,csv}", help="report file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return not_available(args)
