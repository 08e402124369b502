"""Oracle views: the six views rendered from a reference surface instead of generated.

Data form: a reference surface (:class:`trimesh.Trimesh`, RAS mm) and the
:class:`~Wonder3DMedLib.imaging.slicing.Slice` the user chose, in; a
:class:`~Wonder3DMedLib.imaging.framing.FrameRecord` and
:class:`~Wonder3DMedLib.views.MultiviewImages` (``source='oracle'``) out.

The oracle answers "how good would the result be if the diffusion model produced perfect
views": the front camera looks along the slice normal exactly as in diffusion mode, and the
frame is chosen so that the projection of the *whole* reference structure onto the slice
plane fits the framed image the way Wonder3D frames its input (longer side 192 of 256
pixels), with the model origin at the middle of the structure's depth. What is left of the
error then comes from reconstruction and placement alone.
"""

from __future__ import annotations

import numpy as np
import trimesh

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.imaging.framing import FrameRecord, frame_from_box
from Wonder3DMedLib.imaging.slicing import Slice
from Wonder3DMedLib.model_frame import MODEL_IMAGE_SIZE
from Wonder3DMedLib.progress import ProgressCallback
from Wonder3DMedLib.views import MultiviewImages

__all__ = ["DEPTH_LIMIT_PX", "oracle_frame", "oracle_views"]

#: Depth extent (model pixels) above which the structure no longer fits the side views.
DEPTH_LIMIT_PX = MODEL_IMAGE_SIZE - 8


def oracle_frame(source: Slice, reference_ras: trimesh.Trimesh, *, description: str = "") -> FrameRecord:
    """Frame the projection of a whole reference structure on the slice's plane.

    Parameters
    ----------
    source : Slice
        The slice whose plane and pixel grid define the front camera.
    reference_ras : trimesh.Trimesh
        The reference surface, RAS mm.
    description : str
        What the reference is (stored in the record's details).

    Returns
    -------
    FrameRecord
        The projection's bounding box scaled like Wonder3D's input (longer side 192 px);
        ``details['oracle']`` records the box, the depth range and whether the structure's
        depth fits the reconstruction box.

    Raises
    ------
    InputError
        The reference surface is empty.
    """
    if len(reference_ras.vertices) == 0 or len(reference_ras.faces) == 0:
        raise InputError("the oracle reference surface is empty: the label has no voxels")
    points = source.ras_to_pixel_points(reference_ras.vertices)
    low, high = points.min(axis=0), points.max(axis=0)
    # frame_from_box takes Wonder3D's box convention: edges at min - 0.5 and max - 0.5.
    box = (low[0] + 0.5, low[1] + 0.5, high[0] + 0.5, high[1] + 0.5)
    depth_centre = float((low[2] + high[2]) / 2.0)
    probe = frame_from_box(source, box, depth_offset_mm=depth_centre)
    depth_px = float((high[2] - low[2]) / probe.mm_per_pixel)
    details = {
        "oracle": {
            "reference": description,
            "projection_box_px": [float(v) for v in box],
            "depth_range_mm": [float(low[2]), float(high[2])],
            "depth_extent_model_px": depth_px,
            "depth_fits": depth_px <= DEPTH_LIMIT_PX,
        }
    }
    return frame_from_box(source, box, depth_offset_mm=depth_centre, details=details)


def oracle_views(
    reference_ras: trimesh.Trimesh,
    frame: FrameRecord,
    *,
    size: int = MODEL_IMAGE_SIZE,
    description: str = "",
    progress: ProgressCallback | None = None,
) -> MultiviewImages:
    """Render the six Wonder3D views of a reference surface placed by ``frame``.

    Parameters
    ----------
    reference_ras : trimesh.Trimesh
        RAS mm.
    frame : FrameRecord
        From :func:`oracle_frame` (or any frame of the same slice).
    size : int
        View resolution in pixels (256 like the diffusion model).
    description : str
        Recorded with the views (e.g. ``"aal.nii.gz label 77 (Thalamus_L)"``).
    progress : callable, optional

    Returns
    -------
    MultiviewImages
        ``source='oracle'``.
    """
    from Wonder3DMedLib.reconstruction.render import render_views

    model = reference_ras.copy()
    model.apply_transform(np.linalg.inv(frame.model_frame_to_ras))
    text = "oracle views rendered from the reference surface" + (f" of {description}" if description else "")
    return render_views(model, size=size, source="oracle", description=text, progress=progress)
