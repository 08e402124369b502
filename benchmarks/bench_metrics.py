"""Accuracy and speed of the comparison metrics: ours vs MONAI vs the analytic answer.

Cases of ``shared/design/metrics_data.md`` (part A4), masks voxelised at voxel centres on a
256 x 256 x 160 grid with spacing 0.9 x 0.9 x 1.5 mm:

1. concentric spheres, r 30 and 33 mm (every true distance is 3 mm);
2. sphere r 30 vs ellipsoid (36, 30, 24) shifted (3, 0, 2) mm;
3. head-sized: sphere r 80 vs ellipsoid (90, 80, 70) shifted (3, 0, 2) mm.

Truth: dense equal-area samples of the true surfaces with exact point-to-surface distances
(``Testing/Python/analytic_shapes.py``) and the overlap integrated exactly along z.
MONAI 1.6: ``compute_hausdorff_distance`` (max and 95th percentile), the pooled
``compute_average_surface_distance(symmetric=True)``, ``compute_surface_dice`` at 1 and 2 mm
with ``use_subvoxels=True`` (and without, for reference), ``compute_dice``, all with the
spacing in array-axis order — one call per metric, as a user would call them. Ours: both
labelmaps to surfaces, then ``compare_surfaces`` (all metrics, volumes, centroids and the
per-vertex distances). Runs of the two alternate, so that both see the same machine load;
the table shows the median wall time and the median CPU time of this process (all its
threads), and the ratios of ours to MONAI's full set. On a shared machine the CPU ratio is
the steadier of the two.

Run from the repository root: ``python benchmarks/bench_metrics.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "Testing" / "Python")]

from analytic_shapes import Ellipsoid, grid_volume, mask_on, true_dice, truth_metrics  # noqa: E402
from benchmarks.machine import describe  # noqa: E402
from Wonder3DMedLib.metrics import compare_surfaces, surface_from_labelmap  # noqa: E402

SHAPE_KJI = (160, 256, 256)
SPACING_IJK = (0.9, 0.9, 1.5)
CASES = {
    "concentric": (Ellipsoid((30, 30, 30)), Ellipsoid((33, 33, 33))),
    "ellipsoid": (Ellipsoid((30, 30, 30)), Ellipsoid((36, 30, 24), (3, 0, 2))),
    "head": (Ellipsoid((80, 80, 80)), Ellipsoid((90, 80, 70), (3, 0, 2))),
}
ROWS = ("hausdorff_mm", "hd95_mm", "assd_mm", "nsd_1", "nsd_2", "dice")


def run_ours(prediction, reference, workers):
    start, cpu = time.perf_counter(), time.process_time()
    if workers >= 2:  # the two surfaces in two threads, as compare_files does
        with ThreadPoolExecutor(2) as pool:
            surfaces = list(pool.map(surface_from_labelmap, (prediction, reference)))
    else:
        surfaces = [surface_from_labelmap(prediction), surface_from_labelmap(reference)]
    result = compare_surfaces(
        *surfaces,
        reference_volume=reference,
        prediction_volume=prediction,
        workers=workers,
    )
    seconds = (time.perf_counter() - start, time.process_time() - cpu)
    values = {
        "hausdorff_mm": result.hausdorff_mm,
        "hd95_mm": result.hd95_mm,
        "assd_mm": result.assd_mm,
        "nsd_1": result.surface_dice["1.0"],
        "nsd_2": result.surface_dice["2.0"],
        "dice": result.dice,
    }
    return values, seconds


def run_monai(prediction, reference):
    import torch
    from monai.metrics import (
        compute_average_surface_distance,
        compute_dice,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    spacing = tuple(float(s) for s in prediction.spacing[::-1])  # array-axis (k, j, i) order
    p = torch.from_numpy(prediction.array)[None, None]
    r = torch.from_numpy(reference.array)[None, None]
    calls = {
        "hausdorff_mm": lambda: compute_hausdorff_distance(p, r, spacing=spacing),
        "hd95_mm": lambda: compute_hausdorff_distance(p, r, percentile=95, spacing=spacing),
        "assd_mm": lambda: compute_average_surface_distance(p, r, symmetric=True, spacing=spacing),
        "nsd_1": lambda: compute_surface_dice(p, r, [1.0], spacing=spacing, use_subvoxels=True),
        "nsd_2": lambda: compute_surface_dice(p, r, [2.0], spacing=spacing, use_subvoxels=True),
        "dice": lambda: compute_dice(p, r, include_background=True),
    }
    values = {}
    start, cpu = time.perf_counter(), time.process_time()
    for key, call in calls.items():
        values[key] = float(call())
    seconds = (time.perf_counter() - start, time.process_time() - cpu)
    # Edge-voxel surface Dice (no subvoxels), not timed: shown for reference.
    values["nsd_1 (edge voxels)"] = float(compute_surface_dice(p, r, [1.0], spacing=spacing))
    values["nsd_2 (edge voxels)"] = float(compute_surface_dice(p, r, [2.0], spacing=spacing))
    return values, seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="Prints one table per case.")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES), help="cases to run (default: all)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each method; the median is shown (default: 3)")
    parser.add_argument("--workers", type=int, default=2, help="threads of our comparison (default: 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for MONAI (default: 2)")
    parser.add_argument("--samples", type=int, default=400_000, help="truth samples per surface (default: 400000)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    import monai

    print(f"machine: {describe()}")
    print(f"grid {SHAPE_KJI[::-1]} (i, j, k) voxels, spacing {SPACING_IJK} mm; MONAI {monai.__version__}, torch "
          f"{torch.__version__} with {args.threads} threads; ours with {args.workers} worker threads; "
          f"median of {args.repeat} runs\n")
    grid = grid_volume(SHAPE_KJI, SPACING_IJK)
    for name in args.cases:
        prediction_shape, reference_shape = CASES[name]
        prediction, reference = mask_on(grid, prediction_shape), mask_on(grid, reference_shape)
        truth = truth_metrics(prediction_shape, reference_shape, samples=args.samples)
        truth = {
            "hausdorff_mm": truth["hausdorff_mm"], "hd95_mm": truth["hd95_mm"], "assd_mm": truth["assd_mm"],
            "nsd_1": truth["surface_dice"]["1.0"], "nsd_2": truth["surface_dice"]["2.0"],
            "dice": true_dice(prediction_shape, reference_shape),
        }
        run_monai(prediction, reference)  # warm-up: imports and first-call costs are not timed
        run_ours(prediction, reference, args.workers)
        ours_runs, monai_runs = [], []
        for _ in range(args.repeat):  # interleaved, so that both see the same machine load
            ours_runs.append(run_ours(prediction, reference, args.workers))
            monai_runs.append(run_monai(prediction, reference))
        ours, theirs = ours_runs[0][0], monai_runs[0][0]
        ours_wall, ours_cpu = np.median([t for _, t in ours_runs], axis=0)
        monai_wall, monai_cpu = np.median([t for _, t in monai_runs], axis=0)
        print(f"== {name}: {prediction_shape} vs {reference_shape}, {int(prediction.array.sum())} and "
              f"{int(reference.array.sum())} voxels")
        print(f"{'metric':24}{'truth':>10}{'ours':>10}{'|err|':>9}{'MONAI':>10}{'|err|':>9}")
        for key in ROWS:
            print(f"{key:24}{truth[key]:10.4f}{ours[key]:10.4f}{abs(ours[key] - truth[key]):9.4f}"
                  f"{theirs[key]:10.4f}{abs(theirs[key] - truth[key]):9.4f}")
        for key in ("nsd_1 (edge voxels)", "nsd_2 (edge voxels)"):
            nsd = truth["nsd_1" if "1" in key else "nsd_2"]
            print(f"{key:24}{nsd:10.4f}{'':10}{'':9}{theirs[key]:10.4f}{abs(theirs[key] - nsd):9.4f}")
        print(f"{'wall time (s)':24}{'':10}{ours_wall:10.2f}{'':9}{monai_wall:10.2f}")
        print(f"{'CPU time (s)':24}{'':10}{ours_cpu:10.2f}{'':9}{monai_cpu:10.2f}")
        print(f"{'ratio ours / MONAI':24}{'wall':>10}{ours_wall / monai_wall:10.2f}")
        print(f"{'':24}{'CPU':>10}{ours_cpu / monai_cpu:10.2f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
