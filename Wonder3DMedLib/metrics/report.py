"""The result of a comparison, its definitions, and its export to JSON, CSV and a text table.

Data form: :class:`ComparisonResult`, a frozen record of numbers in mm, mm² and mm³
(RAS frame) plus descriptions of the inputs (file names and labels only — never
patient data). :meth:`ComparisonResult.to_dict` is the report: the metric keys at the
top level, their definitions under ``"definitions"``.

JSON is written strictly: an undefined value (NaN) is ``null`` and an infinite one is the
string ``"inf"``; the ``flags`` say why (e.g. an empty prediction).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from Wonder3DMedLib import NOT_FOR_DIAGNOSIS, __version__
from Wonder3DMedLib.errors import OutputError

__all__ = [
    "METRIC_KEYS",
    "DEFINITIONS",
    "REPORT_SUFFIXES",
    "ComparisonResult",
    "json_safe",
    "write_report",
    "format_table",
]

#: The metric keys of a report, in display order (``surface_dice`` is an object keyed by τ).
METRIC_KEYS = (
    "hausdorff_mm",
    "hd95_mm",
    "assd_mm",
    "mean_dist_pred_to_ref_mm",
    "mean_dist_ref_to_pred_mm",
    "chamfer_mm",
    "surface_dice",
    "volume_pred_mm3",
    "volume_ref_mm3",
    "volume_diff_rel",
    "dice",
    "iou",
    "centroid_offset_mm",
)

#: Report file types.
REPORT_SUFFIXES = (".json", ".csv")

#: What every reported number means (also written into each JSON report).
DEFINITIONS = {
    "frame": "All coordinates are RAS (right, anterior, superior) in millimetres. P is the prediction's "
    "surface, R the reference's. A labelmap becomes a surface by marching cubes at the 0.5 level of the mask "
    "smoothed with a Gaussian of sigma = 1 voxel (curvature shrinkage undone, thin parts kept unsmoothed); a "
    "mesh is used as it is.",
    "sampling": "Each surface is sampled by its vertices after splitting every triangle edge longer than the "
    "sample spacing; each sample carries one third of the area of its triangles. d(x, S) is the exact distance "
    "from point x to the triangles of surface S (not to samples of it).",
    "hausdorff_mm": "Hausdorff distance: max(max over P of d(p, R), max over R of d(r, P)).",
    "hd95_mm": "95th-percentile Hausdorff distance: for each direction the smallest distance below which 95 % "
    "of that surface's area lies, then the larger of the two (as MONAI and DeepMind surface-distance; 3D "
    "Slicer's SegmentComparison '95%' averages the two instead, see directed.hd95_mean_of_directions_mm).",
    "assd_mm": "Average symmetric surface distance, pooled: (integral over P of d(p, R) + integral over R of "
    "d(r, P)) / (area P + area R) (as MONAI with symmetric=True).",
    "mean_dist_pred_to_ref_mm": "Area-weighted mean of d(p, R) over the prediction's surface.",
    "mean_dist_ref_to_pred_mm": "Area-weighted mean of d(r, P) over the reference's surface.",
    "chamfer_mm": "Mean of the two directed mean distances (also called MASD; 3D Slicer SegmentComparison's "
    "'Average').",
    "surface_dice": "Normalised surface Dice at tolerance tau mm (key: tau as text): (area of P with "
    "d(p, R) <= tau + area of R with d(r, P) <= tau) / (area P + area R).",
    "volume_pred_mm3": "Volume enclosed by the prediction's closed surface (divergence theorem); null if it is "
    "open.",
    "volume_ref_mm3": "Volume enclosed by the reference's closed surface; null if it is open.",
    "volume_diff_rel": "(volume_pred_mm3 - volume_ref_mm3) / volume_ref_mm3 (signed; 'inf' when the reference "
    "is empty).",
    "dice": "Volumetric Dice 2|P n R| / (|P| + |R|) counted over voxel centres of the grid in dice_grid: the "
    "reference labelmap's own grid when the reference is a labelmap (the prediction's surface voxelised on "
    "it), otherwise an isotropic grid over both surfaces.",
    "iou": "Intersection over union |P n R| / |P u R| on the same grid as dice.",
    "centroid_offset_mm": "Distance between the centroids of the two enclosed solids (of the two surfaces when "
    "either is open, see directed.centroid_kind).",
    "signed_distance_mm": "Per prediction vertex (distance mesh only): d(v, R), negative inside the reference, "
    "sign from the angle-weighted pseudonormal at the closest point.",
    "empty": "An empty surface gives: distances 'inf' when only one side is empty and null when both are, "
    "surface Dice 0 (null when both empty), Dice and IoU 0 (null when both empty), volume 0; the flags "
    "empty_prediction / empty_reference are set.",
    "aligned": "Present with --align: the same metrics after moving the prediction by the rigid (or "
    "similarity) transform found by ICP onto the reference. The unaligned numbers measure placement; the "
    "aligned ones, shape alone.",
}


def json_safe(value):
    """Recursively make ``value`` valid strict JSON: NaN → None, ±inf → "inf"/"-inf", numpy → Python."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    return value


