"""Quantitative comparison of a surface with a reference, in RAS millimetres.

numpy, scipy, trimesh and scikit-image only: importable without torch or Slicer.

Public entry points:

- :func:`compare_surfaces` — two meshes (RAS mm) → :class:`ComparisonResult`
- :func:`compare_files` — two files (meshes or labelmaps, ``FILE:LABEL``) → the same
- :func:`surface_from_labelmap` — a mask on a voxel grid → closed surface in RAS mm
- :func:`write_report` — the result as JSON or CSV

Definitions of every metric are in :data:`DEFINITIONS` and ``docs/metrics.md``.
"""

from Wonder3DMedLib.metrics.compare import compare_files, compare_surfaces
from Wonder3DMedLib.metrics.distance import MeshDistance
from Wonder3DMedLib.metrics.report import DEFINITIONS, METRIC_KEYS, ComparisonResult, format_table, write_report
from Wonder3DMedLib.metrics.surfaces import load_surface, surface_from_labelmap

__all__ = [
    "compare_surfaces",
    "compare_files",
    "surface_from_labelmap",
    "load_surface",
    "MeshDistance",
    "ComparisonResult",
    "DEFINITIONS",
    "METRIC_KEYS",
    "format_table",
    "write_report",
]
