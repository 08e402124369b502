"""``wonder3dmed views``: Wonder3D multiview diffusion on a framed input."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from Wonder3DMedLib.cli.arguments import add_device_option, add_diffusion_options

__all__ = ["register", "run"]

_FRAME_FILE = "frame.json"
_INPUT_FILE = "input.png"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "views",
        help="generate the 6 views with Wonder3D multiview diffusion",
        description=(
            "Run the Wonder3D v1.0 multiview cross-domain diffusion on a framed input (an input.png, or a "
            "folder written by `prepare`) and write 6 normal maps and 6 colour images in the original file "
            "layout (normals_000_<view>.png with the mask in alpha, rgb_000_<view>.png, "
            "masked_colors/rgb_000_<view>.png) plus the views.png contact sheet. An RGBA image whose alpha "
            "marks the object is framed the way Wonder3D frames its input; the input.png of a `prepare` "
            "folder (or one with a frame.json beside it) is already framed and is used as it is, and the "
            "frame.json is copied to the output so `mesh --frame` can place the surface. Masks come from the "
            "generated images themselves (background where the normal map and the colour image are both "
            "background-coloured); no network is downloaded."
        ),
    )
    parser.add_argument("input", type=Path, metavar="INPUT_PNG_OR_PREPARED_DIR", help="input.png or a prepare folder")
    parser.add_argument("--weights", type=Path, metavar="DIR", help="Wonder3D v1.0 checkpoint folder (hub layout)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder for the views")
    add_diffusion_options(parser)
    parser.add_argument("--eta", type=float, default=1.0, help="DDIM eta: 1 stochastic as Wonder3D, 0 deterministic (default: 1.0)")
    parser.add_argument(
        "--camera-table", choices=("pipeline", "dataset"), default="pipeline",
        help="camera angles: Wonder3D pipeline's float16 table or its dataset's float32 values (default: pipeline)",
    )
    add_device_option(parser)
    parser.add_argument(
        "--dtype", choices=("auto", "float32", "float16", "bfloat16"), default="auto",
        help="compute precision: auto = float16 on CUDA, float32 elsewhere (default: auto)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace views already in the output folder")
    parser.set_defaults(run=run)


def _input_image(path: Path):
    """The input image and whether it is already framed (a `prepare` folder or a frame.json beside it)."""
    from PIL import Image

    from Wonder3DMedLib.errors import InputError

    image_path = path / _INPUT_FILE if path.is_dir() else path
    if not image_path.is_file():
        raise InputError(
            "input image not found", path=image_path,
            hint="pass an RGBA/RGB PNG or a folder written by `wonder3dmed prepare` (it holds input.png)",
        )
    try:
        with Image.open(image_path) as opened:
            image = opened.copy()
    except Image.DecompressionBombError:
        raise InputError(
            "the input image is too large to be a framed object picture (over Pillow's size limit)",
            path=image_path,
            hint="crop it around the object and scale it down (Wonder3D works at 256×256)",
        ) from None
    except OSError as error:
        raise InputError(f"cannot read the input image: {error}", path=image_path) from None
    frame = image_path.parent / _FRAME_FILE
    return image, frame if frame.is_file() else None


def _check_output(out: Path, overwrite: bool) -> None:
    from Wonder3DMedLib.errors import OutputError
    from Wonder3DMedLib.views import VIEW_NAMES

    existing = [
        p for p in [out / "views.json", out / "views.png", *(out / f"normals_000_{v}.png" for v in VIEW_NAMES)] if p.exists()
    ]
    if existing and not overwrite:
        raise OutputError(
            f"the output folder already holds views ({existing[0].name}, ...)", path=out,
            hint="choose another --out or pass --overwrite",
        )


def run(args: argparse.Namespace) -> int:
    from Wonder3DMedLib import NOT_FOR_DIAGNOSIS
    from Wonder3DMedLib.errors import OutputError
    from Wonder3DMedLib.diffusion.generate import check_sampling_options, generate_views, load_pipeline
    from Wonder3DMedLib.progress import StageProgress, TerminalProgress
    from Wonder3DMedLib.views import save_views

    check_sampling_options(steps=args.steps, guidance=args.guidance, eta=args.eta, seed=args.seed)
    image, frame = _input_image(args.input)
    _check_output(args.out, args.overwrite)
    if frame is None and (args.out / _FRAME_FILE).is_file():
        raise OutputError(
            "the output folder holds a frame.json, which would not describe views of this unframed input "
            "(`mesh --frame` would place the surface wrongly)",
            path=args.out / _FRAME_FILE,
            hint="choose another --out, or move that frame.json away if you no longer need it",
        )
    tracker = StageProgress([("load", 1), ("diffusion", 12)], TerminalProgress())
    try:
        with tracker.stage("load") as progress:
            progress(0.0, "reading the checkpoint")
            pipeline = load_pipeline(args.weights, device=args.device, dtype=args.dtype)
        with tracker.stage("diffusion") as progress:
            views = generate_views(
                image, pipeline=pipeline, steps=args.steps, guidance=args.guidance, eta=args.eta, seed=args.seed,
                camera_table=args.camera_table, already_framed=frame is not None, progress=progress,
            )
    finally:
        tracker.close()
    written = save_views(views, args.out)
    if frame is not None and frame.resolve() != (args.out / _FRAME_FILE).resolve():
        shutil.copyfile(frame, args.out / _FRAME_FILE)
    coverage = ", ".join(f"{100 * m.mean():.0f}%" for m in views.masks)
    print(f"wrote {len(written)} files to {args.out} (views.png is the contact sheet)")
    print(f"foreground per view: {coverage}; {views.description}")
    print(NOT_FOR_DIAGNOSIS, file=sys.stderr)
    return 0
