"""Reconstruction benchmark: render → reconstruct → measure, with the visual hull as baseline.

For each shape (sphere, torus, bumpy blob, AAL atlas structures; see ``recon_cases.py``) the
ground-truth renderer makes the six 256² views; then each backend reconstructs a mesh
through the product path (``backends.reconstruct_mesh``) and is measured against the
reference surface: Chamfer distance / bounding-box diagonal (≥ 100 k area-uniform samples
each way), F-score at 1 % of the diagonal, volume IoU (ray parity), watertightness,
component count, wall and CPU time (on a shared machine wall time grows with the load; CPU
time of this process, all threads, does much less). The **visual hull** of the same masks, meshed the same way, is
the baseline, run in the same process; the table gives each backend's Chamfer ratio and IoU
gain against it. A **floor** row scores the reference against itself: the Chamfer of a
perfect reconstruction is not 0 but the mean spacing of two independent sample sets
(≈ 0.0016 of the diagonal with 100 k samples), so compare backends by their excess over it.

Robustness runs (``--robustness``) repeat the fast backend on views with Gaussian noise
σ = 0.15 on the normals, and with masks eroded / dilated by 1 px.

Run from the repository root::

    python benchmarks/bench_recon.py                       # fast + hull on every default shape
    python benchmarks/bench_recon.py --quick               # sphere + one structure, 128² views
    python benchmarks/bench_recon.py --backends hull,fast,neus --shapes sphere,thalamus_l --neus-steps 1000
    python benchmarks/bench_recon.py --robustness --shapes caudate_l,putamen_l
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import load_average  # noqa: E402
from benchmarks.recon_cases import ANATOMY, perturb_views, reference_shape, visual_hull_mesh  # noqa: E402
from benchmarks.recon_metrics import surface_scores  # noqa: E402
from Wonder3DMedLib.reconstruction.backends import reconstruct_mesh  # noqa: E402
from Wonder3DMedLib.reconstruction.render import render_views  # noqa: E402

__all__ = ["DEFAULT_SHAPES", "PERTURBATIONS", "measure", "floor_case", "run_case", "format_table", "format_markdown", "main"]

DEFAULT_SHAPES = (
    "sphere", "torus", "blob", "caudate_l", "putamen_l", "pallidum_l", "thalamus_l", "hippocampus_l", "amygdala_l",
    "thalamus_r@axial",
)

#: Robustness runs: name -> keyword arguments of ``perturb_views``.
PERTURBATIONS = {
    "clean": {},
    "noise 0.15": {"noise": 0.15, "seed": 7},
    "mask -1px": {"mask_px": -1},
    "mask +1px": {"mask_px": 1},
}


def measure(mesh, reference, *, samples: int) -> dict:
    """Scores of one mesh as a JSON-friendly dict."""
    scores = surface_scores(mesh, reference, samples=samples)
    return {
        "cd_over_diag": scores.chamfer_over_diagonal,
        "cd_over_side": scores.chamfer_over_max_side,
        "f_score": scores.f_score,
        "iou": scores.iou,
        "watertight": scores.watertight,
        "components": scores.components,
    }


def floor_case(reference, *, samples: int) -> dict:
    """The reference scored against itself with independent samples: what a perfect mesh scores."""
    return {"seconds": 0.0, "cpu_seconds": 0.0, **measure(reference.copy(), reference, samples=samples)}


def run_case(views, reference, backend: str, *, resolution: int, samples: int, neus_steps: int | None) -> dict:
    """Reconstruct ``views`` with one backend (``hull``, ``fast`` or ``neus``) and score it."""
    started, cpu_started = time.perf_counter(), time.process_time()
    stages = {}
    if backend == "hull":
        mesh = visual_hull_mesh(views, resolution=resolution)
    else:
        options = {"steps": neus_steps} if backend == "neus" else {}
        result = reconstruct_mesh(views, method=backend, resolution=resolution, **options)
        mesh, stages = result.mesh, {f"{name}_s": seconds for name, seconds in result.timings_s.items()}
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, **stages, **measure(mesh, reference, samples=samples)}


def format_table(rows: list[dict]) -> str:
    """The table, with each row's Chamfer ratio and IoU difference against the hull of the same views."""
    hulls = {(row["shape"], row["views"]): row for row in rows if row["method"] == "hull"}
    lines = [
        f"{'shape':<18} {'views':<11} {'method':<10} {'CD/diag':>8} {'CD/side':>8} {'F@1%':>6} {'IoU':>6} "
        f"{'closed':>6} {'parts':>5} {'time s':>7} {'CPU s':>6} {'CD/hull':>7} {'ΔIoU':>7}"
    ]
    for row in rows:
        hull = hulls.get((row["shape"], row["views"]))
        ratio = f"{row['cd_over_diag'] / hull['cd_over_diag']:7.2f}" if hull and row is not hull else f"{'':>7}"
        gain = f"{row['iou'] - hull['iou']:+7.3f}" if hull and row is not hull else f"{'':>7}"
        lines.append(
            f"{row['shape']:<18} {row['views']:<11} {row['method']:<10} {row['cd_over_diag']:8.5f} "
            f"{row['cd_over_side']:8.5f} {row['f_score']:6.3f} {row['iou']:6.3f} {str(row['watertight']):>6} "
            f"{row['components']:5d} {row['seconds']:7.1f} {row.get('cpu_seconds', float('nan')):6.1f} {ratio} {gain}"
        )
    return "\n".join(lines)


