"""The camera + domain embedding Wonder3D's UNet is conditioned on (its ``class_labels``).

Data form: a raw table ``(2·views, 5)`` — per UNet sample ``[elevation_cond,
delta_elevation, delta_azimuth, normal_flag, color_flag]`` in radians, rows the six views
of the normal domain then the same six views of the colour domain — and the class labels
``cat(sin(raw), cos(raw))`` ``(rows, 10)``.

The angles are not the nominal 0/45/90/180/-90/-45 degrees: they were computed from
Wonder3D's fixed camera files and the network was trained with them, so they are data
(``Wonder3DMedLib/resources/wonder3d_cameras.json``), never re-derived here. Two variants
exist, both used by the original: the pipeline's built-in float16 table (the default, as in
the hub pipeline) and the dataset's float32 values (its test script); they differ by fp16
rounding only.
"""

from __future__ import annotations

import json
from enum import Enum
from functools import lru_cache
from importlib import resources

import torch

from Wonder3DMedLib.views import VIEW_NAMES

__all__ = ["DOMAINS", "CameraTable", "camera_table", "class_labels"]

#: Order of the two output domains in the UNet batch.
DOMAINS = ("normal", "color")

_RESOURCE = "wonder3d_cameras.json"


class CameraTable(str, Enum):
    """Which camera values to condition on."""

    #: The float16 table built into Wonder3D's pipeline (default of the hub pipeline and its demos).
    PIPELINE = "pipeline"
    #: The float32 angles of Wonder3D's dataset class (its ``test_mvdiffusion_seq.py`` path).
    DATASET = "dataset"


@lru_cache(maxsize=1)
def _resource() -> dict:
    text = resources.files("Wonder3DMedLib").joinpath("resources", _RESOURCE).read_text()
    data = json.loads(text)
    if tuple(data["views"]) != VIEW_NAMES or tuple(data["domains"]) != DOMAINS:
        raise RuntimeError(f"{_RESOURCE} lists views/domains {data['views']}/{data['domains']}, expected {VIEW_NAMES}/{DOMAINS}")
    return data


def camera_table(variant: CameraTable | str = CameraTable.PIPELINE) -> torch.Tensor:
    """The raw camera + domain table for one object.

    Parameters
    ----------
    variant : CameraTable or {'pipeline', 'dataset'}

    Returns
    -------
    (12, 5) tensor
        float16 for ``pipeline``, float32 for ``dataset``; rows = normal × 6 views, then
        colour × 6 views (views in :data:`Wonder3DMedLib.views.VIEW_NAMES` order); columns
        ``[elevation_cond, delta_elevation, delta_azimuth, normal_flag, color_flag]``.
    """
    variant = CameraTable(variant)
    data = _resource()
    entry = data[f"{variant.value}_table"]
    rows = [view + data["domain_flags"][domain] for domain in DOMAINS for view in entry["per_view"]]
    return torch.tensor(rows, dtype=getattr(torch, entry["dtype"]))


def class_labels(raw: torch.Tensor, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``cat(sin(raw), cos(raw))`` along the last axis.

    Parameters
    ----------
    raw : (rows, 5) tensor
        From :func:`camera_table` (or a caller's own camera values).
    dtype : torch.dtype, optional
        Cast ``raw`` to this dtype first (Wonder3D computes the sin/cos in the UNet's dtype).

    Returns
    -------
    (rows, 10) tensor
    """
    if dtype is not None:
        raw = raw.to(dtype)
    return torch.cat([torch.sin(raw), torch.cos(raw)], dim=-1)
