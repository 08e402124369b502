"""Compare a predicted surface with a reference: the public entry points of the metrics package.

Data form: two :class:`trimesh.Trimesh` surfaces in RAS millimetres (optionally with the
reference's labelmap as a :class:`~Wonder3DMedLib.imaging.io.Volume` mask), or two files;
the answer is a :class:`~.report.ComparisonResult`.

Example
-------
>>> from Wonder3DMedLib.metrics import compare_files
>>> result = compare_files("prediction.ply", "aal.nii.gz", reference_label="Caudate_L")  # doctest: +SKIP
>>> result.hd95_mm, result.surface_dice["1.0"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path

import numpy as np
import trimesh

from Wonder3DMedLib.imaging.io import Volume
from Wonder3DMedLib.metrics.align import ALIGN_MODES, align_icp
from Wonder3DMedLib.metrics.checks import MeshCheck, bounding_boxes_overlap, check_mesh, check_units
from Wonder3DMedLib.metrics.distance import ClosestPoints, MeshDistance
from Wonder3DMedLib.metrics.report import ComparisonResult
from Wonder3DMedLib.metrics.surface import (
    DEFAULT_SAMPLE_SPACING_MM,
    DirectedDistances,
    sample_surface,
    surface_distance_metrics,
    tolerance_key,
)
from Wonder3DMedLib.metrics.surfaces import SMOOTHING_SIGMA_VOXELS, load_surface
from Wonder3DMedLib.metrics.volume import (
    DEFAULT_GRID_VOXELS,
    overlap,
    overlap_grid,
    surface_centroid,
    volume_and_centroid,
    voxelize,
)
from Wonder3DMedLib.progress import ProgressCallback, report

__all__ = ["compare_surfaces", "compare_files"]


def _has_duplicate_vertices(vertices: np.ndarray) -> bool:
    order = np.lexsort(vertices.T)
    ordered = vertices[order]
    return bool(np.any(np.all(ordered[1:] == ordered[:-1], axis=1)))


def _prepared(mesh: trimesh.Trimesh, name: str) -> tuple[trimesh.Trimesh, MeshCheck, list[str]]:
    """A copy with duplicate vertices merged and, when it is closed, faces wound outwards."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    # Meshes from marching cubes have no duplicates: merging (hashing) them would be wasted time.
    copy = trimesh.Trimesh(vertices, mesh.faces, process=_has_duplicate_vertices(vertices) if len(vertices) else False)
    check = check_mesh(copy)
    notes = []
    if not check.empty and not check.closed and copy.is_watertight:
        trimesh.repair.fix_winding(copy)
        check = check_mesh(copy)
        if check.closed:
            notes.append(f"the {name} surface had inconsistently wound faces; they were re-wound for the measurement")
    if check.closed and volume_and_centroid(copy)[0] < 0:
        copy.invert()
    return copy, check, notes


def _both(first, second, workers: int):
    """Run two independent jobs, in two threads when ``workers`` >= 2 (numpy, scipy and
    scikit-image release the GIL in their loops)."""
    if workers < 2:
        return first(), second()
    with ThreadPoolExecutor(max_workers=2) as pool:
        a, b = pool.submit(first), pool.submit(second)
        return a.result(), b.result()


def _check_tolerances(tolerances_mm: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(t) for t in tolerances_mm)
    if not values or any(not np.isfinite(t) or t < 0 for t in values):
        raise ValueError(f"tolerances_mm must be one or more finite values >= 0 mm, got {list(tolerances_mm)}")
    return tuple(dict.fromkeys(values))


def _same_grid(a: Volume, b: Volume) -> bool:
    return a.array.shape == b.array.shape and np.allclose(a.ijk_to_ras, b.ijk_to_ras, atol=1e-6)


def _side_volume(mesh: trimesh.Trimesh, check: MeshCheck) -> float:
    """0 for an empty side, the enclosed volume of a closed one, NaN for an open one."""
    if check.empty:
        return 0.0
    return volume_and_centroid(mesh)[0] if check.closed else float("nan")


