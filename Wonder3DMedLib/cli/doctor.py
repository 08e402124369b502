"""``wonder3dmed doctor``: is this machine ready to run Wonder3DMed?"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check packages, GPU, Wonder3D weights, disk and memory",
        description=(
            "Check this machine: versions of the key packages, the torch devices (CUDA/MPS/CPU and GPU "
            "memory), where the Wonder3D weights are looked for (--weights, $WONDER3DMED_WEIGHTS, the "
            "Hugging Face cache) and whether a complete checkpoint is there, free disk and memory. "
            "Exit code 0 when Wonder3DMed can run (missing weights only warn: oracle mode works without "
            "them), 1 otherwise."
        ),
    )
    parser.add_argument("--weights", type=Path, help="a Wonder3D checkpoint folder to check first")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from Wonder3DMedLib.doctor import collect

    report = collect(args.weights)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_text())
    return 0 if report.usable else 1