def format_markdown(rows: list[dict]) -> str:
    """The same table in Markdown (for the docs)."""
    hulls = {(row["shape"], row["views"]): row for row in rows if row["method"] == "hull"}
    lines = ["| shape | views | method | CD/diag | CD/side | F@1% | IoU | closed | time s | CPU s | CD/hull | ΔIoU |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        hull = hulls.get((row["shape"], row["views"]))
        compare = hull is not None and row is not hull
        ratio = f"{row['cd_over_diag'] / hull['cd_over_diag']:.2f}" if compare else ""
        gain = f"{row['iou'] - hull['iou']:+.3f}" if compare else ""
        lines.append(
            f"| {row['shape']} | {row['views']} | {row['method']} | {row['cd_over_diag']:.5f} | {row['cd_over_side']:.5f} "
            f"| {row['f_score']:.3f} | {row['iou']:.3f} | {'yes' if row['watertight'] else 'NO'} | {row['seconds']:.1f} "
            f"| {row.get('cpu_seconds', float('nan')):.1f} | {ratio} | {gain} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=",".join(DEFAULT_SHAPES),
                        help=f"comma list: sphere, torus, blob, aal:<label>, {', '.join(ANATOMY)}; "
                             "append @axial or @sagittal to see a structure from below or from the side, and put ~oracle or ~staircase after a structure for the labelmap surface of oracle mode or the unsmoothed one (default: %(default)s)")
    parser.add_argument("--backends", default="hull,fast", help="comma list of hull, fast, neus (default: %(default)s)")
    parser.add_argument("--size", type=int, default=256, help="view resolution in pixels (default: %(default)s)")
    parser.add_argument("--resolution", type=int, default=192, help="marching-cubes grid (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=100_000, help="surface samples each way (default: %(default)s)")
    parser.add_argument("--neus-steps", type=int, default=None,
                        help="NeuS steps (default: the device's schedule, 3000 steps; the CPU preset on a CPU)")
    parser.add_argument("--robustness", action="store_true",
                        help="also run the fast backend (and the hull) on noisy normals and on masks eroded/dilated by 1 px")
    parser.add_argument("--quick", action="store_true", help="sphere and the left thalamus at 128², 50k samples")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for neus (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="also print the table in Markdown")
    args = parser.parse_args(argv)
    if args.quick:
        args.shapes, args.size, args.resolution, args.samples = "sphere,thalamus_l", 128, 128, 50_000
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = set(backends) - {"hull", "fast", "neus"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    if "neus" in backends:
        import torch

        torch.set_num_threads(args.threads)
    print(f"load average {load_average()} at start (2-core machine shared with other work); views {args.size}², grid {args.resolution}³")
    rows = []
    for shape in [name.strip() for name in args.shapes.split(",") if name.strip()]:
        try:
            reference = reference_shape(shape)
        except ValueError as error:
            parser.error(str(error))
        clean = render_views(reference, size=args.size, description=f"benchmark {shape}")
        rows.append({"shape": shape, "views": "clean", "method": "floor", **floor_case(reference, samples=args.samples)})
        print(format_table(rows[-1:]).splitlines()[1], flush=True)
        perturbations = PERTURBATIONS if args.robustness else {"clean": {}}
        for label, perturbation in perturbations.items():
            views = perturb_views(clean, **perturbation) if perturbation else clean
            methods = backends if label == "clean" else [name for name in backends if name != "neus"]
            for backend in methods:
                row = {"shape": shape, "views": label, "method": backend}
                row.update(run_case(views, reference, backend, resolution=args.resolution,
                                    samples=args.samples, neus_steps=args.neus_steps))
                rows.append(row)
                print(format_table([row]).splitlines()[1], flush=True)
    print()
    print(format_table(rows))
    if args.markdown:
        print()
        print(format_markdown(rows))
    print(f"load average {load_average()} at end")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "args": vars(args)}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
