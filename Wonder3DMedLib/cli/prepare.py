"""``wonder3dmed prepare``: one slice of a volume -> Wonder3D's framed RGBA input + frame.json."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from Wonder3DMedLib.cli.arguments import labelled_path, slice_spec

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="frame the object on one slice for Wonder3D (input.png + frame.json)",
        description=(
            "Read a volume (DICOM file or series folder, NIfTI, NRRD, MHA/MHD; a 2D picture such as PNG is read "
            "as one slice of 1 mm pixels, with a note), take one slice, window it "
            "to 8 bit, isolate the object (a mask file or an automatic mask) and frame it exactly as "
            "Wonder3D preprocesses its input. Writes input.png (RGBA 256x256), frame.json (model frame <-> "
            "slice pixels <-> RAS mm) and slice_preview.png (the windowed slice with the mask outline)."
        ),
        epilog=(
            "Examples:\n"
            "  wonder3dmed prepare ch2.nii.gz --slice axial:80 --mask aal.nii.gz:Thalamus_L --out thalamus\n"
            "  wonder3dmed prepare ct_series/ --slice coronal:200 --auto-mask --window bone --out femur\n"
            "  wonder3dmed prepare mr.nrrd --slice k:12 --auto-mask --roi 40,30,120,110 --out lesion"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="volume file or DICOM series folder")
    parser.add_argument(
        "--slice", type=slice_spec, required=True, metavar="AXIS:INDEX",
        help="slice to use: axial|coronal|sagittal (through the volume's direction matrix, laid out as in 3D "
        "Slicer's views) or i|j|k (the grid as stored), and its grid index (AXIS:INDEX, e.g. axial:80) or a point "
        "in RAS millimetres it goes through (AXIS@R,A,S, e.g. axial@-10,-18,8: the nearest grid slice)",
    )
    mask = parser.add_mutually_exclusive_group()
    mask.add_argument(
        "--mask", type=labelled_path, metavar="FILE[:LABEL]",
        help="labelmap or segmentation file, optionally with the label value or segment name of the object; "
        "it may be on another grid (it is resampled onto the slice in patient space)",
    )
    mask.add_argument(
        "--auto-mask", action="store_true",
        help="find the object automatically (Otsu threshold of the windowed slice, largest connected component, "
        "holes filled)",
    )
    parser.add_argument(
        "--roi", metavar="COL0,ROW0,COL1,ROW1",
        help="a box in the pixels of slice_preview.png (inclusive): alone it is the object; with --auto-mask the "
        "object is looked for inside it; with --mask the mask is cut to it",
    )
    parser.add_argument(
        "--threshold", type=float, metavar="VALUE",
        help="with --auto-mask: keep values above VALUE (in the volume's units, e.g. HU) instead of Otsu's threshold",
    )
    parser.add_argument(
        "--window", metavar="PRESET|C,W",
        help="intensity window: a preset (brain, soft-tissue, bone, lung), center,width, or the DICOM window "
        "when omitted (else an automatic percentile window)",
    )
    parser.add_argument("--series", metavar="UID", help="SeriesInstanceUID to read when the DICOM folder holds several")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace input.png, frame.json and slice_preview.png if they exist")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from Wonder3DMedLib import NOT_FOR_DIAGNOSIS
    from Wonder3DMedLib.errors import InputError
    from Wonder3DMedLib.imaging.io import read_volume
    from Wonder3DMedLib.imaging.masks import parse_box
    from Wonder3DMedLib.imaging.prepare import OUTPUT_FILES, prepare_slice, write_prepared
    from Wonder3DMedLib.progress import StageProgress, TerminalProgress

    box = parse_box(args.roi) if args.roi is not None else None
    if args.threshold is not None and not args.auto_mask:
        raise InputError("--threshold goes with --auto-mask")
    if args.mask is None and not args.auto_mask and box is None:
        raise InputError("say what the object is: --mask FILE[:LABEL], --auto-mask or --roi COL0,ROW0,COL1,ROW1")
    existing = [name for name in OUTPUT_FILES if (args.out / name).exists()]
    if existing and not args.overwrite:
        from Wonder3DMedLib.errors import OutputError

        raise OutputError(
            f"{', '.join(existing)} already exist in {args.out}",
            hint="choose another --out folder, or pass --overwrite to replace them",
        )
    tracker = StageProgress([("read", 1.0)], TerminalProgress(disable=not args.input.is_dir()))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the notes are printed below instead
            with tracker.stage("read") as progress:
                volume = read_volume(args.input, series_uid=args.series, progress=progress)
    finally:
        tracker.close()
    prepared = prepare_slice(
        volume,
        axis=args.slice.axis,
        index=args.slice.index,
        ras=args.slice.ras,
        window=args.window,
        mask_file=None if args.mask is None else args.mask.path,
        mask_label=None if args.mask is None else args.mask.label,
        automatic=args.auto_mask,
        threshold=args.threshold,
        box=box,
    )
    written = write_prepared(prepared, args.out, overwrite=args.overwrite)
    i, j, k = volume.shape_ijk
    spacing = "×".join(f"{s:.4g}" for s in volume.spacing)
    kind = " ".join(v for v in (volume.metadata.get("format", ""), volume.metadata.get("modality", "")) if v)
    print(f"input:  {args.input} ({kind + ', ' if kind else ''}{i}×{j}×{k} voxels of {spacing} mm)")
    if args.mask is not None:
        print(f"mask file: {args.mask}")
    for line in prepared.summary():
        print(line)
    for note in prepared.notes:
        print(f"note:   {note}")
    print("wrote:  " + ", ".join(str(path) for path in written.values()))
    print(NOT_FOR_DIAGNOSIS)
    return 0
