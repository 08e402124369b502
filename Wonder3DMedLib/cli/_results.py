"""What ``reconstruct`` and ``demo`` print when a job has finished."""

from __future__ import annotations

from Wonder3DMedLib import NOT_FOR_DIAGNOSIS
from Wonder3DMedLib.endtoend import ReconstructionResult

__all__ = ["print_result"]


def _iou(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_result(result: ReconstructionResult) -> None:
    """Say what was written, the key numbers, and the notice."""
    report = result.report
    if result.mode == "oracle":
        print("ORACLE MODE: the views were rendered from the reference segmentation, not generated; "
              "the numbers measure reconstruction and placement alone.")
    mesh = report["mesh"]
    print(f"surface: {result.files['mesh']} (RAS mm, {mesh['faces']} triangles, "
          f"{'watertight' if mesh['watertight'] else 'NOT watertight'})")
    placement = report["placement"]
    line = f"placement on the input slice: IoU {_iou(placement['vs_input_mask']['iou'])} with the input mask"
    if "vs_reference" in placement:
        line += f", {_iou(placement['vs_reference']['iou'])} with the reference"
    print(line)
    if report["metrics"] is not None:
        from Wonder3DMedLib.metrics.report import format_table

        print(format_table(result.comparison))
    timings = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in report["timings_s"].items())
    print(f"timings: {timings}")
    for warning in report["warnings"]:
        print(f"warning: {warning}")
    print(f"report: {result.files['report_html']}")
    print(NOT_FOR_DIAGNOSIS)
