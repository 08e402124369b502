"""The ``--recon`` choice: what a reconstruction backend returns, the dispatch, and views -> mesh.

Data form: :class:`~Wonder3DMedLib.views.MultiviewImages` in; a :class:`ReconstructedField`
(signed distance over the box [−1, 1]³ of the model frame) from a backend; a
:class:`Reconstruction` (closed, coloured mesh in the model frame) from :func:`reconstruct_mesh`.

**Backend contract.** A backend is a module with a function

``reconstruct_field(views, *, resolution, progress=None, **options) -> ReconstructedField``

``fast`` is :mod:`Wonder3DMedLib.reconstruction.fast`; ``neus`` is the package
``Wonder3DMedLib.reconstruction.neus`` (the faithful NeuS-ortho optimisation). A backend may
return its field as an :class:`~Wonder3DMedLib.reconstruction.meshing.SDFGrid` or as a callable
:data:`~Wonder3DMedLib.reconstruction.meshing.SDFFunction`, and may provide vertex colours
(e.g. a colour network); otherwise colours are blended from the colour views.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module

import numpy as np
import trimesh

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.progress import ProgressCallback, StageProgress
from Wonder3DMedLib.reconstruction.meshing import SDFFunction, SDFGrid, color_vertices, extract_mesh
from Wonder3DMedLib.views import MultiviewImages

__all__ = ["BACKENDS", "ReconstructedField", "Reconstruction", "reconstruct_field", "reconstruct_mesh"]

#: ``--recon`` name -> module implementing ``reconstruct_field``.
BACKENDS = {
    "fast": "Wonder3DMedLib.reconstruction.fast",
    "neus": "Wonder3DMedLib.reconstruction.neus",
}

#: Colour function of a backend: points ``(n, 3)`` and unit normals ``(n, 3)`` (model frame) -> RGB ``(n, 3)`` in [0, 1].
ColorFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class ReconstructedField:
    """What a backend returns.

    Attributes
    ----------
    sdf : SDFGrid or SDFFunction
        Signed distance over the box [−1, 1]³ of the model frame, model units, negative inside.
    method : str
        Backend name (a key of :data:`BACKENDS`).
    colors : ColorFunction, optional
        Vertex colours from the backend itself; None to blend the colour views.
    refine : bool
        For a function: extract twice, the second time over the first surface's bounding box
        (the original Wonder3D export).
    details : dict
        JSON-serialisable facts about the run (timings, iterations, losses...).
    """

    sdf: SDFGrid | SDFFunction
    method: str
    colors: ColorFunction | None = None
    refine: bool = False
    details: dict = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Reconstruction:
    """A reconstructed surface.

    Attributes
    ----------
    mesh : trimesh.Trimesh
        Closed, outward-wound, vertex-coloured; vertices in the model frame (model units).
    field : ReconstructedField
    timings_s : dict of str to float
        Wall time of each stage.
    """

    mesh: trimesh.Trimesh
    field: ReconstructedField
    timings_s: dict


def _backend(method: str):
    if method not in BACKENDS:
        raise InputError(f"unknown reconstruction method {method!r}", hint=f"use one of {', '.join(BACKENDS)}")
    name = BACKENDS[method]
    try:
        return import_module(name)
    except ModuleNotFoundError as error:
        if error.name is not None and name.startswith(error.name):
            raise InputError(
                f"the '{method}' reconstruction backend is not part of this build yet",
                hint="use --recon fast (the CPU backend) for now",
            ) from None
        raise


def reconstruct_field(
    views: MultiviewImages,
    *,
    method: str = "fast",
    resolution: int = 192,
    progress: ProgressCallback | None = None,
    **options,
) -> ReconstructedField:
    """Run one backend on six views.

    Raises
    ------
    InputError
        Unknown method, a backend missing from this build, or views without any foreground.
    """
    if not isinstance(views, MultiviewImages):
        raise TypeError(f"views must be MultiviewImages, got {type(views).__name__}")
    empty = [index for index in range(views.masks.shape[0]) if not views.masks[index].any()]
    if empty:
        raise InputError(
            f"{len(empty)} of the 6 views have an empty foreground mask",
            hint="the normal maps need the object's mask in their alpha channel",
        )
    backend = _backend(method)
    result = backend.reconstruct_field(views, resolution=resolution, progress=progress, **options)
    if not isinstance(result, ReconstructedField):
        raise TypeError(f"backend {method!r} returned {type(result).__name__}, expected ReconstructedField")
    return result


def reconstruct_mesh(
    views: MultiviewImages,
    *,
    method: str = "fast",
    resolution: int = 192,
    smoothing_iterations: int = 10,
    target_faces: int | None = None,
    progress: ProgressCallback | None = None,
    **options,
) -> Reconstruction:
    """Six views -> closed, coloured mesh in the model frame (field, marching cubes, cleanup, colours).

    Parameters
    ----------
    views : MultiviewImages
    method : {'fast', 'neus'}
    resolution : int
        Marching-cubes grid size over the box [−1, 1]³.
    smoothing_iterations, target_faces
        See :func:`~Wonder3DMedLib.reconstruction.meshing.extract_mesh`.
    progress : callable, optional
    **options
        Passed to the backend.
    """
    stages = StageProgress([("field", 8.0), ("mesh", 1.0), ("colours", 1.0)])
    forward = _forwarding(stages, progress)
    timings = {}
    started = time.perf_counter()
    result = reconstruct_field(views, method=method, resolution=resolution, progress=forward("field"), **options)
    timings["field"] = time.perf_counter() - started
    started = time.perf_counter()
    mesh = extract_mesh(
        result.sdf,
        resolution=resolution,
        refine=result.refine,
        smoothing_iterations=smoothing_iterations,
        target_faces=target_faces,
        progress=forward("mesh"),
    )
    timings["mesh"] = time.perf_counter() - started
    started = time.perf_counter()
    if result.colors is not None:
        rgb = np.clip(np.asarray(result.colors(np.asarray(mesh.vertices), np.asarray(mesh.vertex_normals))), 0, 1)
        mesh.visual.vertex_colors = np.concatenate([np.rint(rgb * 255), np.full((len(rgb), 1), 255)], 1).astype(np.uint8)
    else:
        mesh = color_vertices(mesh, views, progress=forward("colours"))
    timings["colours"] = time.perf_counter() - started
    return Reconstruction(mesh=mesh, field=result, timings_s=timings)


def _forwarding(stages: StageProgress, progress: ProgressCallback | None):
    """Per-stage callbacks that report the overall fraction to ``progress``."""

    def for_stage(name: str) -> ProgressCallback | None:
        if progress is None:
            return None
        inner = stages.callback(name)

        def callback(fraction: float, message: str = "") -> None:
            inner(fraction, message)
            progress(stages.overall, message)

        return callback

    return for_stage
