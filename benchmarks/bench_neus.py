"""Benchmark of the NeuS-ortho backend: render → reconstruct → measure, next to the visual hull.

For a sphere and an anatomical structure (AAL atlas label, default the left thalamus),
rendered with ``reconstruction.render.render_views`` (256² by default), it runs

* the **visual hull** of the same six masks (192³ cells, marching cubes) — the baseline;
* the **NeuS-ortho** backend (the reduced CPU preset with a step count of your choice);

and prints Chamfer distance / bounding-box diagonal (≥ 100 k area-uniform samples each
way), F-score at 1 % of the diagonal, volume IoU (ray-parity voxelisation), watertightness,
component count and wall time. ``--estimate-full`` also times steps of the original's full
configuration (1024² images, ≈262 k samples per step) on this machine to give an honest
estimate of a full 3000-step run.

Shapes, the hull baseline and the scores come from ``recon_cases.py`` and ``recon_metrics.py``
(shared with ``bench_recon.py``, which runs every backend through the product's meshing);
this script keeps what is NeuS-specific: the raw and largest-component export, the training
summary and the full-run estimate.

Run from the repository root::

    python benchmarks/bench_neus.py --steps 1000
    python benchmarks/bench_neus.py --help
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_recon import measure  # noqa: E402
from benchmarks.machine import load_average  # noqa: E402
from benchmarks.recon_cases import largest_component, reference_shape, visual_hull_mesh  # noqa: E402
from Wonder3DMedLib.reconstruction.meshing import extract_mesh  # noqa: E402
from Wonder3DMedLib.reconstruction.render import render_views  # noqa: E402
from Wonder3DMedLib.views import MultiviewImages  # noqa: E402

__all__ = ["run_neus", "estimate_full_run"]

def run_neus(views: MultiviewImages, config, *, mc_resolution: int = 192, progress=None):
    """Reconstruct with NeuS and mesh its SDF (one pass, every piece kept); returns (mesh, NeusResult, wall s, CPU s)."""
    from Wonder3DMedLib.reconstruction.neus import reconstruct_neus

    started, cpu_started = time.perf_counter(), time.process_time()
    result = reconstruct_neus(views, config=config, device="cpu", progress=progress)
    mesh = extract_mesh(result.sdf, resolution=mc_resolution, keep_largest=False)
    return mesh, result, time.perf_counter() - started, time.process_time() - cpu_started


def estimate_full_run(views: MultiviewImages, *, probe_steps: int = 5, sample_budgets=(32768, 65536)) -> dict:
    """Time the original's configuration on this machine and extrapolate a full run.

    Steps of the default :class:`NeusConfig` (1024² images) are timed in its most expensive
    phase (steps 2000–2999: 6 active hash levels) at smaller per-step sample budgets, so
    memory stays within a few GB; the time per step is fitted linearly in the sample count
    and evaluated at the original's 262 144 samples. Occupancy refreshes are timed
    separately: the first 256 steps refresh all 128³ cells every 16 steps, later ones a
    quarter of the cells plus as many occupied ones. The estimate is therefore an upper
    bound for the first two thirds of a run (4 and 5 levels are cheaper).
    """
    import torch

    from Wonder3DMedLib.reconstruction.neus import NeusConfig
    from Wonder3DMedLib.reconstruction.neus.data import training_pixels
    from Wonder3DMedLib.reconstruction.neus.train import NeusTrainer

    full = NeusConfig()
    pixels = training_pixels(views, size=full.image_size, view_weights=full.view_weights)
    trainer = NeusTrainer(pixels, full, torch.device("cpu"))
    started = time.perf_counter()
    trainer.prepare_step(0)  # a warm-up refresh: every cell
    warmup_refresh = time.perf_counter() - started
    samples, seconds = [], []
    for budget in sample_budgets:
        for probe in range(probe_steps):
            started = time.perf_counter()
            record = trainer.step(2001 + probe)  # not a multiple of 16: no refresh inside
            elapsed = time.perf_counter() - started
            # steer the ray count straight to the budget instead of the original's slow smoothing
            trainer.rays = max(1, int(record["rays"] * budget / max(record["samples"], 1.0)))
            if probe > 0:
                samples.append(record["samples"])
                seconds.append(elapsed)
    started = time.perf_counter()
    trainer.grid.update(1000, trainer._occupancy, threshold=full.occupancy_threshold,
                        ema_decay=full.occupancy_ema_decay, warmup_steps=full.occupancy_warmup_steps)
    later_refresh = time.perf_counter() - started
    slope, intercept = np.polyfit(samples, seconds, 1)
    per_step = float(slope * full.samples_per_step + intercept)
    warmup_refreshes = -(-full.occupancy_warmup_steps // full.occupancy_update_every)
    later_refreshes = full.steps // full.occupancy_update_every - warmup_refreshes
    total = per_step * full.steps + warmup_refreshes * warmup_refresh + later_refreshes * later_refresh
    return {
        "probe_samples": [int(v) for v in samples],
        "probe_seconds": [round(v, 3) for v in seconds],
        "seconds_per_step_at_262k": round(per_step, 3),
        "warmup_refresh_s": round(warmup_refresh, 3),
        "later_refresh_s": round(later_refresh, 3),
        "full_run_hours": round(total / 3600.0, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000, help="NeuS steps of the reduced CPU preset (default 1000)")
    parser.add_argument("--size", type=int, default=256, help="side of the rendered views in pixels (default 256)")
    parser.add_argument("--shapes", default="sphere,thalamus_l",
                        help="comma list of shapes of recon_cases.reference_shape (sphere, thalamus_l, aal:<label>, ...)")
    parser.add_argument("--mc-resolution", type=int, default=192, help="marching-cubes grid (default 192)")
    parser.add_argument("--samples", type=int, default=100_000, help="surface samples each way (default 100000)")
    parser.add_argument("--estimate-full", action="store_true", help="also time the original's full configuration")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE",
                        help="replace NeusConfig fields of the CPU preset (as the product uses it for rendered "
                             "views), values as JSON, e.g. "
                             "--set normal_keep=0.8 mask_keep=0.9 cos_anneal_end=6667 (the original's ranking and annealing)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    import torch

    from Wonder3DMedLib.reconstruction.neus.backend import backend_config

    torch.set_num_threads(args.threads)
    try:
        overrides = _overrides(args.set)
        # the product's default for rendered ('oracle') views: the CPU preset with equal view weights
        default = backend_config(torch.device("cpu"), steps=args.steps, source="oracle")
        config = dataclasses.replace(default, **overrides)
    except (TypeError, ValueError) as error:
        parser.error(f"--set: {error}")
    print(f"load average before: {load_average()}  (2-core machine shared with other work)")
    if overrides:
        print(f"fields replaced: {overrides}")
    print(f"NeuS CPU preset: {args.steps} steps, views {args.size}², {config.samples_per_step} samples/step "
          f"(≤ {config.max_rays} rays), step {config.render_step_size:.4f}, occupancy {config.occupancy_resolution}³")
    rows = []
    for name in [s.strip() for s in args.shapes.split(",") if s.strip()]:
        try:
            reference = reference_shape(name)
        except ValueError as error:
            parser.error(str(error))
        views = render_views(reference, size=args.size, description=f"benchmark {name}")
        started, cpu_started = time.perf_counter(), time.process_time()
        hull = visual_hull_mesh(views, resolution=args.mc_resolution)
        rows.append({"shape": name, "method": "visual hull", "seconds": time.perf_counter() - started,
                     "cpu_seconds": time.process_time() - cpu_started,
                     **measure(hull, reference, samples=args.samples)})
        mesh, result, neus_s, neus_cpu = run_neus(views, config, mc_resolution=args.mc_resolution)
        rows.append({"shape": name, "method": f"NeuS {args.steps} st, MC", "seconds": neus_s,
                     "cpu_seconds": neus_cpu, **measure(mesh, reference, samples=args.samples),
                     "training": result.stats.summary()})
        rows.append({"shape": name, "method": f"NeuS {args.steps} st, largest", "seconds": neus_s,
                     "cpu_seconds": neus_cpu,
                     **measure(largest_component(mesh), reference, samples=args.samples)})
        _print_rows(rows[-3:])
    estimate = None
    if args.estimate_full:
        views = render_views(reference_shape("sphere"), size=args.size)
        estimate = estimate_full_run(views)
        print("full original configuration on this CPU:", json.dumps(estimate, indent=1))
    print(f"load average after: {load_average()}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "full_run_estimate": estimate, "config": config.to_dict()},
                                        indent=1, default=float))
    return 0


def _overrides(pairs: list[str]) -> dict:
    """``["name=json", ...]`` -> ``{name: value}`` (JSON lists become tuples, as NeusConfig stores them)."""
    result = {}
    for pair in pairs:
        name, separator, text = pair.partition("=")
        if not separator:
            raise ValueError(f"expected FIELD=VALUE, got {pair!r}")
        value = json.loads(text)
        result[name] = tuple(value) if isinstance(value, list) else value
    return result


def _print_rows(rows: list[dict]) -> None:
    print(f"{'shape':<12} {'method':<24} {'CD/diag':>9} {'CD/side':>9} {'F@1%':>6} {'IoU':>6} "
          f"{'closed':>6} {'parts':>5} {'wall s':>8} {'CPU s':>8}")
    baseline = rows[0]
    for row in rows:
        cpu = row.get("cpu_seconds")
        print(f"{row['shape']:<12} {row['method']:<24} {row['cd_over_diag']:9.5f} {row['cd_over_side']:9.5f} "
              f"{row['f_score']:6.3f} {row['iou']:6.3f} {str(row['watertight']):>6} {row['components']:5d} "
              f"{row['seconds']:8.1f} {'' if cpu is None else f'{cpu:8.1f}'}")
    if len(rows) > 1 and baseline["cd_over_diag"] > 0:
        for row in rows[1:]:
            print(f"  {row['method']} / hull: Chamfer ×{row['cd_over_diag'] / baseline['cd_over_diag']:.2f}, "
                  f"IoU {row['iou'] - baseline['iou']:+.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
