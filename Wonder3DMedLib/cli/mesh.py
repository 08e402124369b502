"""``wonder3dmed mesh``: six views -> a watertight surface."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from Wonder3DMedLib.cli.arguments import RECON_METHODS, add_device_option

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "mesh",
        help="reconstruct a watertight surface from 6 views",
        description=(
            "Reconstruct a watertight mesh from a views folder in the original Wonder3D layout "
            "(normals_000_<view>.png RGBA with the mask in alpha, rgb_000_<view>.png, optional "
            "masked_colors/; any square resolution). Without --frame the mesh is in the model frame "
            "(front camera axes, box [-1,1]^3) and marked FRAME=wonder3d-model instead of a SPACE tag, "
            "because it is not in patient coordinates; with a frame.json from `prepare`, it is written "
            "in RAS millimetres (SPACE=RAS, read correctly by 3D Slicer)."
        ),
    )
    parser.add_argument("views_dir", type=Path, metavar="VIEWS_DIR", help="folder holding the six views")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="MESH.{ply,stl,obj,vtk,vtp}",
        help="output mesh file; the suffix picks the format (.ply, .stl, .obj, .vtk or .vtp)",
    )
    parser.add_argument(
        "--recon", choices=RECON_METHODS, default="fast",
        help="fast: visual hull + normal integration on the CPU (seconds at the default grid, about a minute "
        "or two at 512); neus: the original NeuS-style "
        "optimisation (minutes on a GPU; on a CPU 6–40 min depending on the load, and on most shapes "
        "slightly less accurate than fast) (default: fast)",
    )
    parser.add_argument(
        "--mc-resolution", type=int, default=192, metavar="N", help="marching-cubes grid size, 32 to 512 (default: 192)"
    )
    parser.add_argument("--frame", type=Path, metavar="frame.json", help="place the mesh in RAS mm with this frame record")
    parser.add_argument(
        "--smooth", type=int, default=10, metavar="N",
        help="Taubin smoothing passes on the mesh (volume-preserving; 0 disables) (default: 10)",
    )
    parser.add_argument(
        "--max-faces", type=int, default=None, metavar="N",
        help="decimate to about N triangles (at least 100) when the mesh has more (kept only if it stays closed) "
        "(default: no decimation)",
    )
    parser.add_argument(
        "--neus-steps", type=int, default=None, metavar="N",
        help="--recon neus only: optimisation steps, the original schedule compressed to N (default: 3000 as the "
        "original; on a CPU with a reduced batch, 6-40 min on 2 cores depending on the load; fewer steps are faster "
        "but, on anatomy, barely better than the visual hull at 1000; the progress bar shows an ETA measured from the steps already run)",
    )
    add_device_option(parser, help="--recon neus only: torch device for the optimisation: auto (CUDA, else CPU), cpu, "
                      "cuda or cuda:N (default: auto)")
    parser.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    parser.set_defaults(run=run)


def _check_arguments(args: argparse.Namespace) -> None:
    from Wonder3DMedLib.errors import InputError, OutputError
    from Wonder3DMedLib.mesh_io import MESH_SUFFIXES

    if args.out.suffix.lower() not in MESH_SUFFIXES:
        raise InputError(f"unsupported mesh file type '{args.out.suffix}'", path=args.out, hint=f"use one of {', '.join(MESH_SUFFIXES)}")
    if args.out.is_dir():
        raise OutputError("--out is a folder", path=args.out, hint="give a file name, e.g. mesh.ply")
    if args.out.exists() and not args.overwrite:
        raise OutputError("the output file exists", path=args.out, hint="choose another --out or pass --overwrite")
    if not args.out.parent.is_dir():
        raise OutputError("the output folder does not exist", path=args.out.parent)
    if not 32 <= args.mc_resolution <= 512:
        raise InputError(f"--mc-resolution must be between 32 and 512, got {args.mc_resolution}")
    if args.smooth < 0:
        raise InputError(f"--smooth must be 0 or more, got {args.smooth}")
    if args.max_faces is not None and args.max_faces < 100:
        raise InputError(f"--max-faces must be at least 100, got {args.max_faces}")
    if args.neus_steps is not None and args.recon != "neus":
        raise InputError("--neus-steps only applies to --recon neus")
    if args.neus_steps is not None and args.neus_steps < 1:
        raise InputError(f"--neus-steps must be at least 1, got {args.neus_steps}")


def _backend_options(args: argparse.Namespace) -> dict:
    """Options only the chosen backend understands."""
    if args.recon == "neus":
        return {"steps": args.neus_steps, "device": args.device}
    return {}


def run(args: argparse.Namespace) -> int:
    from Wonder3DMedLib import NOT_FOR_DIAGNOSIS
    from Wonder3DMedLib.imaging.framing import FrameRecord, place_mesh
    from Wonder3DMedLib.mesh_io import MODEL_SPACE, write_mesh
    from Wonder3DMedLib.output_folder import write_file_atomically
    from Wonder3DMedLib.progress import StageProgress, TerminalProgress
    from Wonder3DMedLib.reconstruction.backends import reconstruct_mesh
    from Wonder3DMedLib.views import load_views

    _check_arguments(args)
    if args.device != "auto" and args.recon != "neus":
        print(f"note: --device {args.device} is ignored: only --recon neus uses torch; fast runs on the CPU",
              file=sys.stderr)
    frame = FrameRecord.load(args.frame) if args.frame is not None else None
    tracker = StageProgress([("read views", 1.0), ("reconstruct", 30.0), ("write", 1.0)], TerminalProgress())
    try:
        with tracker.stage("read views"):
            views = load_views(args.views_dir)
        with tracker.stage("reconstruct") as progress:
            result = reconstruct_mesh(
                views,
                method=args.recon,
                resolution=args.mc_resolution,
                smoothing_iterations=args.smooth,
                target_faces=args.max_faces,
                progress=progress,
                **_backend_options(args),
            )
        with tracker.stage("write"):
            mesh, space = (place_mesh(result.mesh, frame), "RAS") if frame is not None else (result.mesh, MODEL_SPACE)
            written = write_file_atomically(args.out, lambda path: write_mesh(mesh, path, space=space), what="mesh")
    finally:
        tracker.close()
    where = "RAS millimetres" if frame is not None else "the model frame (not patient coordinates; pass --frame to place it)"
    print(
        f"wrote {written} ({len(result.mesh.faces)} triangles, watertight: {result.mesh.is_watertight}) in {where}; "
        f"{args.recon} reconstruction of {views.source} views, "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in tracker.timings_s.items()),
        file=sys.stderr,
    )
    if views.source == "oracle":
        print("note: these are ORACLE views rendered from a reference surface, not generated views", file=sys.stderr)
    print(NOT_FOR_DIAGNOSIS, file=sys.stderr)
    return 0
