"""``wonder3dmed demo``: the main job on real MRI that ships with a dependency."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run `reconstruct` on bundled real MRI and write a report",
        description=(
            "Run the whole pipeline on real head MRI that ships with an installed package (Colin27 with "
            "the AAL atlas from Debian's mricron-data when installed, else nilearn's MNI152 template), on "
            "a structure with a real segmentation. Uses the Wonder3D weights when found, otherwise the "
            "oracle mode (views rendered from the reference segmentation). Deterministic; a few minutes "
            "at most on a laptop CPU. Prints where the HTML report is."
        ),
    )
    parser.add_argument(
        "--out", type=Path, default=Path("wonder3dmed_demo"), help="output folder (default: ./wonder3dmed_demo)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(
        "wonder3dmed demo: the end-to-end pipeline is not part of this build yet.\n"
        "When it is, this command will: find real MRI with a segmentation (Colin27 + AAL from "
        "mricron-data, or nilearn's MNI152), pick a deep grey-matter structure and its slice, "
        "render oracle views (or run Wonder3D when weights are present), reconstruct the surface, "
        f"place it in RAS mm, compare it with the segmentation and write {args.out}/report.html."
    )
    return 0
