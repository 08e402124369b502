"""The reconstruction job: every choice of one run, as data.

Data form: :class:`ReconstructionJob` (JSON-serialisable with :meth:`ReconstructionJob.to_dict`)
— what the ``wonder3dmed reconstruct`` command line and the Slicer panel's worker both hand to
:func:`Wonder3DMedLib.endtoend.run_reconstruction`. Paths are kept as given; nothing here
reads files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

__all__ = ["LabelledPath", "ReconstructionJob", "RECON_METHODS", "MESH_FORMATS"]

#: Reconstruction backends.
RECON_METHODS = ("fast", "neus")

#: Mesh formats the job writes.
MESH_FORMATS = ("stl", "ply", "obj")


@dataclass(frozen=True)
class LabelledPath:
    """A file, optionally with a label value or segment name (``FILE[:LABEL]``)."""

    path: Path
    label: str | None = None

    def __str__(self) -> str:
        return str(self.path) if self.label is None else f"{self.path}:{self.label}"

    def describe(self) -> str:
        """File name and label only — never the folder (it may name the patient)."""
        return self.path.name if self.label is None else f"{self.path.name}:{self.label}"


@dataclass(frozen=True)
class ReconstructionJob:
    """One run of slice → views → mesh in RAS mm → comparison → report.

    Attributes
    ----------
    input : Path
        Volume file or DICOM series folder.
    slice_axis : {'axial', 'coronal', 'sagittal', 'i', 'j', 'k'}
    slice_index : int or None
        Grid index along the axis; None when ``slice_ras`` chooses the slice.
    out_dir : Path
        Must not exist (or be empty) unless ``overwrite``.
    mask : LabelledPath, optional
        The object's labelmap/segmentation; or ``auto_mask``.
    auto_mask : bool
    window : str, optional
        Preset or ``"C,W"``.
    series_uid : str, optional
    weights : Path, optional
        Wonder3D checkpoint (default: searched); ignored in oracle mode.
    oracle : LabelledPath, optional
        Render the views from this reference instead of generating them.
    recon : {'fast', 'neus'}
    device, dtype : str
    steps, guidance, seed
        Diffusion sampling (defaults of the original Wonder3D CLI).
    mesh_format : {'stl', 'ply', 'obj'}
    compare : LabelledPath, optional
        Reference to compare the placed mesh with.
    tolerances_mm : tuple of float
        Surface Dice tolerances.
    overwrite : bool
    slice_ras : (3,) float, optional
        A point (RAS mm) the slice goes through, instead of ``slice_index``.
    """

    input: Path
    slice_axis: str
    slice_index: int | None
    out_dir: Path
    mask: LabelledPath | None = None
    auto_mask: bool = False
    window: str | None = None
    series_uid: str | None = None
    weights: Path | None = None
    oracle: LabelledPath | None = None
    recon: str = "fast"
    device: str = "auto"
    dtype: str = "auto"
    steps: int = 50
    guidance: float = 1.0
    seed: int = 42
    mesh_format: str = "stl"
    compare: LabelledPath | None = None
    tolerances_mm: tuple[float, ...] = (1.0, 2.0)
    overwrite: bool = False
    slice_ras: tuple[float, float, float] | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.slice_index is None) == (self.slice_ras is None):
            raise ValueError("choose the slice by exactly one of slice_index and slice_ras")
        if self.mask is None and not self.auto_mask:
            raise ValueError("say what the object is: a mask file or auto_mask=True")
        if self.mask is not None and self.auto_mask:
            raise ValueError("give either a mask file or auto_mask=True, not both")
        if self.recon not in RECON_METHODS:
            raise ValueError(f"recon must be one of {RECON_METHODS}, got {self.recon!r}")
        if self.mesh_format not in MESH_FORMATS:
            raise ValueError(f"mesh_format must be one of {MESH_FORMATS}, got {self.mesh_format!r}")
        if self.oracle is not None and self.weights is not None:
            raise ValueError("oracle mode renders the views; it takes no weights")

    @property
    def slice_text(self) -> str:
        """The slice as the user gave it: ``AXIS:INDEX`` or ``AXIS@R,A,S``."""
        if self.slice_ras is not None:
            return f"{self.slice_axis}@{','.join(f'{v:g}' for v in self.slice_ras)}"
        return f"{self.slice_axis}:{self.slice_index}"

    @property
    def mode(self) -> str:
        """``'oracle'`` or ``'diffusion'``."""
        return "oracle" if self.oracle is not None else "diffusion"

    def to_dict(self) -> dict:
        """JSON-ready content (paths as text, labelled paths as ``{"path", "label"}``)."""
        data = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, LabelledPath):
                value = {"path": str(value.path), "label": value.label}
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            data[item.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ReconstructionJob:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        for name in ("input", "out_dir", "weights"):
            if values.get(name) is not None:
                values[name] = Path(values[name])
        for name in ("mask", "oracle", "compare"):
            if values.get(name) is not None:
                values[name] = LabelledPath(Path(values[name]["path"]), values[name].get("label"))
        if "tolerances_mm" in values:
            values["tolerances_mm"] = tuple(float(v) for v in values["tolerances_mm"])
        return cls(**values)

    def public_summary(self) -> dict:
        """The job for reports: file names only, no folders (no patient-identifying paths)."""
        data = asdict(self)
        data["input"] = self.input.name
        data["out_dir"] = self.out_dir.name
        for name in ("mask", "oracle", "compare"):
            value = getattr(self, name)
            data[name] = None if value is None else value.describe()
        data["weights"] = None if self.weights is None else self.weights.name
        data["tolerances_mm"] = list(self.tolerances_mm)
        return data