def _empty_result(pred: MeshCheck, ref: MeshCheck, tolerances, inputs, warnings, prediction_mesh,
                  meshes: tuple[trimesh.Trimesh, trimesh.Trimesh]) -> ComparisonResult:
    both = pred.empty and ref.empty
    distance = float("nan") if both else float("inf")
    volume_pred, volume_ref = _side_volume(meshes[0], pred), _side_volume(meshes[1], ref)
    if both:
        difference = float("nan")
    elif ref.empty:
        difference = float("inf")
    else:
        difference = -1.0
    return ComparisonResult(
        hausdorff_mm=distance,
        hd95_mm=distance,
        assd_mm=distance,
        mean_dist_pred_to_ref_mm=distance,
        mean_dist_ref_to_pred_mm=distance,
        chamfer_mm=distance,
        surface_dice={tolerance_key(t): float("nan") if both else 0.0 for t in tolerances},
        volume_pred_mm3=volume_pred,
        volume_ref_mm3=volume_ref,
        volume_diff_rel=difference,
        dice=float("nan") if both else 0.0,
        iou=float("nan") if both else 0.0,
        centroid_offset_mm=float("nan"),
        flags={
            "empty_prediction": pred.empty,
            "empty_reference": ref.empty,
            "prediction_closed": pred.closed,
            "reference_closed": ref.closed,
        },
        dice_grid={"kind": "none (empty input)"},
        inputs=inputs,
        warnings=tuple(warnings),
        signed_distance_pred_mm=np.full(len(prediction_mesh.vertices), np.inf if not both else np.nan),
        prediction_mesh=prediction_mesh,
    )


