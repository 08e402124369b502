"""``wonder3dmed reconstruct``: the main job, slice -> views -> mesh in RAS mm -> report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
            "comparison (--compare). Writes into --out: the surface (surface.stl|ply|obj, tagged SPACE=RAS "
            "as 3D Slicer reads it), views/ and views.png, frame.json, input/ (the framed slice), "
            "report.json and a self-contained report.html (plus metrics.json and surface_distance.ply with "
            "--compare). The folder appears only when the job finished; Ctrl-C removes the partial one."
        ),
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="volume file or DICOM series folder")
    parser.add_argument("--slice", type=slice_spec, required=True, metavar="AXIS:INDEX",
                        help="slice to use, AXIS:INDEX or AXIS@R,A,S (as in `prepare`)")
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
    parser.add_argument("--window", metavar="PRESET|C,W", help="intensity window for the framed slice (as in `prepare`)")
    parser.add_argument("--series", metavar="UID", help="which series of a DICOM folder holding several")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace an earlier result in the output folder (a folder that also holds files Wonder3DMed did not "
        "write is never replaced)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from Wonder3DMedLib.cli import interruption_exit_code
    from Wonder3DMedLib.cli._results import print_result
    from Wonder3DMedLib.endtoend import run_reconstruction
    from Wonder3DMedLib.jobs import ReconstructionJob
    from Wonder3DMedLib.progress import TerminalProgress

    job = ReconstructionJob(
        input=args.input,
        slice_axis=args.slice.axis,
        slice_index=args.slice.index,
        slice_ras=args.slice.ras,
        out_dir=args.out,
        mask=args.mask,
        auto_mask=args.auto_mask,
        window=args.window,
        series_uid=args.series,
        weights=args.weights,
        oracle=args.oracle,
        recon=args.recon,
        device=args.device,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        mesh_format=args.format,
        compare=args.compare,
        overwrite=args.overwrite,
    )
    try:
        result = run_reconstruction(job, sink=TerminalProgress())
    except KeyboardInterrupt as interruption:
        print(f"wonder3dmed reconstruct: interrupted; no output was written to {args.out}", file=sys.stderr)
        return interruption_exit_code(interruption)
    print_result(result)
    return 0