@dataclass(frozen=True, eq=False)
class ComparisonResult:
    """Metrics between a predicted surface P and a reference surface R (mm, mm³, RAS).

    The thirteen metric attributes are those of :data:`METRIC_KEYS` (see
    :data:`DEFINITIONS`). ``aligned`` holds the same metrics after ICP when alignment
    was asked for.

    Attributes
    ----------
    directed : dict
        Per-direction maxima and 95th percentiles, the SlicerRT-style HD95, areas,
        centroids.
    flags : dict
        ``empty_prediction``, ``empty_reference``, ``prediction_closed``,
        ``reference_closed``, ``volume_available``, ``overlap_available``.
    dice_grid : dict
        Which grid Dice and IoU were counted on (kind, spacing_mm, shape_ijk).
    sampling : dict
        Sample spacing and counts.
    inputs : dict
        ``prediction`` and ``reference`` descriptions (file names, labels, geometry).
    warnings : tuple of str
    alignment : dict or None
        The ICP transform (see :class:`~.align.Alignment`).
    aligned : ComparisonResult or None
    signed_distance_pred_mm : (n,) float64
        Signed distance of each prediction vertex to the reference surface.
    prediction_mesh : trimesh.Trimesh
        The prediction's surface (RAS mm) the per-vertex distances belong to.
    """

    hausdorff_mm: float
    hd95_mm: float
    assd_mm: float
    mean_dist_pred_to_ref_mm: float
    mean_dist_ref_to_pred_mm: float
    chamfer_mm: float
    surface_dice: dict
    volume_pred_mm3: float
    volume_ref_mm3: float
    volume_diff_rel: float
    dice: float
    iou: float
    centroid_offset_mm: float
    directed: dict = field(default_factory=dict)
    flags: dict = field(default_factory=dict)
    dice_grid: dict = field(default_factory=dict)
    sampling: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    warnings: tuple = ()
    alignment: dict | None = None
    aligned: ComparisonResult | None = None
    signed_distance_pred_mm: np.ndarray = field(default_factory=lambda: np.empty(0))
    prediction_mesh: trimesh.Trimesh | None = None

    def metrics(self) -> dict:
        """The metric keys and values (floats may be NaN or inf)."""
        return {key: getattr(self, key) for key in METRIC_KEYS}

    def to_dict(self, *, definitions: bool = True) -> dict:
        """The report as a dictionary (floats may be NaN/inf; see :func:`json_safe`)."""
        result = {
            **self.metrics(),
            "directed": self.directed,
            "flags": self.flags,
            "dice_grid": self.dice_grid,
            "sampling": self.sampling,
        }
        if self.aligned is not None:
            result["alignment"] = self.alignment
            result["aligned"] = self.aligned.to_dict(definitions=False)
        if definitions:
            result = {
                "software": f"Wonder3DMed {__version__}",
                "notice": NOT_FOR_DIAGNOSIS,
                "units": {"length": "mm", "area": "mm2", "volume": "mm3", "frame": "RAS"},
                "inputs": self.inputs,
                "warnings": list(self.warnings),
                **result,
                "definitions": DEFINITIONS,
            }
        return result

    def csv_row(self) -> dict:
        """One flat row: inputs, metrics (``surface_dice_<tau>``), then ``aligned_*``."""
        row = {
            "prediction": _input_text(self.inputs.get("prediction", {})),
            "reference": _input_text(self.inputs.get("reference", {})),
        }
        row.update(_flat_metrics(self))
        row["dice_grid"] = self.dice_grid.get("kind", "")
        row["empty_prediction"] = self.flags.get("empty_prediction")
        row["empty_reference"] = self.flags.get("empty_reference")
        if self.aligned is not None:
            row.update({f"aligned_{k}": v for k, v in _flat_metrics(self.aligned).items()})
            row["aligned_rotation_deg"] = self.alignment.get("rotation_deg")
            row["aligned_translation_mm"] = self.alignment.get("translation_mm")
            row["aligned_scale"] = self.alignment.get("scale")
        return row


