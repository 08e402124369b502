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

Every measuring helper is an importable function (``reference_sphere``, ``reference_label``,
``mesh_from_sdf_grid``, ``visual_hull_mesh``, ``surface_scores``, ``estimate_full_run``)
so ``bench_recon.py`` can reuse them.

Run from the repository root::

    python benchmarks/bench_neus.py --steps 600
    python benchmarks/bench_neus.py --help
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from Wonder3DMedLib.reconstruction.cameras import wonder3d_cameras  # noqa: E402
from Wonder3DMedLib.reconstruction.render import render_views  # noqa: E402
from Wonder3DMedLib.views import MultiviewImages  # noqa: E402

__all__ = [
    "reference_sphere",
    "reference_label",
    "mesh_from_sdf_grid",
    "largest_component",
    "visual_hull_mesh",
    "inside_cells",
    "surface_scores",
    "run_neus",
    "estimate_full_run",
]

AAL_PATH = Path("/usr/share/mricron/templates/aal.nii.gz")

# Model frame = front camera (x image-right, y up, z towards the camera). Looking at the
# patient from the front: model x = patient left (−R), y = superior, z = anterior (a rotation).
RAS_TO_MODEL = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


def reference_sphere(radius: float = 0.65, subdivisions: int = 6) -> trimesh.Trimesh:
    """Icosphere of ``radius`` model units at the origin (81 920 triangles at subdivision 6)."""
    return trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)


def reference_label(label: int | str = 77, *, path: Path = AAL_PATH, longest_side: float = 1.5,
                    smoothing_voxels: float = 1.0) -> trimesh.Trimesh:
    """Marching-cubes surface of one atlas label, centred, longest bounding-box side = ``longest_side``.

    The label mask is smoothed with a Gaussian of ``smoothing_voxels`` before marching
    cubes at 0.5 (an organ-like surface rather than voxel stairs); the largest component is
    kept; vertices go RAS mm → model frame with :data:`RAS_TO_MODEL`, then are centred and scaled.
    """
    from scipy.ndimage import gaussian_filter
    from skimage.measure import marching_cubes

    from Wonder3DMedLib.imaging.labels import label_mask, read_labelmap

    labelled = read_labelmap(path)
    mask, _ = label_mask(labelled, label)
    volume = labelled.volume
    field = gaussian_filter(np.pad(mask.astype(np.float32), 3), smoothing_voxels)
    vertices, faces, _, _ = marching_cubes(field, level=0.5)
    ijk = vertices[:, ::-1] - 3.0  # (k, j, i) -> (i, j, k), undo the padding
    ras = volume.ijk_to_ras_points(ijk)
    mesh = trimesh.Trimesh(ras @ RAS_TO_MODEL.T, faces, process=True)
    pieces = mesh.split(only_watertight=False)
    mesh = max(pieces, key=lambda piece: len(piece.faces))
    if mesh.volume < 0:
        mesh.invert()
    lower, upper = mesh.bounds
    mesh.apply_translation(-(lower + upper) / 2)
    mesh.apply_scale(longest_side / float(np.max(upper - lower)))
    return mesh