def compare_surfaces(
    prediction_mesh_ras: trimesh.Trimesh,
    reference_mesh_ras: trimesh.Trimesh,
    *,
    tolerances_mm: Sequence[float] = (1.0, 2.0),
    reference_volume: Volume | None = None,
    prediction_volume: Volume | None = None,
    align: str | None = None,
    sample_spacing_mm: float = DEFAULT_SAMPLE_SPACING_MM,
    grid_voxels: int = DEFAULT_GRID_VOXELS,
    inputs: dict | None = None,
    warnings: Sequence[str] = (),
    workers: int = 2,
    progress: ProgressCallback | None = None,
) -> ComparisonResult:
    """Surface and volume metrics between a predicted and a reference surface.

    Parameters
    ----------
    prediction_mesh_ras, reference_mesh_ras : trimesh.Trimesh
        Surfaces in RAS mm (not modified). Closed surfaces get volumes and overlaps; open
        ones still get every distance.
    tolerances_mm : sequence of float
        Surface Dice tolerances τ (mm).
    reference_volume : Volume, optional
        The reference's mask (non-zero inside) on its labelmap grid: Dice and IoU are
        then counted on that grid. Without it, on an isotropic grid of about
        ``grid_voxels`` voxels over both surfaces.
    prediction_volume : Volume, optional
        The prediction's own mask when it came from a labelmap on the same grid as the
        reference (used instead of voxelising its surface).
    align : {'rigid', 'similarity'}, optional
        Also measure after aligning the prediction onto the reference by ICP.
    sample_spacing_mm : float
        Longest triangle edge when sampling the surfaces (see :mod:`.surface`).
    grid_voxels : int
        Size of the overlap grid when there is no reference labelmap.
    inputs : dict, optional
        Descriptions of the inputs for the report (``{"prediction": {...}, "reference": {...}}``).
    warnings : sequence of str
        Warnings gathered while reading the inputs, passed on to the report.
    workers : int
        Threads measuring the two directions at once (1 or 2); results do not depend on it.
    progress : callable, optional
        ``progress(fraction, message)``; may raise :class:`~Wonder3DMedLib.errors.Cancelled`.

    Returns
    -------
    ComparisonResult

    Raises
    ------
    InputError
        The surfaces differ in size by 100× or more (different units).
    ValueError
        Bad tolerances or alignment mode.
    """
    tolerances = _check_tolerances(tolerances_mm)
    if align is not None and align not in ALIGN_MODES:
        raise ValueError(f"align must be None or one of {ALIGN_MODES}, got {align!r}")
    inputs = dict(inputs or {})
    warnings = list(warnings)
    original = prediction_mesh_ras
    report(progress, 0.0, "checking surfaces")
    (prediction, pred_check, pred_notes), (reference, ref_check, ref_notes) = _both(
        lambda: _prepared(prediction_mesh_ras, "prediction"),
        lambda: _prepared(reference_mesh_ras, "reference"),
        workers,
    )
    warnings += pred_notes + ref_notes
    check_units(pred_check, ref_check)
    inputs.setdefault("prediction", {})
    inputs.setdefault("reference", {})
    inputs["prediction"] = {**inputs["prediction"], "surface": pred_check.as_dict()}
    inputs["reference"] = {**inputs["reference"], "surface": ref_check.as_dict()}
    if pred_check.empty or ref_check.empty:
        return _empty_result(pred_check, ref_check, tolerances, inputs, warnings, original, (prediction, reference))
    for name, check in (("prediction", pred_check), ("reference", ref_check)):
        if not check.closed:
            warnings.append(f"the {name} surface is not closed: its volume, centroid and overlap are not defined; "
                            "distances are still measured")
    if not bounding_boxes_overlap(prediction, reference):
        warnings.append("the two surfaces do not overlap at all; check that both are in the same space (RAS mm)")

    # 1. Distances, both ways, from area-weighted samples to the exact other surface:
    #    each side is sampled and indexed, then each side's samples meet the other's index.
    report(progress, 0.05, "sampling and indexing the surfaces")
    (pred_samples, to_prediction), (ref_samples, to_reference) = _both(
        lambda: (sample_surface(prediction, spacing_mm=sample_spacing_mm), MeshDistance(prediction)),
        lambda: (sample_surface(reference, spacing_mm=sample_spacing_mm), MeshDistance(reference)),
        workers,
    )
    report(progress, 0.3, "distances between the surfaces")
    pred_found, ref_distances = _both(
        lambda: to_reference.closest(pred_samples.points),
        lambda: to_prediction.unsigned(ref_samples.points),
        workers,
    )
    surface = surface_distance_metrics(
        DirectedDistances(pred_found.distance, pred_samples.weights),
        DirectedDistances(ref_distances, ref_samples.weights),
        tolerances_mm=tolerances,
    )
    report(progress, 0.8, "signed distances on the prediction's vertices")
    vertices = np.asarray(original.vertices, dtype=np.float64)
    count = len(vertices)
    if count == pred_samples.vertex_count and np.array_equal(vertices, pred_samples.points[:count]):
        # The prediction's first samples are its own vertices: reuse their closest points.
        found = ClosestPoints(*(np.asarray(getattr(pred_found, f.name))[:count] for f in fields(ClosestPoints)))
    else:
        found = to_reference.closest(vertices)
    signed = to_reference.signs(vertices, found) * found.distance

    # 2. Volumes, overlap and centroids of the enclosed solids.
    report(progress, 0.85, "volumes and overlap")
    both_closed = pred_check.closed and ref_check.closed
    volume_pred, solid_pred = volume_and_centroid(prediction) if pred_check.closed else (float("nan"), None)
    volume_ref, solid_ref = volume_and_centroid(reference) if ref_check.closed else (float("nan"), None)
    grid_info, dice, iou = _overlap(prediction, reference, pred_check, ref_check, reference_volume,
                                    prediction_volume, grid_voxels)
    if both_closed:
        centroid_pred, centroid_ref, centroid_kind = solid_pred, solid_ref, "solid"
    else:
        centroid_pred, centroid_ref, centroid_kind = surface_centroid(prediction), surface_centroid(reference), "surface"

    directed = {
        "max_dist_pred_to_ref_mm": surface.max_dist_pred_to_ref_mm,
        "max_dist_ref_to_pred_mm": surface.max_dist_ref_to_pred_mm,
        "hd95_pred_to_ref_mm": surface.hd95_pred_to_ref_mm,
        "hd95_ref_to_pred_mm": surface.hd95_ref_to_pred_mm,
        "hd95_mean_of_directions_mm": surface.hd95_mean_of_directions_mm,
        "area_pred_mm2": pred_samples.area_mm2,
        "area_ref_mm2": ref_samples.area_mm2,
        "centroid_pred_ras_mm": centroid_pred.tolist(),
        "centroid_ref_ras_mm": centroid_ref.tolist(),
        "centroid_kind": centroid_kind,
    }
    result = ComparisonResult(
        hausdorff_mm=surface.hausdorff_mm,
        hd95_mm=surface.hd95_mm,
        assd_mm=surface.assd_mm,
        mean_dist_pred_to_ref_mm=surface.mean_dist_pred_to_ref_mm,
        mean_dist_ref_to_pred_mm=surface.mean_dist_ref_to_pred_mm,
        chamfer_mm=surface.chamfer_mm,
        surface_dice=surface.surface_dice,
        volume_pred_mm3=volume_pred,
        volume_ref_mm3=volume_ref,
        volume_diff_rel=(volume_pred - volume_ref) / volume_ref if volume_ref else float("inf"),
        dice=dice,
        iou=iou,
        centroid_offset_mm=float(np.linalg.norm(centroid_pred - centroid_ref)),
        directed=directed,
        flags={
            "empty_prediction": False,
            "empty_reference": False,
            "prediction_closed": pred_check.closed,
            "reference_closed": ref_check.closed,
            "signed_distance_reliable": ref_check.closed,
        },
        dice_grid=grid_info,
        sampling={
            "spacing_mm": max(pred_samples.spacing_mm, ref_samples.spacing_mm),
            "samples_pred": len(pred_samples.points),
            "samples_ref": len(ref_samples.points),
        },
        inputs=inputs,
        warnings=tuple(warnings),
        signed_distance_pred_mm=signed,
        prediction_mesh=original,
    )
    if align is None:
        report(progress, 1.0, "done")
        return result
    return _with_alignment(result, prediction, (pred_samples, to_prediction), (ref_samples, to_reference), reference,
                           align, tolerances, reference_volume, sample_spacing_mm, grid_voxels, workers, progress)


