"""Colour maps for per-vertex distances (diverging: blue inside, white on, red outside).

Data form: signed distances ``(n,)`` float in mm in; RGBA ``(n, 4) uint8`` out.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["distance_limit_mm", "distance_colors", "distance_legend"]

# Anchor colours of the diverging map at -1, 0, +1 (light at zero so small errors fade).
_NEGATIVE = np.array([0.23, 0.30, 0.75])
_ZERO = np.array([0.95, 0.95, 0.95])
_POSITIVE = np.array([0.71, 0.02, 0.15])


def distance_limit_mm(signed_mm: np.ndarray, *, minimum_mm: float = 1.0) -> float:
    """Colour-scale limit: the 95th percentile of |distance|, at least ``minimum_mm``."""
    finite = np.abs(np.asarray(signed_mm, dtype=np.float64))
    finite = finite[np.isfinite(finite)]
    return float(max(np.percentile(finite, 95) if finite.size else 0.0, minimum_mm))


def _colormap(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, -1.0, 1.0)[:, None]
    negative = _ZERO + (_NEGATIVE - _ZERO) * (-t)
    positive = _ZERO + (_POSITIVE - _ZERO) * t
    return np.where(t < 0, negative, positive)


def distance_colors(signed_mm: np.ndarray, *, limit_mm: float | None = None) -> np.ndarray:
    """RGBA colours of signed distances (negative = inside the reference).

    Parameters
    ----------
    signed_mm : (n,) float
        NaN/inf get grey.
    limit_mm : float, optional
        Distance shown in full colour (default :func:`distance_limit_mm`).

    Returns
    -------
    (n, 4) uint8
    """
    signed = np.asarray(signed_mm, dtype=np.float64)
    limit = distance_limit_mm(signed) if limit_mm is None else float(limit_mm)
    rgb = _colormap(np.nan_to_num(signed / limit, nan=0.0, posinf=1.0, neginf=-1.0))
    rgb[~np.isfinite(signed)] = 0.5
    rgba = np.concatenate([rgb, np.ones((len(signed), 1))], axis=1)
    return np.rint(rgba * 255).astype(np.uint8)


def distance_legend(limit_mm: float, *, width: int = 320, height: int = 54) -> Image.Image:
    """A horizontal colour bar from −limit (inside) to +limit (outside) with labels."""
    bar = _colormap(np.linspace(-1.0, 1.0, width))
    strip = np.repeat((bar[None] * 255).astype(np.uint8), 18, axis=0)
    image = Image.new("RGB", (width, height), (255, 255, 255))
    image.paste(Image.fromarray(strip), (0, 0))
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    draw.text((2, 22), f"-{limit_mm:.1f} mm (inside)", fill=(0, 0, 0), font=font)
    draw.text((width // 2 - 4, 22), "0", fill=(0, 0, 0), font=font)
    label = f"+{limit_mm:.1f} mm (outside)"
    draw.text((width - 7 * len(label), 38), label, fill=(0, 0, 0), font=font)
    return image
