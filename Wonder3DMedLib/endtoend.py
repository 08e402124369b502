"""The main job: slice → views → mesh in RAS mm → comparison → report.

Data form: a :class:`~Wonder3DMedLib.jobs.ReconstructionJob` in; an output folder and a
:class:`ReconstructionResult` out. The folder holds

* ``surface.<stl|ply|obj>`` — the surface in RAS mm, tagged ``SPACE=RAS`` as 3D Slicer reads it;
* ``views/`` — the six views in the original Wonder3D layout, and ``views.png``;
* ``frame.json`` — the frame that placed the surface (model frame → RAS mm);
* ``input/`` — what ``prepare`` made of the slice (``input.png``, its ``frame.json``,
  ``slice_preview.png``);
* ``metrics.json`` and ``surface_distance.ply`` — with ``compare``;
* ``report.json`` and ``report.html``.

It appears only when the job finished (see :mod:`Wonder3DMedLib.output_folder`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from Wonder3DMedLib import NOT_FOR_DIAGNOSIS, __version__
from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.jobs import ReconstructionJob
from Wonder3DMedLib.mesh_io import write_mesh
from Wonder3DMedLib.output_folder import StagedOutputFolder
from Wonder3DMedLib.progress import CancelToken, ProgressSink, StageProgress

__all__ = ["ReconstructionResult", "stages_for", "run_reconstruction"]

#: Expected share of the run time of each stage (oracle mode / diffusion on a CPU).
_STAGES = {
    "oracle": (("prepare", 1.0), ("views", 2.0), ("mesh", 10.0), ("compare", 3.0), ("report", 2.0)),
    "diffusion": (("prepare", 1.0), ("views", 200.0), ("mesh", 10.0), ("compare", 3.0), ("report", 2.0)),
}

_VERSION_PACKAGES = ("numpy", "scipy", "scikit-image", "trimesh", "SimpleITK", "pydicom", "vtk", "torch", "diffusers",
                     "transformers")


@dataclass(frozen=True, eq=False)
class ReconstructionResult:
    """What one run produced.

    Attributes
    ----------
    out_dir : Path
    files : dict of str to Path
        ``mesh``, ``views``, ``views_png``, ``frame``, ``report_json``, ``report_html`` (and
        ``metrics``, ``distance_mesh`` with a comparison).
    mode : {'oracle', 'diffusion'}
    mesh_ras : trimesh.Trimesh
        The placed surface, RAS mm.
    report : dict
        The content of ``report.json``.
    comparison : ComparisonResult or None
        The metrics against ``job.compare``.
    """

    out_dir: Path
    files: dict
    mode: str
    mesh_ras: trimesh.Trimesh
    report: dict = field(default_factory=dict)
    comparison: object | None = None


def stages_for(job: ReconstructionJob) -> tuple[tuple[str, float], ...]:
    """The progress stages of a job and their expected shares of the time."""
    return _STAGES[job.mode]


def _versions() -> dict:
    versions = {"wonder3dmed": __version__, "python": platform.python_version()}
    for name in _VERSION_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _model_record(checkpoint: Path | None) -> dict:
    if checkpoint is None:
        return {"used": False, "note": "oracle mode: the views were rendered from the reference, no model ran"}
    weights = next(
        (checkpoint / "unet" / name for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
         if (checkpoint / "unet" / name).is_file()),
        None,
    )
    return {
        "used": True,
        "checkpoint": checkpoint.name,
        "unet_weights": None if weights is None else weights.name,
        "unet_sha256": None if weights is None else _sha256(weights),
    }


def _check_inputs(job: ReconstructionJob) -> None:
    for name, value in (("input", job.input), ("mask", job.mask), ("oracle", job.oracle), ("compare", job.compare)):
        path = getattr(value, "path", value)
        if path is not None and not Path(path).exists():
            raise InputError(f"the {name} file does not exist", path=path)
    if job.mode != "oracle":
        from Wonder3DMedLib.diffusion.generate import check_sampling_options

        check_sampling_options(steps=job.steps, guidance=job.guidance, eta=1.0, seed=job.seed)


def run_reconstruction(
    job: ReconstructionJob,
    *,
    sink: ProgressSink | None = None,
    cancel: CancelToken | None = None,
    replaceable: Callable[[Path], bool] | None = None,
) -> ReconstructionResult:
    """Run the whole job and write its output folder.

    Parameters
    ----------
    job : ReconstructionJob
    sink : ProgressSink, optional
        Where progress is shown (a terminal bar, worker lines).
    cancel : CancelToken, optional
        Checked at every progress report; a cancel removes the partial outputs.
    replaceable : callable, optional
        ``replaceable(folder) -> bool``: an existing output folder it accepts is replaced
        even without ``job.overwrite`` (the demo replaces its own earlier output).

    Raises
    ------
    WeightsError
        Diffusion mode without a complete checkpoint (the message says how to get one and
        that ``--oracle`` runs without it).
    InputError, OutputError
        Bad inputs (empty mask, slice without the object, …) or an output folder that
        exists or cannot be written; nothing is left behind.
    Cancelled
        Cancel or Ctrl-C; the partial outputs are removed.
    """
    from Wonder3DMedLib.weights import find_checkpoint

    _check_inputs(job)
    checkpoint = None if job.mode == "oracle" else find_checkpoint(job.weights)
    folder = StagedOutputFolder(job.out_dir, overwrite=job.overwrite, replaceable=replaceable)
    tracker = StageProgress(stages_for(job), sink, cancel=cancel)
    try:
        result = _run(job, checkpoint, folder.path, tracker)
        target = folder.commit()
    except BaseException:
        folder.abort()
        raise
    finally:
        tracker.close()
    files = {key: target / path.relative_to(folder.path) for key, path in result["files"].items()}
    return ReconstructionResult(out_dir=target, files=files, mode=job.mode, mesh_ras=result["mesh"],
                                report=result["report"], comparison=result["comparison"])


def _run(job: ReconstructionJob, checkpoint: Path | None, out: Path, tracker: StageProgress) -> dict:
    from Wonder3DMedLib.imaging.framing import place_mesh
    from Wonder3DMedLib.imaging.io import read_volume
    from Wonder3DMedLib.imaging.prepare import prepare_slice, write_prepared
    from Wonder3DMedLib.views import save_views

    files: dict[str, Path] = {}
    warnings: list[str] = []
    with tracker.stage("prepare") as progress:
        volume = read_volume(job.input, series_uid=job.series_uid, progress=progress)
        prepared = prepare_slice(
            volume,
            axis=job.slice_axis,
            index=job.slice_index,
            ras=job.slice_ras,
            window=job.window,
            mask_file=None if job.mask is None else job.mask.path,
            mask_label=None if job.mask is None else job.mask.label,
            automatic=job.auto_mask,
        )
        write_prepared(prepared, out / "input")
        warnings.extend(prepared.notes)

    with tracker.stage("views") as progress:
        if job.oracle is not None:
            views, frame, oracle_reference = _oracle_views(job, prepared, progress)
            oracle_details = frame.details["oracle"]
            if not oracle_details["depth_fits"]:
                warnings.append(
                    f"the reference structure is deeper along the slice normal ({oracle_details['depth_extent_model_px']:.0f} "
                    "model pixels) than the reconstruction box shows in the side views; its ends are cut off"
                )
        else:
            views, frame = _diffusion_views(job, checkpoint, prepared, progress)
            oracle_reference = None
        save_views(views, out / "views")
        files["views"] = out / "views"
        files["views_png"] = Path(shutil.copyfile(out / "views" / "views.png", out / "views.png"))
        files["frame"] = frame.save(out / "frame.json")

    with tracker.stage("mesh") as progress:
        mesh_model = _reconstruct(job, views, progress)
        mesh_ras = place_mesh(mesh_model, frame)
        files["mesh"] = write_mesh(mesh_ras, out / f"surface.{job.mesh_format}", space="RAS")

    with tracker.stage("compare") as progress:
        comparison, reference = None, None
        if job.compare is not None:
            comparison, reference = _compare(job, mesh_ras, progress)
            warnings.extend(comparison.warnings)
            files["metrics"] = _write_comparison(comparison, out)
            files["distance_mesh"] = out / "surface_distance.ply"
        placement = _placement(mesh_ras, prepared, reference)

    with tracker.stage("report") as progress:
        report = _report_dict(job, checkpoint, prepared, frame, views, mesh_ras, comparison, placement, warnings,
                              tracker.timings_s)
        from Wonder3DMedLib.report.build import write_reports

        files.update(
            write_reports(
                report,
                out,
                prepared=prepared,
                views=views,
                mesh_ras=mesh_ras,
                reference_ras=None if reference is None else reference.mesh,
                oracle_reference_ras=oracle_reference,
                comparison=comparison,
                placement=placement,
                progress=progress,
            )
        )
    return {"files": files, "mesh": mesh_ras, "report": report, "comparison": comparison}


def _oracle_views(job: ReconstructionJob, prepared, progress):
    from Wonder3DMedLib.metrics import load_surface
    from Wonder3DMedLib.oracle import oracle_frame, oracle_views

    reference = load_surface(job.oracle.path, job.oracle.label)
    description = f"{reference.description.get('file', job.oracle.path.name)}"
    if reference.description.get("label"):
        description += f" {reference.description['label']}"
    frame = oracle_frame(prepared.slice, reference.mesh, description=description)
    views = oracle_views(reference.mesh, frame, description=description, progress=progress)
    return views, frame, reference.mesh


def _diffusion_views(job: ReconstructionJob, checkpoint: Path, prepared, progress):
    from Wonder3DMedLib.diffusion.generate import generate_views, load_pipeline

    pipeline = load_pipeline(checkpoint, device=job.device, dtype=job.dtype)
    views = generate_views(
        prepared.framed.input.rgba,
        pipeline=pipeline,
        steps=job.steps,
        guidance=job.guidance,
        seed=job.seed,
        already_framed=True,
        progress=progress,
    )
    return views, prepared.framed.frame


def _reconstruct(job: ReconstructionJob, views, progress) -> trimesh.Trimesh:
    from Wonder3DMedLib.reconstruction.backends import reconstruct_mesh

    options = {"device": job.device} if job.recon == "neus" else {}
    return reconstruct_mesh(views, method=job.recon, progress=progress, **options).mesh


def _compare(job: ReconstructionJob, mesh_ras: trimesh.Trimesh, progress):
    from Wonder3DMedLib.metrics import compare_surfaces, load_surface

    reference = load_surface(job.compare.path, job.compare.label)
    inputs = {
        "prediction": {"file": f"surface.{job.mesh_format}", "kind": "mesh", "made_by": f"Wonder3DMed {job.mode} mode"},
        "reference": reference.description,
    }
    comparison = compare_surfaces(
        mesh_ras,
        reference.mesh,
        tolerances_mm=job.tolerances_mm,
        reference_volume=reference.volume,
        inputs=inputs,
        warnings=reference.warnings,
        progress=progress,
    )
    return comparison, reference


def _write_comparison(comparison, out: Path) -> Path:
    from Wonder3DMedLib.metrics import write_report
    from Wonder3DMedLib.report.colors import distance_colors

    path = write_report(comparison, out / "metrics.json")
    mesh = comparison.prediction_mesh.copy()
    mesh.visual.vertex_colors = distance_colors(comparison.signed_distance_pred_mm)
    write_mesh(mesh, out / "surface_distance.ply", space="RAS",
               point_scalars={"signed_distance_mm": comparison.signed_distance_pred_mm})
    return path


def _placement(mesh_ras: trimesh.Trimesh, prepared, reference) -> dict:
    from Wonder3DMedLib.placement import cross_section, labelmap_cross_section, overlap

    section = cross_section(mesh_ras, prepared.slice)
    result = {
        "slice": {"axis": prepared.slice.axis.requested, "grid_axis": prepared.slice.axis.grid_axis,
                  "index": int(prepared.slice.index)},
        "section": section,
        "input_mask": prepared.object.mask,
        "vs_input_mask": overlap(section, prepared.object.mask),
    }
    if reference is not None:
        if reference.volume is not None:
            reference_section = labelmap_cross_section(reference.volume, prepared.slice)
        else:
            reference_section = cross_section(reference.mesh, prepared.slice)
        result["reference_section"] = reference_section
        result["vs_reference"] = overlap(section, reference_section)
    return result


def _report_dict(job, checkpoint, prepared, frame, views, mesh_ras, comparison, placement, warnings, timings) -> dict:
    from Wonder3DMedLib.metrics.report import json_safe
    from Wonder3DMedLib.metrics.volume import mesh_volume

    closed = bool(mesh_ras.is_watertight)
    report = {
        "software": f"Wonder3DMed {__version__}",
        "notice": NOT_FOR_DIAGNOSIS,
        "mode": job.mode,
        "oracle_note": (
            "ORACLE MODE: the views were rendered from the reference, not generated; the numbers measure "
            "reconstruction and placement alone" if job.mode == "oracle" else None
        ),
        "inputs": {
            "volume": job.input.name,
            "slice": job.slice_text,
            "slice_resolved": prepared.slice.axis.describe(),
            "object": prepared.object.description,
            "oracle_reference": None if job.oracle is None else job.oracle.describe(),
            "compare_reference": None if job.compare is None else job.compare.describe(),
        },
        "parameters": job.public_summary(),
        "versions": _versions(),
        "model": _model_record(checkpoint),
        "frame": {
            "mm_per_model_pixel": frame.mm_per_pixel,
            "model_box_mm": frame.mm_per_pixel * frame.image_size,
            "file": "frame.json",
        },
        "views": {"source": views.source, "description": views.description, "size_px": views.size},
        "mesh": {
            "file": f"surface.{job.mesh_format}",
            "space": "RAS",
            "units": "mm",
            "vertices": int(len(mesh_ras.vertices)),
            "faces": int(len(mesh_ras.faces)),
            "watertight": closed,
            "volume_mm3": mesh_volume(mesh_ras) if closed else None,
        },
        "placement": {
            key: value for key, value in placement.items() if key.startswith("vs_") or key == "slice"
        },
        "metrics": None if comparison is None else comparison.to_dict(definitions=False),
        "definitions": None if comparison is None else _definitions(),
        "timings_s": dict(timings),
        "warnings": list(dict.fromkeys(warnings)),
    }
    return json_safe(report)


def _definitions() -> dict:
    from Wonder3DMedLib.metrics import DEFINITIONS

    definitions = dict(DEFINITIONS)
    definitions["placement.vs_reference"] = (
        "Overlap, on the input slice's pixel grid, of the surface's cross-section (pixel centres inside the closed "
        "surface) with the reference's cross-section (nearest labelmap voxel)."
    )
    definitions["placement.vs_input_mask"] = "The same overlap with the object mask the job was given on that slice."
    return definitions
