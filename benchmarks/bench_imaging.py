"""Speed and memory of reading DICOM series and of ``prepare``, against SimpleITK/GDCM in the same process.

Writes a DICOM series from Colin27 (Debian ``mricron-data``) into a temporary folder, then
times (median of ``--repeat`` runs after a warm-up) and measures the peak of traced allocations
(in a separate run) for:

* ``read_volume(folder)`` — pydicom, sorted on the slice normal, Modality LUT;
* the baseline ``sitk.ImageSeriesReader`` with GDCM's file-name sort;
* ``prepare_slice`` (slice, window, labelmap mask, framing) on the volume in memory.

Run from the repository root: ``python benchmarks/bench_imaging.py [--slices N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Testing" / "Python"))

from imaging_data import write_dicom_series  # noqa: E402
from Wonder3DMedLib.imaging.io import Volume, read_volume  # noqa: E402
from Wonder3DMedLib.imaging.prepare import prepare_slice  # noqa: E402

TEMPLATES = Path("/usr/share/mricron/templates")


def measure(function, repeat: int) -> tuple[float, float]:
    """(median seconds over ``repeat`` runs, peak traced MiB of one more run) of ``function()``.

    Memory is traced in a separate run: tracing slows pure-Python code (pydicom) severalfold.
    """
    function()  # warm-up: imports, file cache
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    function()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=181, help="number of axial slices of Colin27 to write (≤ 181)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median reported)")
    args = parser.parse_args()
    colin = read_volume(TEMPLATES / "ch2.nii.gz")
    volume = Volume(colin.array[: args.slices].astype(np.int16), colin.ijk_to_ras)
    with tempfile.TemporaryDirectory() as folder:
        series = Path(folder) / "series"
        write_dicom_series(volume, series, series_uid="1.2.826.0.1.3680043.8.498.900")

        def gdcm() -> None:
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(series)))
            reader.Execute()

        rows = [
            ("SimpleITK ImageSeriesReader (baseline)", *measure(gdcm, args.repeat)),
            ("read_volume(series folder)", *measure(lambda: read_volume(series), args.repeat)),
            ("prepare_slice (axial, AAL label, framing)", *measure(
                lambda: prepare_slice(colin, axis="axial", index=78, mask_file=TEMPLATES / "aal.nii.gz",
                                      mask_label="Thalamus_L"), args.repeat)),
        ]
    baseline = rows[0][1]
    print(f"{len(volume.array)} slices of {volume.array.shape[2]}×{volume.array.shape[1]} px, median of {args.repeat}")
    print(f"{'step':44s} {'time s':>8s} {'× baseline':>11s} {'peak MiB':>9s}")
    for name, seconds, peak in rows:
        print(f"{name:44s} {seconds:8.3f} {seconds / baseline:11.2f} {peak:9.1f}")


if __name__ == "__main__":
    main()
