"""Wonder3D's framed input and the frame record that ties it to patient space.

Data form: :class:`FrameRecord` (serialised as ``frame.json``) and meshes as
:class:`trimesh.Trimesh`.

The frame record maps the model's 256×256 pixel frame ``(col, row, w)`` — pixel centres
at integer values, ``w`` the depth towards the viewer in pixel units — to RAS
millimetres. Together with :mod:`Wonder3DMedLib.model_frame` (model frame ↔ pixels) it
places anything reconstructed in the model frame over the slice it came from.

``model_to_ras`` must be orientation-preserving *from the model frame*: the model frame is
right-handed and the pixel frame left-handed (rows go down), so the depth axis ``w`` maps
to ``−(col direction × row direction)`` and ``det(model_to_ras[:3, :3]) < 0``. Then a
reconstructed shape is never mirrored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.model_frame import MODEL_IMAGE_SIZE, model_to_pixel_matrix

__all__ = ["FRAME_FORMAT", "WONDER3D_CROP_SIZE", "Wonder3DInput", "wonder3d_preprocess", "FrameRecord", "place_mesh"]

#: Longer side of the object in the framed input (Wonder3D's inference setting).
WONDER3D_CROP_SIZE = 192

#: Value of the ``format`` key of frame.json.
FRAME_FORMAT = "wonder3dmed-frame"
_FRAME_VERSION = 1


def _matrix(value, name: str, shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    matrix = np.asarray(value, dtype=np.float64)
    if matrix.shape != shape or not np.all(np.isfinite(matrix)):
        raise ValueError(f"{name} must be a finite {shape[0]}×{shape[1]} matrix, got shape {matrix.shape}")
    if shape == (4, 4):
        if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0]):
            raise ValueError(f"{name} must be affine (last row 0 0 0 1), got {matrix[3].tolist()}")
        if abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
            raise ValueError(f"{name} is singular")
    return matrix


@dataclass(frozen=True, eq=False)
class Wonder3DInput:
    """An RGBA image framed the way Wonder3D's ``SingleImageDataset`` frames its input.

    Attributes
    ----------
    rgb : (S, S, 3) float32 in [0, 1]
        The framed image composited on the background (what the model sees).
    rgba : PIL.Image.Image
        The framed RGBA image before compositing (mode RGBA, S×S).
    box : (4,) int
        ``(min_x, min_y, max_x, max_y)`` of the alpha > 0 pixels of the source image;
        the crop takes columns ``min_x … max_x − 1`` and rows ``min_y … max_y − 1``.
    resized : (2,) int
        ``(width, height)`` of the crop after scaling.
    offset : (2,) int
        ``(x, y)`` where the scaled crop's top-left pixel lands in the framed image.
    """

    rgb: np.ndarray
    rgba: Image.Image
    box: tuple[int, int, int, int]
    resized: tuple[int, int]
    offset: tuple[int, int]

    @property
    def source_to_frame(self) -> np.ndarray:
        """(3, 3): source pixel ``(x, y, 1)`` (centres at integers) to framed pixel, per PIL's resize geometry."""
        min_x, min_y, max_x, max_y = self.box
        scale_x = self.resized[0] / (max_x - min_x)
        scale_y = self.resized[1] / (max_y - min_y)
        return np.array(
            [
                [scale_x, 0.0, self.offset[0] + (0.5 - min_x) * scale_x - 0.5],
                [0.0, scale_y, self.offset[1] + (0.5 - min_y) * scale_y - 0.5],
                [0.0, 0.0, 1.0],
            ]
        )


