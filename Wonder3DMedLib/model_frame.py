"""The model frame and the pixel grid of Wonder3D's views: one convention for the whole project.

Data form: 4×4 homogeneous matrices (float64) and point arrays ``(n, 3)``.

Conventions (the contract of ``shared/fixtures/README.md``, section on
``wonder3d_recon_poses.json``):

* **Model frame** — the front camera's axes: x image-right, y image-up, z towards the
  front camera (the viewer); right-handed; origin at the centre of the reconstruction
  box [−1, 1]³, so the front image covers x, y ∈ [−1, 1].
* **Pixel frame** of a square view of ``size`` pixels — ``(col, row, w)``: column and row
  indices with pixel centres at integer values (row 0 at the top), and ``w`` the depth
  towards the viewer in the same pixel units. Column ``col`` is at
  ``x = (2·col + 1)/size − 1`` and row ``row`` at ``y = 1 − (2·row + 1)/size``; one pixel
  is ``2/size`` model units in x, y and w alike.

The pixel frame is left-handed (rows go down); the model frame is right-handed.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MODEL_IMAGE_SIZE",
    "pixel_to_model_matrix",
    "model_to_pixel_matrix",
    "pixel_centers_model",
]

#: Side of the square images Wonder3D v1.0 reads and writes (pixels).
MODEL_IMAGE_SIZE = 256


def _check_size(size: int) -> int:
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer number of pixels, got {size!r}")
    return int(size)


def pixel_to_model_matrix(size: int = MODEL_IMAGE_SIZE) -> np.ndarray:
    """Matrix taking homogeneous pixel coordinates ``(col, row, w, 1)`` to the model frame.

    Parameters
    ----------
    size : int
        Side of the square view in pixels.

    Returns
    -------
    (4, 4) float64
        ``x = (2·col + 1)/size − 1``, ``y = 1 − (2·row + 1)/size``, ``z = 2·w/size``.
    """
    size = _check_size(size)
    s = 2.0 / size
    return np.array(
        [
            [s, 0.0, 0.0, s / 2.0 - 1.0],
            [0.0, -s, 0.0, 1.0 - s / 2.0],
            [0.0, 0.0, s, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def model_to_pixel_matrix(size: int = MODEL_IMAGE_SIZE) -> np.ndarray:
    """Inverse of :func:`pixel_to_model_matrix`: model frame to ``(col, row, w, 1)``."""
    size = _check_size(size)
    h = size / 2.0
    return np.array(
        [
            [h, 0.0, 0.0, h - 0.5],
            [0.0, -h, 0.0, h - 0.5],
            [0.0, 0.0, h, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def pixel_centers_model(size: int = MODEL_IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Model-frame x of every column and y of every row of a ``size``² view.

    Returns
    -------
    x : (size,) float64
        x of column ``col`` (increasing).
    y : (size,) float64
        y of row ``row`` (decreasing: row 0 is the top).
    """
    size = _check_size(size)
    idx = np.arange(size, dtype=np.float64)
    x = (2.0 * idx + 1.0) / size - 1.0
    return x, -x
