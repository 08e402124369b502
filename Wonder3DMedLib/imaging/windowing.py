"""Intensity windows: volume values → display grey levels in [0, 1] and 8 bit.

Data form: pixel arrays of modality values (any shape) in; float32 in [0, 1] or uint8
out. A :class:`Window` is ``(center, width)`` in the units of the values (Hounsfield
units for CT).

Where a window comes from, in the order :func:`choose_window` uses:

1. what the user asked for — a preset name (:data:`PRESETS`) or ``"C,W"``;
2. the DICOM window stored in the files (the first of multi-valued WindowCenter/Width),
   applied with the file's VOI LUT function (DICOM PS3.3 C.11.2.1.2: LINEAR,
   LINEAR_EXACT or SIGMOID);
3. an automatic window from the 0.5th to the 99.5th percentile of the slice's values.

Presets and explicit windows use the exact linear ramp ``(v − C)/W + 0.5`` clipped to
[0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from Wonder3DMedLib.errors import InputError

__all__ = [
    "PRESETS",
    "AUTO_PERCENTILES",
    "Window",
    "parse_window",
    "auto_window",
    "choose_window",
    "apply_window",
    "to_uint8",
]

#: CT presets as (center, width) in HU — the usual clinical values (as in the OHIF viewer).
PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "soft-tissue": (40.0, 400.0),
    "bone": (480.0, 2500.0),
    "lung": (-600.0, 1500.0),
}

#: Percentiles of the automatic window.
AUTO_PERCENTILES = (0.5, 99.5)

_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass(frozen=True)
class Window:
    """A display window.

    Attributes
    ----------
    center, width : float
        In the units of the pixel values; ``width > 0``.
    source : str
        Where it came from, e.g. ``"preset bone"``, ``"DICOM"``, ``"manual"``, ``"auto"``.
    function : {'LINEAR', 'LINEAR_EXACT', 'SIGMOID'}
        The DICOM VOI LUT function applied.
    """

    center: float
    width: float
    source: str = "manual"
    function: str = "LINEAR_EXACT"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.center) and np.isfinite(self.width)) or self.width <= 0:
            raise InputError(f"a window needs a finite center and a width > 0, got center {self.center}, "
                             f"width {self.width}")
        if self.function not in _FUNCTIONS:
            raise ValueError(f"function must be one of {_FUNCTIONS}, got {self.function!r}")

    def describe(self) -> str:
        """e.g. ``"center 40, width 400 (preset soft-tissue)"``."""
        return f"center {self.center:g}, width {self.width:g} ({self.source})"


def parse_window(text: str) -> Window:
    """A window from ``--window``: a preset name or ``C,W``.

    Raises
    ------
    InputError
        Unknown preset, malformed numbers or a width ≤ 0.
    """
    key = str(text).strip().lower().replace("_", "-").replace(" ", "-")
    if key == "softtissue":
        key = "soft-tissue"
    if key in PRESETS:
        center, width = PRESETS[key]
        return Window(center, width, source=f"preset {key}")
    parts = [p.strip() for p in str(text).split(",")]
    try:
        center, width = (float(p) for p in parts)
    except ValueError:
        raise InputError(
            f"--window {text!r} is neither a preset ({', '.join(PRESETS)}) nor CENTER,WIDTH (e.g. 40,400)"
        ) from None
    if width <= 0:
        raise InputError(f"--window {text!r}: the width must be greater than 0")
    return Window(center, width, source="manual")


def auto_window(pixels: np.ndarray, *, percentiles: tuple[float, float] = AUTO_PERCENTILES) -> Window:
    """A window from the ``percentiles`` of the finite values (a constant image gets width 1)."""
    values = np.asarray(pixels, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise InputError("the slice has no finite values to choose a window from")
    low, high = np.percentile(values, percentiles)
    if high <= low:
        low, high = float(values.min()), float(values.max())
    width = float(high - low) if high > low else 1.0
    label = f"auto, p{percentiles[0]:g}–p{percentiles[1]:g}"
    return Window((low + high) / 2.0 if high > low else float(low), width, source=label)


def choose_window(
    pixels: np.ndarray,
    spec: str | Window | None = None,
    *,
    dicom_window: tuple[float, float] | None = None,
    voi_function: str = "LINEAR",
) -> Window:
    """The window to use: ``spec`` if given, else the DICOM window, else an automatic one.

    Parameters
    ----------
    pixels : ndarray
        The values to display (used only by the automatic window).
    spec : str, Window or None
        ``--window`` text (preset or ``C,W``) or a Window.
    dicom_window : (center, width), optional
    voi_function : str
        The DICOM VOILUTFunction going with ``dicom_window``.
    """
    if isinstance(spec, Window):
        return spec
    if spec is not None:
        return parse_window(spec)
    if dicom_window is not None and dicom_window[1] > 0:
        function = voi_function if voi_function in _FUNCTIONS else "LINEAR"
        if function == "LINEAR" and dicom_window[1] < 1:
            function = "LINEAR_EXACT"  # LINEAR needs a width of at least 1 (PS3.3 C.11.2.1.2.1)
        return Window(dicom_window[0], dicom_window[1], source="DICOM", function=function)
    return auto_window(pixels)


def apply_window(pixels: np.ndarray, window: Window) -> np.ndarray:
    """Map values to grey levels in [0, 1] (float32) with the window's VOI LUT function.

    LINEAR (DICOM PS3.3 C.11.2.1.2.1): 0 at or below ``c − 0.5 − (w − 1)/2``, 1 above
    ``c − 0.5 + (w − 1)/2``, ``(v − (c − 0.5))/(w − 1) + 0.5`` between. LINEAR_EXACT:
    ``(v − c)/w + 0.5``. SIGMOID: ``1/(1 + exp(−4 (v − c)/w))``. NaN stays NaN.
    """
    values = np.asarray(pixels, dtype=np.float64)
    c, w = window.center, window.width
    if window.function == "LINEAR":
        grey = (values - (c - 0.5)) / (w - 1.0) + 0.5 if w > 1 else (values > c - 0.5).astype(np.float64)
        grey = np.where(values <= c - 0.5 - (w - 1.0) / 2.0, 0.0, grey)
        grey = np.where(values > c - 0.5 + (w - 1.0) / 2.0, 1.0, grey)
    elif window.function == "SIGMOID":
        grey = 1.0 / (1.0 + np.exp(np.clip(-4.0 * (values - c) / w, -700.0, 700.0)))
    else:
        grey = (values - c) / w + 0.5
    grey = np.where(np.isnan(values), np.nan, np.clip(grey, 0.0, 1.0))
    return grey.astype(np.float32)


def to_uint8(grey: np.ndarray) -> np.ndarray:
    """Grey levels in [0, 1] → uint8 (rounded; NaN → 0)."""
    grey = np.nan_to_num(np.asarray(grey, dtype=np.float64), nan=0.0)
    return np.round(np.clip(grey, 0.0, 1.0) * 255.0).astype(np.uint8)