def mesh_from_sdf_grid(grid: np.ndarray, *, inside_negative: bool = True, level: float = 0.0) -> trimesh.Trimesh:
    """Marching cubes of a cell-centred grid over [−1, 1]³, padded so the mesh is closed.

    Parameters
    ----------
    grid : (R, R, R) float — value at cell centres ``−1 + (2i + 1)/R``, index order (x, y, z)
    inside_negative : bool — the object is where ``grid < level`` (an SDF); else ``> level``
    level : float

    Returns
    -------
    trimesh.Trimesh — model frame, outward winding
    """
    from skimage.measure import marching_cubes

    resolution = grid.shape[0]
    field = np.asarray(grid, dtype=np.float32) - level
    if not inside_negative:
        field = -field
    field = np.pad(field, 1, constant_values=max(float(np.abs(field).max()), 1.0))
    if not (field < 0).any():
        return trimesh.Trimesh()
    spacing = 2.0 / resolution
    vertices, faces, _, _ = marching_cubes(field, level=0.0, spacing=(spacing,) * 3)
    vertices = vertices + (-1.0 + spacing / 2 - spacing)
    mesh = trimesh.Trimesh(vertices, faces, process=True)
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def largest_component(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The piece with the most triangles (what the product's meshing keeps)."""
    pieces = mesh.split(only_watertight=False)
    return max(pieces, key=lambda piece: len(piece.faces)) if len(pieces) > 1 else mesh


def visual_hull_mesh(views: MultiviewImages, *, resolution: int = 192) -> trimesh.Trimesh:
    """Intersection of the six silhouettes on a ``resolution``³ grid, meshed by marching cubes.

    A cell centre is inside when it projects into every view's mask (nearest pixel).
    """
    centres = -1.0 + (2.0 * np.arange(resolution) + 1.0) / resolution
    y, z = np.meshgrid(centres, centres, indexing="ij")
    occupancy = np.empty((resolution,) * 3, dtype=np.float32)
    for i, x in enumerate(centres):
        points = np.stack([np.full(y.size, x), y.ravel(), z.ravel()], axis=1)
        inside = np.ones(len(points), dtype=bool)
        for index, camera in enumerate(wonder3d_cameras()):
            col, row, _ = camera.project(points, views.size).T
            col = np.clip(np.rint(col).astype(int), 0, views.size - 1)
            row = np.clip(np.rint(row).astype(int), 0, views.size - 1)
            inside &= views.masks[index][row, col]
        occupancy[i] = inside.reshape(resolution, resolution)
    return mesh_from_sdf_grid(occupancy, inside_negative=False, level=0.5)


def inside_cells(mesh: trimesh.Trimesh, lower: np.ndarray, cell: float, shape: tuple[int, int, int]) -> np.ndarray:
    """Ray-parity inside test of the cell centres ``lower + (index + ½)·cell`` of a closed mesh.

    Columns run along z through each (x, y) cell centre, shifted by an irrational fraction of
    a cell so no column meets a vertex or an edge; a centre is inside when an odd number of
    triangles cross its column below it.

    Returns
    -------
    (nx, ny, nz) bool
    """
    nx, ny, nz = shape
    shift = np.array([np.sqrt(2.0) - 1.0, np.sqrt(3.0) - 1.5]) * 1e-3
    triangles = np.asarray(mesh.triangles)
    u = (triangles[:, :, 0] - lower[0]) / cell - 0.5 - shift[0]  # column coordinates, centres at integers
    v = (triangles[:, :, 1] - lower[1]) / cell - 0.5 - shift[1]
    counts = np.zeros((nx, ny, nz + 1), dtype=np.int32)
    i_lo, i_hi = np.ceil(u.min(axis=1)).astype(int), np.floor(u.max(axis=1)).astype(int)
    j_lo, j_hi = np.ceil(v.min(axis=1)).astype(int), np.floor(v.max(axis=1)).astype(int)
    span = np.maximum(i_hi - i_lo, j_hi - j_lo) + 1
    for size in np.unique(span[span > 0]):
        faces = np.flatnonzero(span == size)
        di, dj = (a.ravel() for a in np.meshgrid(np.arange(size), np.arange(size), indexing="ij"))
        step = max(1, 4_000_000 // (size * size))
        for start in range(0, len(faces), step):
            f = faces[start : start + step, None]
            ci, cj = i_lo[f] + di, j_lo[f] + dj
            a_u, a_v = u[f, 0], v[f, 0]
            e1u, e1v = u[f, 1] - a_u, v[f, 1] - a_v
            e2u, e2v = u[f, 2] - a_u, v[f, 2] - a_v
            det = e1u * e2v - e1v * e2u
            with np.errstate(divide="ignore", invalid="ignore"):
                b1 = ((ci - a_u) * e2v - (cj - a_v) * e2u) / det
                b2 = (e1u * (cj - a_v) - e1v * (ci - a_u)) / det
                hit = (det != 0) & (b1 >= 0) & (b2 >= 0) & (b1 + b2 <= 1)
            hit &= (ci >= 0) & (ci < nx) & (cj >= 0) & (cj < ny)
            face = np.broadcast_to(f, hit.shape)[hit]
            b1, b2 = b1[hit], b2[hit]
            z = triangles[face, 0, 2] * (1 - b1 - b2) + triangles[face, 1, 2] * b1 + triangles[face, 2, 2] * b2
            k = np.clip(np.ceil((z - lower[2]) / cell - 0.5), 0, nz).astype(int)
            np.add.at(counts, (ci[hit], cj[hit], k), 1)
    return (np.cumsum(counts, axis=2)[:, :, :nz] % 2).astype(bool)


def surface_scores(prediction: trimesh.Trimesh, reference: trimesh.Trimesh, *, samples: int = 100_000,
                   iou_cells: int = 160, seed: int = 0) -> dict:
    """CD / diagonal, CD / max side, F-score at 1 % of the diagonal, volume IoU, watertight, components.

    Distances are plain (not squared), ``CD = ½ (mean d(pred→ref) + mean d(ref→pred))`` over
    ``samples`` area-uniform surface points each way, divided by the reference's bounding-box
    diagonal. IoU on cubic cells, ``iou_cells`` along the longest side of the union's box.
    """
    if len(prediction.faces) == 0:
        return {"cd_over_diag": float("inf"), "cd_over_side": float("inf"), "f_score": 0.0, "iou": 0.0,
                "watertight": False, "components": 0}
    ref_points, _ = trimesh.sample.sample_surface(reference, samples, seed=seed)
    pred_points, _ = trimesh.sample.sample_surface(prediction, samples, seed=seed + 1)
    to_ref, _ = cKDTree(ref_points).query(pred_points)
    to_pred, _ = cKDTree(pred_points).query(ref_points)
    extent = reference.bounds[1] - reference.bounds[0]
    diagonal = float(np.linalg.norm(extent))
    chamfer = 0.5 * (to_ref.mean() + to_pred.mean())
    tau = 0.01 * diagonal
    precision, recall = float(np.mean(to_ref < tau)), float(np.mean(to_pred < tau))
    lower = np.minimum(prediction.bounds[0], reference.bounds[0])
    upper = np.maximum(prediction.bounds[1], reference.bounds[1])
    cell = float(np.max(upper - lower)) / iou_cells
    lower = lower - 2 * cell
    shape = tuple(int(n) for n in np.ceil((upper - lower) / cell) + 2)
    a, b = inside_cells(prediction, lower, cell, shape), inside_cells(reference, lower, cell, shape)
    union = np.count_nonzero(a | b)
    return {
        "cd_over_diag": float(chamfer / diagonal),
        "cd_over_side": float(chamfer / extent.max()),
        "f_score": 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0,
        "iou": float(np.count_nonzero(a & b) / union) if union else 1.0,
        "watertight": bool(prediction.is_watertight),
        "components": len(prediction.split(only_watertight=False)),
    }


def run_neus(views: MultiviewImages, config, *, mc_resolution: int = 192, progress=None):
    """Reconstruct with NeuS and mesh its SDF grid; returns (mesh, NeusResult, wall s, CPU s)."""
    from Wonder3DMedLib.reconstruction.neus import reconstruct_neus

    started, cpu_started = time.perf_counter(), time.process_time()
    result = reconstruct_neus(views, config=config, device="cpu", progress=progress)
    mesh = mesh_from_sdf_grid(result.sdf_grid(mc_resolution))
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


def _load_average() -> str:
    try:
        return " / ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600, help="NeuS steps of the reduced CPU preset (default 600)")
    parser.add_argument("--size", type=int, default=256, help="side of the rendered views in pixels (default 256)")
    parser.add_argument("--shapes", default="sphere,thalamus_l", help="comma list of sphere, thalamus_l or aal:<label>")
    parser.add_argument("--mc-resolution", type=int, default=192, help="marching-cubes grid (default 192)")
    parser.add_argument("--samples", type=int, default=100_000, help="surface samples each way (default 100000)")
    parser.add_argument("--estimate-full", action="store_true", help="also time the original's full configuration")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    import torch

    from Wonder3DMedLib.reconstruction.neus import NeusConfig

    torch.set_num_threads(args.threads)
    config = NeusConfig.cpu(steps=args.steps)
    print(f"load average before: {_load_average()}  (2-core machine shared with other work)")
    print(f"NeuS CPU preset: {args.steps} steps, views {args.size}², {config.samples_per_step} samples/step "
          f"(≤ {config.max_rays} rays), step {config.render_step_size:.4f}, occupancy {config.occupancy_resolution}³")
    rows = []
    for name in [s.strip() for s in args.shapes.split(",") if s.strip()]:
        if name == "sphere":
            reference = reference_sphere()
        elif name == "thalamus_l":
            reference = reference_label(77)
        elif name.startswith("aal:"):
            reference = reference_label(int(name.split(":", 1)[1]))
        else:
            parser.error(f"unknown shape {name!r}")
        views = render_views(reference, size=args.size, description=f"benchmark {name}")
        started, cpu_started = time.perf_counter(), time.process_time()
        hull = visual_hull_mesh(views, resolution=args.mc_resolution)
        rows.append({"shape": name, "method": "visual hull", "seconds": time.perf_counter() - started,
                     "cpu_seconds": time.process_time() - cpu_started,
                     **surface_scores(hull, reference, samples=args.samples)})
        mesh, result, neus_s, neus_cpu = run_neus(views, config, mc_resolution=args.mc_resolution)
        rows.append({"shape": name, "method": f"NeuS {args.steps} st, MC", "seconds": neus_s,
                     "cpu_seconds": neus_cpu, **surface_scores(mesh, reference, samples=args.samples),
                     "training": result.stats.summary()})
        rows.append({"shape": name, "method": f"NeuS {args.steps} st, largest", "seconds": neus_s,
                     "cpu_seconds": neus_cpu,
                     **surface_scores(largest_component(mesh), reference, samples=args.samples)})
        _print_rows(rows[-3:])
    estimate = None
    if args.estimate_full:
        views = render_views(reference_sphere(), size=args.size)
        estimate = estimate_full_run(views)
        print("full original configuration on this CPU:", json.dumps(estimate, indent=1))
    print(f"load average after: {_load_average()}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "full_run_estimate": estimate, "config": config.to_dict()},
                                        indent=1, default=float))
    return 0


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
