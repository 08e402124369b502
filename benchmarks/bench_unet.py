"""One UNet step of Wonder3D v1.0 on the CPU, next to diffusers' plain SD UNet of the same base config.

Both models are the full size (Wonder3D: 910.8 M parameters; plain: 861.2 M) with random
weights, fp32, 32×32 latents (256² images). A "step" is one UNet forward at the batch the
pipeline uses: 12 without guidance (6 views × normal/colour), 24 with guidance.

By default both models are measured in this process, one after the other (the baseline in
the same run, as our benchmarks do); ``--isolated`` runs each (model, batch) in a fresh child
process instead, so its peak memory cannot include anything left over from the other model.
``peak`` is the resident memory at the step's high-water mark (Linux VmHWM, reset after the
model is built) including the weights; ``activations`` is that minus the memory right after
building. The two models alternate for ``--rounds`` rounds; the table keeps the fastest step of
each, since a shared machine only ever slows runs down. Ratios are Wonder3D / plain. ``CPU``
is the process CPU time of the step (all threads), which other work on a shared machine
disturbs much less than wall time.

Usage: ``python benchmarks/bench_unet.py [--batches 12 24] [--rounds 2] [--threads 2] [--isolated]``.
Needs about 9 GB of free memory (one model at a time).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.machine import describe, load_average  # noqa: E402

BASE_CONFIG = dict(
    sample_size=32, in_channels=8, out_channels=4, cross_attention_dim=768,
    class_embed_type="projection", projection_class_embeddings_input_dim=10,
)
WONDER3D_CONFIG = dict(
    BASE_CONFIG,
    down_block_types=["CrossAttnDownBlockMV2D"] * 3 + ["DownBlock2D"],
    mid_block_type="UNetMidBlockMV2DCrossAttn",
    up_block_types=["UpBlock2D"] + ["CrossAttnUpBlockMV2D"] * 3,
    num_views=6, multiview_attention=True, sparse_mv_attention=False, cd_attention_mid=True,
)
MODELS = ("plain", "wonder3d")
NEEDED_GB = 9.0


def _rss_gb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**30


def _reset_peak() -> bool:
    """Reset the kernel's resident high-water mark of this process (Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_gb() -> float:
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _build(model: str):
    import torch

    if model == "plain":
        from diffusers import UNet2DConditionModel

        factory = lambda: UNet2DConditionModel(**BASE_CONFIG)  # noqa: E731
    else:
        from Wonder3DMedLib.diffusion import UNetMV2DConditionModel

        factory = lambda: UNetMV2DConditionModel(**WONDER3D_CONFIG)  # noqa: E731
    with torch.device("meta"):
        unet = factory()
    unet = unet.to_empty(device="cpu").eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "norm" in name and name.endswith("weight"):
                param.fill_(1.0)
            elif param.ndim >= 2:
                param.normal_(0.0, param[0].numel() ** -0.5, generator=generator)
            else:
                param.normal_(0.0, 0.02, generator=generator)
    return unet


def child(model: str, batch: int, repeats: int, threads: int) -> dict:
    """Build one model, run a warm-up and ``repeats`` timed steps; returns times and memory."""
    import torch

    torch.set_num_threads(threads)
    unet = _build(model)
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(batch, 8, 32, 32, generator=generator)
    hidden = torch.randn(batch, 1, 768, generator=generator)
    labels = torch.randn(batch, 10, generator=generator)
    timestep = torch.tensor(981)
    built = _rss_gb()
    peak_reset = _reset_peak()
    times, cpu_times = [], []
    with torch.no_grad():
        for i in range(repeats + 1):
            start, cpu_start = time.perf_counter(), time.process_time()
            unet(sample, timestep, hidden, class_labels=labels)
            if i:  # the first step is a warm-up (allocator, kernel selection)
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
    peak = _peak_gb()
    return {
        "model": model, "batch": batch, "times_s": times, "cpu_s": cpu_times, "peak_gb": peak, "built_gb": built,
        "activations_gb": peak - built if peak_reset else float("nan"),
        "parameters": sum(p.numel() for p in unet.parameters()),
    }


def _measure_here(model: str, batch: int, repeats: int, threads: int) -> dict:
    """:func:`child` in this process; the model is freed before the next measurement."""
    result = child(model, batch, repeats, threads)
    gc.collect()
    return result


def _run_child(model: str, batch: int, repeats: int, threads: int) -> dict:
    command = [sys.executable, __file__, "--child", model, str(batch), "--repeats", str(repeats), "--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if result.returncode:
        raise RuntimeError(f"{model} batch {batch} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _machine() -> str:
    import torch

    return f"{describe()}, torch {torch.__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[12, 24], help="UNet batch sizes (default: 12 24)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per (model, batch) (default: 2)")
    parser.add_argument("--repeats", type=int, default=1, help="timed steps per child after one warm-up (default: 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--isolated", action="store_true", help="measure each (model, batch) in a fresh child process")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.repeats, args.threads)))
        return 0

    import psutil

    free_gb = psutil.virtual_memory().available / 2**30
    if free_gb < NEEDED_GB:
        print(f"only {free_gb:.1f} GB of memory available; this benchmark needs about {NEEDED_GB:.0f} GB", file=sys.stderr)
        return 1
    print(f"machine: {_machine()}; {args.threads} torch threads; {free_gb:.1f} GB available; "
          f"{'a child process per measurement' if args.isolated else 'both models in this process'}")
    best: dict[tuple[str, int], dict] = {}
    for round_index in range(args.rounds):
        for batch in args.batches:
            for model in MODELS if round_index % 2 == 0 else MODELS[::-1]:
                measure = _run_child if args.isolated else _measure_here
                result = measure(model, batch, args.repeats, args.threads)
                print(f"  round {round_index + 1} batch {batch:2d} {model:8s}: step {min(result['times_s']):6.1f} s, "
                      f"peak {result['peak_gb']:.2f} GB", flush=True)
                key = (model, batch)
                if key not in best:
                    best[key] = result
                else:
                    best[key]["times_s"] += result["times_s"]
                    best[key]["cpu_s"] += result["cpu_s"]
                    best[key]["peak_gb"] = min(best[key]["peak_gb"], result["peak_gb"])
                    best[key]["activations_gb"] = min(best[key]["activations_gb"], result["activations_gb"])
    header = (f"| {'batch':>5} | {'model':<25} | {'params (M)':>10} | {'step (s)':>8} | {'CPU (s)':>7} | "
              f"{'peak (GB)':>9} | {'activations (GB)':>16} | {'time ratio':>10} | {'CPU ratio':>9} | "
              f"{'peak ratio':>10} | {'act. ratio':>10} |")
    print()
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    names = {"plain": "diffusers UNet2DCondition", "wonder3d": "Wonder3DMed UNetMV2D"}
    for batch in args.batches:
        plain = best[("plain", batch)]
        for model in MODELS:
            row = best[(model, batch)]
            step, cpu = min(row["times_s"]), min(row["cpu_s"])
            ratios = (step / min(plain["times_s"]), cpu / min(plain["cpu_s"]), row["peak_gb"] / plain["peak_gb"],
                      row["activations_gb"] / plain["activations_gb"])
            print(f"| {batch:>5} | {names[model]:<25} | {row['parameters'] / 1e6:>10.1f} | {step:>8.1f} | {cpu:>7.1f} | "
                  f"{row['peak_gb']:>9.2f} | {row['activations_gb']:>16.2f} | {ratios[0]:>10.2f} | {ratios[1]:>9.2f} | "
                  f"{ratios[2]:>10.2f} | {ratios[3]:>10.2f} |")
    print(f"\nload average after the run: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