def _overlap(prediction, reference, pred_check, ref_check, reference_volume, prediction_volume, grid_voxels):
    """Dice and IoU, and a description of the grid they were counted on."""
    if reference_volume is not None:
        grid = reference_volume
        reference_mask = np.asarray(reference_volume.array).astype(bool, copy=False)
        if prediction_volume is not None and _same_grid(prediction_volume, reference_volume):
            prediction_mask, source = np.asarray(prediction_volume.array).astype(bool, copy=False), "prediction labelmap voxels"
        elif pred_check.closed:
            prediction_mask, source = voxelize(prediction, grid), "prediction surface voxelised (voxel centres)"
        else:
            prediction_mask, source = None, "unavailable: the prediction surface is open"
        kind = "reference labelmap grid"
    elif pred_check.closed and ref_check.closed:
        grid = overlap_grid([prediction, reference], voxels=grid_voxels)
        prediction_mask, reference_mask = voxelize(prediction, grid), voxelize(reference, grid)
        kind, source = "isotropic grid over both surfaces", "both surfaces voxelised (voxel centres)"
    else:
        return {"kind": "unavailable: an open surface has no inside"}, float("nan"), float("nan")
    info = {
        "kind": kind,
        "prediction": source,
        "spacing_mm": [float(s) for s in grid.spacing],
        "shape_ijk": [int(n) for n in grid.shape_ijk],
    }
    if prediction_mask is None:
        return info, float("nan"), float("nan")
    result = overlap(prediction_mask, reference_mask, voxel_mm3=float(abs(np.linalg.det(grid.ijk_to_ras[:3, :3]))))
    return info, result.dice, result.iou


def _with_alignment(result, prediction, predicted, referenced, reference, align, tolerances, reference_volume,
                    sample_spacing_mm, grid_voxels, workers, progress):
    """Add the metrics after ICP-aligning the prediction onto the reference."""

    def align_progress(fraction: float, message: str) -> None:
        report(progress, 0.9 + 0.05 * fraction, message)

    (pred_samples, to_prediction), (ref_samples, to_reference) = predicted, referenced
    alignment = align_icp(pred_samples.points, pred_samples.weights, to_reference, mode=align, moving=to_prediction,
                          reference_samples=(ref_samples.points, ref_samples.weights), progress=align_progress)
    moved = prediction.copy()
    moved.apply_transform(alignment.matrix)
    report(progress, 0.95, "metrics after alignment")
    aligned = compare_surfaces(
        moved,
        reference,
        tolerances_mm=tolerances,
        reference_volume=reference_volume,
        sample_spacing_mm=sample_spacing_mm,
        grid_voxels=grid_voxels,
        workers=workers,
    )
    report(progress, 1.0, "done")
    return ComparisonResult(**{**result.__dict__, "alignment": alignment.as_dict(), "aligned": aligned})


def compare_files(
    prediction: str | Path,
    reference: str | Path,
    *,
    prediction_label: str | None = None,
    reference_label: str | None = None,
    tolerances_mm: Sequence[float] = (1.0, 2.0),
    align: str | None = None,
    smoothing_sigma_voxels: float = SMOOTHING_SIGMA_VOXELS,
    sample_spacing_mm: float = DEFAULT_SAMPLE_SPACING_MM,
    workers: int = 2,
    progress: ProgressCallback | None = None,
) -> ComparisonResult:
    """Read two files (meshes or labelmaps) and compare them with :func:`compare_surfaces`.

    Parameters
    ----------
    prediction, reference : str or Path
        Mesh files (``SPACE=`` tag honoured) or labelmaps / segmentations.
    prediction_label, reference_label : str, optional
        Label value or name inside a labelmap.
    smoothing_sigma_voxels : float
        Smoothing of labelmaps before marching cubes (see :mod:`.surfaces`).

    Other parameters are those of :func:`compare_surfaces`.

    Raises
    ------
    InputError
        Unreadable files, unknown labels, different units.
    """

    def stage(start: float, share: float):
        return lambda fraction, message: report(progress, start + share * fraction, message)

    report(progress, 0.0, "reading the inputs and making their surfaces")
    pred, ref = _both(
        lambda: load_surface(prediction, prediction_label, smoothing_sigma_voxels=smoothing_sigma_voxels),
        lambda: load_surface(reference, reference_label, smoothing_sigma_voxels=smoothing_sigma_voxels),
        workers,
    )
    return compare_surfaces(
        pred.mesh,
        ref.mesh,
        tolerances_mm=tolerances_mm,
        reference_volume=ref.volume,
        prediction_volume=pred.volume,
        align=align,
        sample_spacing_mm=sample_spacing_mm,
        inputs={"prediction": pred.description, "reference": ref.description},
        warnings=pred.warnings + ref.warnings,
        workers=workers,
        progress=stage(0.2, 0.8),
    )
