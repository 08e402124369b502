"""Wonder3D's framed input and the frame record that ties it to patient space.

Data form: a :class:`~Wonder3DMedLib.imaging.slicing.Slice` with grey levels and an object
mask in; a :class:`FramedSlice` (the RGBA input and its :class:`FrameRecord`, serialised
as ``frame.json``) out; meshes as :class:`trimesh.Trimesh` for :func:`place_mesh`.

* :func:`wonder3d_preprocess` is Wonder3D's own preprocessing of an RGBA image, quirks
  included (alpha box with exclusive max, longer side to 192 with ``int()`` truncation,
  centred paste on 256², composite on white).
* :func:`frame_from_box` gives the frame record of a crop box on a slice without any image
  (the geometry of that preprocessing) — what oracle framing of a 3D structure uses.
* :func:`frame_slice` builds the RGBA image from a slice and a mask, runs the
  preprocessing, and takes its record from :func:`frame_from_box` on the same grid.

The frame record maps the model's 256×256 pixel frame ``(col, row, w)`` — pixel centres
at integer values, ``w`` the depth towards the viewer in pixel units — to RAS
millimetres; ``w = 0`` is the slice plane (unless a depth offset is asked for). Together
with :mod:`Wonder3DMedLib.model_frame` (model frame ↔ pixels) it places anything
reconstructed in the model frame over the slice it came from.

``model_to_ras`` must be orientation-preserving *from the model frame*: the model frame is
right-handed and the pixel frame left-handed (rows go down), so the depth axis ``w`` maps
to ``−(col direction × row direction)`` and ``det(model_to_ras[:3, :3]) < 0``. Then a
reconstructed shape is never mirrored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.imaging.slicing import Slice, resample_slice
from Wonder3DMedLib.model_frame import MODEL_IMAGE_SIZE, model_to_pixel_matrix

__all__ = [
    "FRAME_FORMAT",
    "WONDER3D_CROP_SIZE",
    "Wonder3DInput",
    "wonder3d_layout",
    "wonder3d_preprocess",
    "FrameRecord",
    "place_mesh",
    "frame_from_box",
    "FramedSlice",
    "frame_slice",
]

#: Longer side of the object in the framed input (Wonder3D's inference setting).
WONDER3D_CROP_SIZE = 192

#: Value of the ``format`` key of frame.json.
FRAME_FORMAT = "wonder3dmed-frame"
_FRAME_VERSION = 1


def _matrix(value, name: str, shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise ValueError(
            f"{name} must be a finite {shape[0]}×{shape[1]} matrix of numbers, got {str(value)[:40]!r}"
        ) from None
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


def wonder3d_layout(
    box: tuple[float, float, float, float],
    *,
    crop_size: int = WONDER3D_CROP_SIZE,
    image_size: int = MODEL_IMAGE_SIZE,
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where Wonder3D puts a crop box: its scaled size and its offset in the framed image.

    Parameters
    ----------
    box : (min_x, min_y, max_x, max_y)
        Wonder3D's crop box: columns ``min_x … max_x − 1`` and rows ``min_y … max_y − 1``
        (pixel edges at ``min − 0.5`` and ``max − 0.5``).

    Returns
    -------
    resized : (width, height) int
        The longer side scaled to ``crop_size``, sizes truncated with ``int()``.
    offset : (x, y) int
        Top-left pixel of the scaled crop in the ``image_size``² frame (centred, floored).
    """
    width, height = box[2] - box[0], box[3] - box[1]
    if not (width > 0 and height > 0):
        raise ValueError(f"the crop box must have a positive width and height, got {tuple(box)}")
    scale = crop_size / max(width, height)
    # Matches Wonder3D: the new size is truncated with int(), not rounded.
    resized = (int(scale * width), int(scale * height))
    if min(resized) < 1:
        raise InputError(
            f"the object is too thin to frame: its box {tuple(box)} scales to {resized[0]}×{resized[1]} pixels",
            hint="use a mask with some extent in both directions",
        )
    # Matches Wonder3D: the scaled crop is pasted at ((S − w) // 2, (S − h) // 2).
    offset = ((image_size - resized[0]) // 2, (image_size - resized[1]) // 2)
    return resized, offset


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
    box = (min_x, min_y, max_x, max_y)
    resized, offset = wonder3d_layout(box, crop_size=crop_size, image_size=image_size)
    # Matches Wonder3D: PIL crop with the max coordinates as exclusive bounds drops the last row/column.
    crop = image.crop(box).resize(resized)
    canvas = Image.new("RGBA", (image_size, image_size), (0, 0, 0, 0))
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
        whole = isinstance(self.image_size, (int, np.integer)) and not isinstance(self.image_size, bool)
        if not whole or self.image_size < 1:
            raise ValueError(f"image_size must be a positive whole number of pixels, got {self.image_size!r}")

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
        """Build from ``frame.json`` content (raises ValueError/TypeError when malformed).

        The derived matrices the file also holds (``model_frame_to_pixel``,
        ``model_frame_to_ras``) must agree with the ones recomputed from ``model_to_ras``
        and ``image_size``: a record whose derived matrix was edited is refused rather than
        silently recomputed.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a frame record is a JSON object, this file holds a {type(data).__name__}")
        if data.get("format") != FRAME_FORMAT:
            raise ValueError(f"not a Wonder3DMed frame record (format is {data.get('format')!r})")
        version = data.get("version", _FRAME_VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= _FRAME_VERSION:
            raise ValueError(
                f"frame record version {version!r} is not supported (this Wonder3DMed reads version {_FRAME_VERSION})"
            )
        required = ("model_to_ras", "mm_per_pixel", "slice_axis", "slice_index", "ijk_to_ras")
        missing = [key for key in required if key not in data]
        if missing:
            raise ValueError(f"missing key{'s' if len(missing) > 1 else ''} {', '.join(repr(key) for key in missing)}")
        image_size = data.get("image_size", MODEL_IMAGE_SIZE)
        if isinstance(image_size, float) and image_size.is_integer():
            image_size = int(image_size)
        record = cls(
            model_to_ras=data["model_to_ras"],
            mm_per_pixel=float(data["mm_per_pixel"]),
            slice_axis=data["slice_axis"],
            slice_index=int(data["slice_index"]),
            ijk_to_ras=data["ijk_to_ras"],
            image_size=image_size,
            details=dict(data.get("details", {})),
        )
        derived = {"model_frame_to_pixel": record.model_frame_to_pixel, "model_frame_to_ras": record.model_frame_to_ras}
        for key, expected in derived.items():
            if key in data:
                stored = _matrix(data[key], key)
                if not np.allclose(stored, expected, rtol=1e-6, atol=1e-6 * max(1.0, float(np.abs(expected).max()))):
                    raise ValueError(
                        f"{key} disagrees with model_to_ras and image_size (it is derived from them); "
                        f"edit model_to_ras instead, or delete {key}"
                    )
        return record

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
        if path.is_dir():
            raise InputError(
                "this is a folder, not a frame record", path=path, hint="pass the frame.json file inside it"
            )
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise InputError("frame record not found", path=path, hint="`wonder3dmed prepare` writes frame.json") from None
        except (ValueError, TypeError) as error:
            raise InputError(f"invalid frame record: {error}", path=path) from error
        except OSError as error:
            raise InputError(f"cannot read the frame record: {error.strerror or error}", path=path) from error


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


def frame_from_box(
    source: Slice,
    box: tuple[float, float, float, float],
    *,
    depth_offset_mm: float = 0.0,
    crop_size: int = WONDER3D_CROP_SIZE,
    image_size: int = MODEL_IMAGE_SIZE,
    details: dict | None = None,
) -> FrameRecord:
    """The frame record of a crop box on a slice, as Wonder3D's preprocessing would frame it.

    No image is needed: this is the geometry :func:`frame_slice` uses, open to callers that
    frame something else (e.g. the projection of a whole 3D structure in oracle mode).

    Parameters
    ----------
    source : Slice
        The slice whose pixel grid ``box`` refers to (its ``slice_to_ras`` places the frame).
    box : (min_x, min_y, max_x, max_y) float
        In Wonder3D's convention (see :func:`wonder3d_layout`): the region between pixel
        edges ``min − 0.5`` and ``max − 0.5``; for inclusive pixel ranges ``a … b`` pass
        ``(a_col, a_row, b_col + 1, b_row + 1)``. Fractional values are allowed.
    depth_offset_mm : float
        Where the model origin (``w = 0``) lies along the slice normal, in mm towards the
        viewer (the front camera); 0 puts it on the slice plane.
    crop_size, image_size : int
    details : dict, optional
        Extra JSON-serialisable facts to store (they win over the computed ones).

    Returns
    -------
    FrameRecord
        ``model_to_ras = source.slice_to_ras @ model_to_source`` where ``model_to_source``
        maps ``(col, row, w, 1)`` of the model frame to ``(x, y, d_mm, 1)`` of the slice by
        inverting PIL's resize geometry per axis, and ``d_mm = w·mm_per_pixel +
        depth_offset_mm``. ``mm_per_pixel`` is the mm size of one model pixel along the
        box's longer side (the side scaled to ``crop_size``); the exact per-axis in-plane
        sizes are ``details['mm_per_pixel_col']`` and ``['mm_per_pixel_row']``.
    """
    box = tuple(float(v) for v in box)
    resized, offset = wonder3d_layout(box, crop_size=crop_size, image_size=image_size)
    width, height = box[2] - box[0], box[3] - box[1]
    scale_x, scale_y = resized[0] / width, resized[1] / height
    col_mm, row_mm = source.spacing
    mm_col, mm_row = col_mm / scale_x, row_mm / scale_y
    mm_per_pixel = mm_col if width >= height else mm_row
    model_to_source = np.array(
        [
            [1.0 / scale_x, 0.0, 0.0, box[0] - 0.5 - (offset[0] - 0.5) / scale_x],
            [0.0, 1.0 / scale_y, 0.0, box[1] - 0.5 - (offset[1] - 0.5) / scale_y],
            [0.0, 0.0, mm_per_pixel, float(depth_offset_mm)],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    facts = {
        "axis_name": source.axis.requested,
        "axis_angle_deg": source.axis.angle_deg,
        "box": [float(v) for v in box],
        "resized": list(resized),
        "offset": list(offset),
        "crop_size": int(crop_size),
        "depth_offset_mm": float(depth_offset_mm),
        "mm_per_pixel_col": float(mm_col),
        "mm_per_pixel_row": float(mm_row),
        "source_to_ras": source.slice_to_ras.tolist(),
        "model_to_source": model_to_source.tolist(),
    }
    facts.update(details or {})
    return FrameRecord(
        model_to_ras=source.slice_to_ras @ model_to_source,
        mm_per_pixel=float(mm_per_pixel),
        slice_axis=source.axis.grid_axis,
        slice_index=source.index,
        ijk_to_ras=source.ijk_to_ras,
        image_size=image_size,
        details=facts,
    )


@dataclass(frozen=True, eq=False)
class FramedSlice:
    """The object of a slice framed for Wonder3D.

    Attributes
    ----------
    input : Wonder3DInput
        ``input.rgba`` is the 256² RGBA image (``input.png``), ``input.rgb`` what the model sees.
    frame : FrameRecord
        Model frame ↔ RAS mm (``frame.json``).
    source : Slice
        The pixel grid handed to Wonder3D's preprocessing: the object's surroundings on
        the slice, supersampled so the object spans at least ``crop_size`` pixels;
        ``input.box`` refers to it (``frame_from_box(source, input.box)`` gives ``frame``).
    source_rgba : PIL.Image.Image
        The RGBA image on ``source`` (grey levels, object alpha).
    supersample : int
        Source pixels per slice pixel along each axis.
    """

    input: Wonder3DInput
    frame: FrameRecord
    source: Slice
    source_rgba: Image.Image
    supersample: int


def frame_slice(
    source: Slice,
    grey: np.ndarray,
    mask: np.ndarray,
    *,
    crop_size: int = WONDER3D_CROP_SIZE,
    image_size: int = MODEL_IMAGE_SIZE,
    margin: int = 2,
    details: dict | None = None,
) -> FramedSlice:
    """Frame the masked object of a slice exactly as Wonder3D frames its input image.

    The object's neighbourhood (its box plus ``margin`` pixels) is resampled by an integer
    factor ``f = ceil(crop_size / longer side of the box)`` (cubic spline for the grey
    levels; the mask linearly, then cut at 0.5 with a one-pixel anti-aliased edge), so the
    object reaches Wonder3D's crop at full resolution and the crop's exclusive-max quirk
    costs at most one fine pixel. That RGBA image then goes through
    :func:`wonder3d_preprocess` unchanged, and the frame record comes from
    :func:`frame_from_box` on the same grid.

    Parameters
    ----------
    source : Slice
        Preferably with square pixels (:func:`~Wonder3DMedLib.imaging.slicing.square_pixels`):
        Wonder3D scales both image axes alike.
    grey : (rows, cols) float in [0, 1]
        The windowed slice.
    mask : (rows, cols) bool
        The object (not empty).
    crop_size, image_size, margin : int
    details : dict, optional
        Extra facts for the frame record.

    Raises
    ------
    InputError
        Empty mask, or an object too thin to frame.
    """
    from scipy.ndimage import map_coordinates

    grey = np.asarray(grey, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    if grey.shape != source.shape or mask.shape != source.shape:
        raise ValueError(f"grey {grey.shape} and mask {mask.shape} must have the slice's shape {source.shape}")
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise InputError("the object mask is empty: there is nothing to frame")
    col0, row0, col1, row1 = int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())
    factor = max(1, int(np.ceil(crop_size / max(col1 - col0 + 1, row1 - row0 + 1))))
    shape = ((row1 - row0 + 1 + 2 * margin) * factor, (col1 - col0 + 1 + 2 * margin) * factor)
    origin = (col0 - margin - 0.5 + 0.5 / factor, row0 - margin - 0.5 + 0.5 / factor)
    step = (1.0 / factor, 1.0 / factor)
    fine = resample_slice(source.with_pixels(grey), origin=origin, step=step, shape=shape, order=3 if factor > 1 else 0)
    row_coords = origin[1] + step[1] * np.arange(shape[0])
    col_coords = origin[0] + step[0] * np.arange(shape[1])
    coverage = map_coordinates(
        mask.astype(np.float32), np.meshgrid(row_coords, col_coords, indexing="ij"), order=1, mode="constant", cval=0.0
    )
    alpha = np.clip((coverage - 0.5) * factor + 0.5, 0.0, 1.0) if factor > 1 else coverage
    grey8 = np.round(np.clip(fine.pixels, 0.0, 1.0) * 255.0).astype(np.uint8)
    alpha8 = np.round(alpha * 255.0).astype(np.uint8)
    rgba = Image.fromarray(np.dstack([grey8, grey8, grey8, alpha8]))
    framed = wonder3d_preprocess(rgba, crop_size=crop_size, image_size=image_size)
    extra = {
        "supersample": factor,
        "object_box_in_slice": [col0, row0, col1, row1],
        "slice_shape": [int(v) for v in source.shape],
        "slice_to_ras": source.slice_to_ras.tolist(),
    }
    extra.update(details or {})
    frame = frame_from_box(fine, framed.box, crop_size=crop_size, image_size=image_size, details=extra)
    model_to_slice = np.linalg.inv(source.slice_to_ras) @ frame.model_to_ras
    frame = replace(frame, details={**frame.details, "model_to_slice": model_to_slice.tolist()})
    return FramedSlice(input=framed, frame=frame, source=fine, source_rgba=rgba, supersample=factor)
