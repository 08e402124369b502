"""``wonder3dmed demo``: the main job on real MRI that ships with a dependency."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run `reconstruct` on bundled real MRI and write a report",
        description=(
            "Run the whole pipeline on real head MRI that ships with an installed package (Colin27 with "
            "the AAL atlas from Debian's mricron-data when installed, else nilearn's MNI152 template), on "
            "a structure with a real segmentation (the left thalamus of the AAL atlas). Uses the Wonder3D "
            "weights when found, otherwise the oracle mode (views rendered from the reference "
            "segmentation). Deterministic; about a minute on a laptop CPU. Prints where the HTML report is. "
            "Re-running replaces the folder of an earlier demo, never another folder."
        ),
    )
    parser.add_argument(
        "--out", type=Path, default=Path("wonder3dmed_demo"), help="output folder (default: ./wonder3dmed_demo)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from Wonder3DMedLib.cli import interruption_exit_code
    from Wonder3DMedLib.cli._results import print_result
    from Wonder3DMedLib.demo import adopt_earlier_demo_output, demo_job, find_demo_data, is_demo_output, mark_demo_output
    from Wonder3DMedLib.endtoend import run_reconstruction
    from Wonder3DMedLib.progress import TerminalProgress

    data = find_demo_data()
    job = demo_job(args.out, data=data)
    if Path(args.out).is_dir():
        adopt_earlier_demo_output(Path(args.out))
    print(f"demo data: {data.description}")
    print(f"slice: {job.slice_text}; views: "
          + ("oracle (no Wonder3D weights found; see `wonder3dmed doctor`)" if job.oracle else "Wonder3D diffusion"))
    try:
        result = run_reconstruction(job, sink=TerminalProgress(), replaceable=is_demo_output)
    except KeyboardInterrupt as interruption:
        print(f"wonder3dmed demo: interrupted; no output was written to {args.out}", file=sys.stderr)
        return interruption_exit_code(interruption)
    mark_demo_output(result.out_dir, job)
    print_result(result)
    return 0