def wonder3d_preprocess(
    rgba: Image.Image,
    *,
    crop_size: int = WONDER3D_CROP_SIZE,
    image_size: int = MODEL_IMAGE_SIZE,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> Wonder3DInput:
    """Frame an RGBA image exactly as Wonder3D's inference preprocessing does.

    Takes the bounding box of alpha > 0, crops it, scales the longer side to
    ``crop_size`` (new size truncated to integers, PIL's default bicubic filter),
    pastes it centred on a transparent ``image_size``² canvas and composites it on
    ``background``.

    Parameters
    ----------
    rgba : PIL.Image.Image
        Any size; converted to RGBA. The object is where alpha > 0.
    crop_size : int
        Longer side of the scaled object (192 in Wonder3D's inference configuration).
    image_size : int
        Side of the framed image.
    background : (3,) float in [0, 1]
        Compositing colour (white in Wonder3D's inference).

    Raises
    ------
    InputError
        The alpha channel is empty.
    """
    image = rgba.convert("RGBA")
    alpha = np.asarray(image)[..., 3]
    rows, cols = np.nonzero(alpha)
    if rows.size == 0:
        raise InputError("the image's alpha channel is empty: there is no object to frame")
    min_x, min_y, max_x, max_y = int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())
    if max_x == min_x or max_y == min_y:
        raise InputError(
            "the object is a single row or column of pixels; Wonder3D's framing needs at least 2×2",
            hint="use a larger mask or a finer slice",
        )
    # Matches Wonder3D: PIL crop with the max coordinates as exclusive bounds drops the last row/column.
    crop = image.crop((min_x, min_y, max_x, max_y))
    width, height = crop.size
    scale = crop_size / max(width, height)
    # Matches Wonder3D: the new size is truncated with int(), not rounded.
    resized = (int(scale * width), int(scale * height))
    crop = crop.resize(resized)
    canvas = Image.new("RGBA", (image_size, image_size), (0, 0, 0, 0))
    offset = ((image_size - resized[0]) // 2, (image_size - resized[1]) // 2)
    canvas.paste(crop, offset)
    pixels = np.asarray(canvas).astype(np.float32) / 255.0
    rgb = pixels[..., :3] * pixels[..., 3:4] + np.asarray(background, dtype=np.float32) * (1.0 - pixels[..., 3:4])
    return Wonder3DInput(rgb=rgb, rgba=canvas, box=(min_x, min_y, max_x, max_y), resized=resized, offset=offset)


@dataclass(frozen=True, eq=False)
class FrameRecord:
    """How the model's pixel frame maps to slice pixels and RAS millimetres.

    Attributes
    ----------
    model_to_ras : (4, 4) float64
        Homogeneous ``(col, row, w, 1)`` in the ``image_size``² model frame (pixel
        centres at integers, ``w`` depth towards the viewer in pixels) to RAS mm.
    mm_per_pixel : float
        Millimetres per model-frame pixel (in-plane and in depth).
    slice_axis : {'i', 'j', 'k'}
        The volume grid axis normal to the slice.
    slice_index : int
        Index of the slice along ``slice_axis``.
    ijk_to_ras : (4, 4) float64
        The volume's voxel-index to RAS mm matrix.
    image_size : int
        Side of the model frame in pixels (256 for Wonder3D v1.0).
    details : dict
        Further JSON-serialisable facts written by the framing step (requested axis
        name, crop box in slice pixels, mask source, oracle mode…). No patient data.
    """

    model_to_ras: np.ndarray
    mm_per_pixel: float
    slice_axis: str
    slice_index: int
    ijk_to_ras: np.ndarray
    image_size: int = MODEL_IMAGE_SIZE
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_to_ras", _matrix(self.model_to_ras, "model_to_ras"))
        object.__setattr__(self, "ijk_to_ras", _matrix(self.ijk_to_ras, "ijk_to_ras"))
        if not (np.isfinite(self.mm_per_pixel) and self.mm_per_pixel > 0):
            raise ValueError(f"mm_per_pixel must be a positive number, got {self.mm_per_pixel}")
        if self.slice_axis not in ("i", "j", "k"):
            raise ValueError(f"slice_axis must be 'i', 'j' or 'k', got {self.slice_axis!r}")

    @property
    def model_frame_to_pixel(self) -> np.ndarray:
        """(4, 4): model frame ``(x, y, z, 1)`` with x, y ∈ [−1, 1] to ``(col, row, w, 1)``."""
        return model_to_pixel_matrix(self.image_size)

    @property
    def model_frame_to_ras(self) -> np.ndarray:
        """(4, 4): model frame (the reconstruction's frame) to RAS mm."""
        return self.model_to_ras @ self.model_frame_to_pixel

    def to_dict(self) -> dict:
        """The ``frame.json`` content."""
        return {
            "format": FRAME_FORMAT,
            "version": _FRAME_VERSION,
            "image_size": self.image_size,
            "model_to_ras": self.model_to_ras.tolist(),
            "mm_per_pixel": float(self.mm_per_pixel),
            "slice_axis": self.slice_axis,
            "slice_index": int(self.slice_index),
            "ijk_to_ras": self.ijk_to_ras.tolist(),
            "model_frame_to_pixel": self.model_frame_to_pixel.tolist(),
            "model_frame_to_ras": self.model_frame_to_ras.tolist(),
            "conventions": {
                "model_to_ras": "(col, row, w, 1) -> RAS mm; col/row pixel indices of the model frame with pixel "
                "centres at integers, row 0 at the top; w depth towards the viewer in pixels",
                "model_frame_to_pixel": "(x, y, z, 1) in the reconstruction model frame (x image-right, y image-up, "
                "z towards the front camera; the front view covers x, y in [-1, 1]) -> (col, row, w, 1)",
            },
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: dict) -> FrameRecord:
        """Build from ``frame.json`` content (raises ValueError/KeyError when malformed)."""
        if data.get("format") != FRAME_FORMAT:
            raise ValueError(f"not a Wonder3DMed frame record (format is {data.get('format')!r})")
        return cls(
            model_to_ras=data["model_to_ras"],
            mm_per_pixel=float(data["mm_per_pixel"]),
            slice_axis=data["slice_axis"],
            slice_index=int(data["slice_index"]),
            ijk_to_ras=data["ijk_to_ras"],
            image_size=int(data.get("image_size", MODEL_IMAGE_SIZE)),
            details=dict(data.get("details", {})),
        )

    def save(self, path: str | Path) -> Path:
        """Write ``frame.json``."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> FrameRecord:
        """Read ``frame.json``.

        Raises
        ------
        InputError
            Missing file, invalid JSON or not a frame record.
        """
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise InputError("frame record not found", path=path, hint="`wonder3dmed prepare` writes frame.json") from None
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(f"invalid frame record: {error}", path=path) from error


def place_mesh(mesh_model: trimesh.Trimesh, frame: FrameRecord) -> trimesh.Trimesh:
    """Move a mesh from the model frame to RAS millimetres over its slice.

    Parameters
    ----------
    mesh_model : trimesh.Trimesh
        Vertices in the model frame (the box [−1, 1]³, front camera axes).
    frame : FrameRecord

    Returns
    -------
    trimesh.Trimesh
        A new mesh, vertices in RAS mm; faces keep their outward winding (they are
        flipped if the mapping is a reflection). Vertex colours are kept.
    """
    placed = mesh_model.copy()
    placed.apply_transform(frame.model_frame_to_ras)
    return placed
