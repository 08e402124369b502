"""``wonder3dmed compare``: metrics between a predicted surface and a reference."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from Wonder3DMedLib.cli.arguments import labelled_path

__all__ = ["register", "run", "DISTANCE_MESH_SUFFIXES"]

#: Files that can carry the per-vertex signed distance as a scalar (and colours).
DISTANCE_MESH_SUFFIXES = (".ply", ".vtk", ".vtp")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="surface and volume metrics between a prediction and a reference",
        description=(
            "Compare a predicted surface with a reference in millimetres, mesh to mesh: Hausdorff, HD95, "
            "ASSD, the two directed mean distances, Chamfer, surface Dice at tolerances, volumes, "
            "volumetric Dice and IoU, centroid offset. A reference (or prediction) given as a labelmap or "
            "segmentation becomes a surface by marching cubes in RAS mm; meshes are read with their "
            "SPACE=RAS/LPS tag. Every metric is defined in the JSON report and in docs/metrics.md."
        ),
        epilog=(
            "examples:\n"
            "  wonder3dmed compare pred.ply aal.nii.gz:Caudate_L --out report.json\n"
            "  wonder3dmed compare pred.stl seg.seg.nrrd:Liver --tolerance 1 2 5 --align --out report.csv "
            "--distance-mesh distances.vtk"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "prediction", type=labelled_path, metavar="PREDICTION",
        help="predicted mesh (.stl .ply .obj .vtk .vtp), or labelmap[:LABEL]",
    )
    parser.add_argument(
        "reference", type=labelled_path, metavar="REFERENCE[:LABEL]",
        help="reference mesh, or labelmap / segmentation with the label value or name of the object",
    )
    parser.add_argument(
        "--tolerance", type=float, nargs="+", default=[1.0, 2.0], metavar="MM",
        help="surface Dice tolerances in mm (default: 1 2)",
    )
    parser.add_argument("--align", action="store_true", help="also report metrics after rigid ICP alignment")
    parser.add_argument(
        "--align-scale", action="store_true",
        help="with --align, also allow a uniform scale (similarity transform)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="report.{json,csv}", help="report file")
    parser.add_argument(
        "--distance-mesh", type=Path, metavar="FILE.{ply,vtk,vtp}",
        help="also write the prediction's surface with its signed distance to the reference per vertex "
        "(scalar 'signed_distance_mm', negative inside; colours blue-white-red) for Slicer",
    )
    parser.add_argument(
        "--smoothing", type=float, default=1.0, metavar="VOXELS",
        help="Gaussian sigma (voxels) applied to labelmaps before marching cubes; 0 keeps the voxel "
        "staircase (default: 1)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.set_defaults(run=run)


def _check_outputs(args: argparse.Namespace) -> None:
    from Wonder3DMedLib.errors import InputError, OutputError
    from Wonder3DMedLib.metrics.report import REPORT_SUFFIXES

    if args.out.suffix.lower() not in REPORT_SUFFIXES:
        raise InputError(f"--out must end in .json or .csv, got '{args.out.name}'")
    if args.distance_mesh is not None and args.distance_mesh.suffix.lower() not in DISTANCE_MESH_SUFFIXES:
        raise InputError(
            f"--distance-mesh must end in {', '.join(DISTANCE_MESH_SUFFIXES)} (formats that keep per-vertex "
            f"values), got '{args.distance_mesh.name}'"
        )
    if args.align_scale and not args.align:
        raise InputError("--align-scale only makes sense with --align")
    if any(not t >= 0 for t in args.tolerance):
        raise InputError(f"--tolerance values must be >= 0 mm, got {args.tolerance}")
    if not 0 <= args.smoothing <= 10:
        raise InputError(f"--smoothing must be between 0 and 10 voxels, got {args.smoothing}")
    inputs = {args.prediction.path.resolve(), args.reference.path.resolve()}
    for output in filter(None, (args.out, args.distance_mesh)):
        if output.resolve() in inputs:
            raise OutputError("an output file would replace an input file", path=output)
        if output.exists() and not args.overwrite:
            raise OutputError("the output file exists", path=output, hint="choose another name or pass --overwrite")
        if not output.parent.is_dir():
            raise OutputError("the output folder does not exist", path=output.parent)


def _distance_colours(signed, scale_mm: float):
    """Blue (inside) – white (on the surface) – red (outside), saturating at ±scale_mm."""
    import numpy as np

    t = np.clip(np.nan_to_num(np.asarray(signed), nan=0.0, posinf=scale_mm, neginf=-scale_mm) / scale_mm, -1.0, 1.0)
    white = np.array([255.0, 255.0, 255.0])
    red, blue = np.array([178.0, 24.0, 43.0]), np.array([33.0, 102.0, 172.0])
    outside = white + np.clip(t, 0, 1)[:, None] * (red - white)
    colours = np.where(t[:, None] >= 0, outside, white + np.clip(-t, 0, 1)[:, None] * (blue - white))
    return np.column_stack([np.round(colours), np.full(len(t), 255.0)]).astype(np.uint8)


def _write_distance_mesh(result, path: Path) -> None:
    import math

    import trimesh

    from Wonder3DMedLib.mesh_io import write_mesh

    mesh = result.prediction_mesh
    if mesh is None or len(mesh.faces) == 0:
        print(f"wonder3dmed compare: the prediction is empty; no distance mesh written to {path}", file=sys.stderr)
        return
    scale = result.hd95_mm if math.isfinite(result.hd95_mm) and result.hd95_mm > 0 else 1.0
    scale = max(scale, max((float(k) for k in result.surface_dice), default=1.0))
    coloured = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False,
                               vertex_colors=_distance_colours(result.signed_distance_pred_mm, scale))
    write_mesh(coloured, path, point_scalars={"signed_distance_mm": result.signed_distance_pred_mm})


def run(args: argparse.Namespace) -> int:
    from Wonder3DMedLib import NOT_FOR_DIAGNOSIS
    from Wonder3DMedLib.metrics import compare_files, format_table, write_report
    from Wonder3DMedLib.progress import StageProgress, TerminalProgress

    _check_outputs(args)
    tracker = StageProgress([("compare", 1.0)], TerminalProgress())
    try:
        with tracker.stage("compare") as progress:
            result = compare_files(
                args.prediction.path,
                args.reference.path,
                prediction_label=args.prediction.label,
                reference_label=args.reference.label,
                tolerances_mm=args.tolerance,
                align=("similarity" if args.align_scale else "rigid") if args.align else None,
                smoothing_sigma_voxels=args.smoothing,
                progress=progress,
            )
    finally:
        tracker.close()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    inputs = result.inputs
    print(f"prediction: {_describe(inputs.get('prediction', {}))}")
    print(f"reference:  {_describe(inputs.get('reference', {}))}")
    print(format_table(result))
    write_report(result, args.out)
    print(f"report: {args.out}")
    if args.distance_mesh is not None:
        _write_distance_mesh(result, args.distance_mesh)
        print(f"distance mesh: {args.distance_mesh}")
    print(NOT_FOR_DIAGNOSIS)
    return 0


def _describe(description: dict) -> str:
    text = description.get("file", "?")
    if description.get("label"):
        text += f" [{description['label']}]"
    return f"{text} ({description.get('kind', '?')})"
