"""``wonder3dmed demo``: the main job on real MRI that ships in a package.

Data form: finds the data, builds a :class:`~Wonder3DMedLib.jobs.ReconstructionJob`, and
runs it. Preferred data: the Colin27 T1 head MRI with the AAL atlas on the same grid
(Debian package ``mricron-data``, which the README's main command installs); the structure
is the left thalamus, a deep grey-matter nucleus, on the axial slice through its centre.
Fallback: nilearn's bundled MNI152 template and its brain mask, when nilearn is installed.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.jobs import LabelledPath, ReconstructionJob

__all__ = [
    "MRICRON_TEMPLATES",
    "DEMO_MARKER",
    "DemoData",
    "find_demo_data",
    "demo_job",
    "is_demo_output",
    "mark_demo_output",
    "adopt_earlier_demo_output",
]

#: Where Debian's mricron-data puts Colin27 and the AAL atlas.
MRICRON_TEMPLATES = Path("/usr/share/mricron/templates")

#: File written into a demo's output folder so a later demo may replace it.
DEMO_MARKER = ".wonder3dmed-demo"

# What a demo folder held before result folders carried a manifest (Wonder3DMed 0.1, stop 18).
_EARLIER_DEMO_ENTRIES = frozenset({
    DEMO_MARKER, "frame.json", "input", "metrics.json", "report.html", "report.json", "surface.stl",
    "surface_distance.ply", "views", "views.png",
})


@dataclass(frozen=True)
class DemoData:
    """A real MRI, a labelmap of a structure on it, and how to describe them."""

    volume: Path
    labels: LabelledPath
    description: str


def find_demo_data(*, templates: Path = MRICRON_TEMPLATES) -> DemoData:
    """Colin27 + AAL thalamus when installed, else nilearn's MNI152 brain.

    Raises
    ------
    InputError
        Neither dataset is installed (says how to install one).
    """
    if (templates / "ch2.nii.gz").is_file() and (templates / "aal.nii.gz").is_file():
        return DemoData(
            volume=templates / "ch2.nii.gz",
            labels=LabelledPath(templates / "aal.nii.gz", "Thalamus_L"),
            description="Colin27 T1 head MRI (1 mm) with the AAL atlas label Thalamus_L (Debian mricron-data)",
        )
    try:
        from nilearn.datasets import load_mni152_brain_mask, load_mni152_template
    except ImportError:
        raise InputError(
            "no bundled MRI found for the demo",
            hint="install Debian's mricron-data (`apt-get install mricron-data`: Colin27 + AAL atlas) "
            "or nilearn (`pip install nilearn`: MNI152 template)",
        ) from None
    folder = Path(tempfile.mkdtemp(prefix="wonder3dmed-demo-data-"))
    load_mni152_template(resolution=2).to_filename(folder / "mni152_t1.nii.gz")
    load_mni152_brain_mask(resolution=2).to_filename(folder / "mni152_brain_mask.nii.gz")
    return DemoData(
        volume=folder / "mni152_t1.nii.gz",
        labels=LabelledPath(folder / "mni152_brain_mask.nii.gz", "1"),
        description="MNI152 2009 template (2 mm) with nilearn's brain mask",
    )


def _centre_slice(volume_path: Path, labels: LabelledPath, axis: str) -> int:
    """Index of the ``axis`` slice of the volume through the structure's median voxel."""
    from Wonder3DMedLib.imaging.io import read_volume
    from Wonder3DMedLib.imaging.labels import label_mask, read_labelmap
    from Wonder3DMedLib.imaging.slicing import resolve_axis

    labelled = read_labelmap(labels.path)
    mask, _ = label_mask(labelled, labels.label)
    centre_ras = labelled.volume.ijk_to_ras_points(np.median(np.argwhere(mask)[:, ::-1], axis=0)[None])
    volume = read_volume(volume_path)
    grid = "ijk".index(resolve_axis(volume, axis).grid_axis)
    return int(np.rint(volume.ras_to_ijk_points(centre_ras)[0, grid]))


def is_demo_output(folder: Path) -> bool:
    """True for a folder an earlier demo wrote (so the demo may replace it)."""
    return (folder / DEMO_MARKER).is_file()


def adopt_earlier_demo_output(folder: Path) -> bool:
    """Give a demo folder written before manifests existed the manifest it would carry now.

    Only a folder with the demo marker, no manifest, and nothing but what a demo writes is
    adopted; anything else in it keeps the folder from being replaced. Returns whether it was.
    """
    from Wonder3DMedLib.output_folder import MANIFEST_NAME, write_manifest

    folder = Path(folder)
    if not is_demo_output(folder) or (folder / MANIFEST_NAME).exists():
        return False
    entries = {entry.name for entry in folder.iterdir()}
    if not entries <= _EARLIER_DEMO_ENTRIES:
        return False
    write_manifest(folder, entries)
    return True


def demo_job(out_dir: Path, *, data: DemoData | None = None, weights_available: bool | None = None) -> ReconstructionJob:
    """The demo's job: oracle mode unless Wonder3D weights are found.

    The slice is the axial slice through the structure's median voxel; the mask, the
    oracle reference and the comparison reference are the same real segmentation.
    """
    from Wonder3DMedLib.errors import WeightsError
    from Wonder3DMedLib.weights import find_checkpoint

    data = data or find_demo_data()
    if weights_available is None:
        try:
            find_checkpoint()
            weights_available = True
        except WeightsError:
            weights_available = False
    return ReconstructionJob(
        input=data.volume,
        slice_axis="axial",
        slice_index=_centre_slice(data.volume, data.labels, "axial"),
        out_dir=out_dir,
        mask=data.labels,
        oracle=None if weights_available else data.labels,
        compare=data.labels,
        extra={"demo": data.description},
    )


def mark_demo_output(folder: Path, job: ReconstructionJob) -> None:
    """Write the marker that lets a later demo replace this folder (and list it as the demo's own)."""
    from Wonder3DMedLib.output_folder import record_entry

    (folder / DEMO_MARKER).write_text(json.dumps({"demo": job.extra.get("demo", "")}) + "\n")
    record_entry(folder, DEMO_MARKER)