def _input_text(description: dict) -> str:
    text = description.get("file", "")
    if description.get("label"):
        text += f" [{description['label']}]"
    return text


def _flat_metrics(result: ComparisonResult) -> dict:
    flat = {}
    for key, value in result.metrics().items():
        if key == "surface_dice":
            flat.update({f"surface_dice_{tau}": v for tau, v in value.items()})
        else:
            flat[key] = value
    return flat


def _csv_value(value) -> str:
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return "nan" if math.isnan(value) else ("inf" if value == math.inf else repr(value))
    if isinstance(value, (list, tuple)):
        return " ".join(_csv_value(v) for v in value)
    return "" if value is None else str(value)


def write_report(result: ComparisonResult, path: str | Path) -> Path:
    """Write the report as JSON or CSV (by suffix).

    Raises
    ------
    OutputError
        Unknown suffix or unwritable file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise OutputError(f"unknown report type '{path.suffix}'", path=path, hint="use a .json or .csv file name")
    if suffix == ".json":
        text = json.dumps(json_safe(result.to_dict()), indent=2, allow_nan=False) + "\n"
    else:
        row = result.csv_row()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(row), lineterminator="\n")
        writer.writeheader()
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
        text = buffer.getvalue()
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise OutputError(f"cannot write the report: {error.strerror or error}", path=path) from error
    return path


def _number(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value + 0.0:.{digits}f}" if abs(value) >= 0.5 * 10**-digits else f"{0:.{digits}f}"


def format_table(result: ComparisonResult) -> str:
    """A short text table of the metrics (unaligned, and aligned when present)."""
    columns = [result] + ([result.aligned] if result.aligned is not None else [])
    header = f"{'':34}{'unaligned':>12}" + (f"{'aligned':>12}" if result.aligned is not None else "")
    rows = [
        ("Hausdorff (mm)", lambda r: _number(r.hausdorff_mm)),
        ("HD95 (mm)", lambda r: _number(r.hd95_mm)),
        ("ASSD (mm)", lambda r: _number(r.assd_mm)),
        ("mean distance pred->ref (mm)", lambda r: _number(r.mean_dist_pred_to_ref_mm)),
        ("mean distance ref->pred (mm)", lambda r: _number(r.mean_dist_ref_to_pred_mm)),
        ("Chamfer (mm)", lambda r: _number(r.chamfer_mm)),
    ]
    for tau in result.surface_dice:
        rows.append((f"surface Dice @ {tau} mm", lambda r, tau=tau: _number(r.surface_dice[tau], 4)))
    rows += [
        ("volume prediction (mm3)", lambda r: _number(r.volume_pred_mm3, 1)),
        ("volume reference (mm3)", lambda r: _number(r.volume_ref_mm3, 1)),
        ("relative volume difference", lambda r: _number(r.volume_diff_rel, 4)),
        ("Dice", lambda r: _number(r.dice, 4)),
        ("IoU", lambda r: _number(r.iou, 4)),
        ("centroid offset (mm)", lambda r: _number(r.centroid_offset_mm)),
    ]
    lines = [header]
    for name, show in rows:
        lines.append(f"  {name:32}" + "".join(f"{show(c):>12}" for c in columns))
    lines.append(f"  Dice/IoU grid: {result.dice_grid.get('kind', 'n/a')}")
    if result.alignment is not None:
        a = result.alignment
        lines.append(
            f"  alignment ({a['mode']}): rotation {a['rotation_deg']:.2f} deg, translation "
            f"{np.linalg.norm(a['translation_mm']):.2f} mm, scale {a['scale']:.4f}, RMS {a['rms_after_mm']:.3f} mm"
        )
    return "\n".join(lines)
