"""The cases of the reconstruction benchmark: reference surfaces, their views, perturbed views, the hull.

Data form: :class:`trimesh.Trimesh` references in the model frame (framed like the product
frames its input, :func:`~Wonder3DMedLib.reconstruction.shapes.frame_mesh`), and
:class:`~Wonder3DMedLib.views.MultiviewImages` rendered from them.

* **Shapes**: ``sphere``, ``torus`` (hole facing the front camera), ``blob`` (bumpy
  organ-like ellipsoid), any AAL atlas structure by name (:data:`ANATOMY`) or as
  ``aal:<label>`` — the marching-cubes surface of the label mask smoothed by 1 mm, seen from
  the front as a coronal slice would be (model x = patient left, y = superior,
  z = anterior); append ``@axial`` to see it as a radiological axial slice shows it (from the
  feet: x = patient left, y = anterior, z = inferior), or ``@sagittal`` as 3D Slicer's sagittal
  view shows it (from the patient's left: x = posterior, y = superior, z = left). Put
  ``~oracle`` after the name for the surface the product's oracle mode and ``compare`` build
  from the labelmap (:func:`~Wonder3DMedLib.metrics.surfaces.load_surface`: smoothed by
  σ = 1 voxel, thin parts kept sharp), or ``~staircase`` for the unsmoothed marching-cubes
  surface, e.g. ``hippocampus_l~oracle@sagittal``.
* **Perturbations** (:func:`perturb_views`): Gaussian noise on every normal component then
  renormalised; masks eroded or dilated by whole pixels (dilated pixels take the normal and
  colour of the nearest foreground pixel).
* **Baseline** (:func:`visual_hull_mesh`): the six silhouettes intersected on the same grid
  and meshed by the same extraction as the backends.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import trimesh
from scipy import ndimage

from Wonder3DMedLib.reconstruction.fusion import hull_grid
from Wonder3DMedLib.reconstruction.meshing import extract_mesh
from Wonder3DMedLib.reconstruction.shapes import bumpy_blob, frame_mesh, label_surface, sphere, torus
from Wonder3DMedLib.reconstruction.view_stack import ViewStack
from Wonder3DMedLib.views import MultiviewImages

__all__ = ["AAL_PATH", "ANATOMY", "reference_shape", "perturb_views", "visual_hull_mesh", "largest_component"]

AAL_PATH = Path("/usr/share/mricron/templates/aal.nii.gz")

#: Named AAL structures (label values of ``aal.nii.txt``).
ANATOMY = {
    "hippocampus_l": 37,
    "hippocampus_r": 38,
    "amygdala_l": 41,
    "caudate_l": 71,
    "caudate_r": 72,
    "putamen_l": 73,
    "putamen_r": 74,
    "pallidum_l": 75,
    "pallidum_r": 76,
    "thalamus_l": 77,
    "thalamus_r": 78,
}

# RAS -> model frame for a coronal view (looking at the patient's face) and an axial one (from the feet).
_ORIENTATIONS = {
    "coronal": np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]),
    "axial": np.array([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]]),
    "sagittal": np.array([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]]),
}


@lru_cache(maxsize=1)
def _atlas(path: str):
    from Wonder3DMedLib.imaging.io import read_volume

    return read_volume(path)


def _label_mesh(label: int, orientation: str, path: Path, surface_kind: str) -> trimesh.Trimesh:
    if surface_kind == "oracle":
        from Wonder3DMedLib.metrics.surfaces import load_surface

        return frame_mesh(load_surface(path, label).mesh.copy(), rotation=_ORIENTATIONS[orientation])
    atlas = _atlas(str(path))
    mask = np.asarray(atlas.array) == label
    surface = label_surface(mask, atlas.spacing[::-1], smoothing_mm=0.0 if surface_kind == "staircase" else 1.0)
    surface.vertices = atlas.ijk_to_ras_points(np.asarray(surface.vertices)[:, ::-1] / atlas.spacing)
    if surface.volume < 0:  # (k, j, i) → (i, j, k) and the image's own axes may mirror the winding
        surface.invert()
    return frame_mesh(surface, rotation=_ORIENTATIONS[orientation])


def reference_shape(name: str, *, atlas_path: Path = AAL_PATH) -> trimesh.Trimesh:
    """The reference surface of a named case, in the model frame (see module docstring).

    Raises
    ------
    ValueError
        Unknown name or orientation.
    """
    base, _, orientation = name.partition("@")
    base, _, surface_kind = base.partition("~")
    orientation = orientation or "coronal"
    if orientation not in _ORIENTATIONS:
        raise ValueError(f"unknown orientation {orientation!r} in {name!r}; use coronal, axial or sagittal")
    if surface_kind not in ("", "oracle", "staircase"):
        raise ValueError(f"unknown surface {surface_kind!r} in {name!r}; use ~oracle or ~staircase")
    if base == "sphere":
        return frame_mesh(sphere())
    if base == "torus":
        return frame_mesh(torus())
    if base == "blob":
        return frame_mesh(bumpy_blob())
    if base in ANATOMY:
        return _label_mesh(ANATOMY[base], orientation, atlas_path, surface_kind)
    if base.startswith("aal:"):
        return _label_mesh(int(base[4:]), orientation, atlas_path, surface_kind)
    raise ValueError(f"unknown shape {name!r}: use sphere, torus, blob, aal:<label> or one of {', '.join(ANATOMY)}")


def perturb_views(views: MultiviewImages, *, noise: float = 0.0, mask_px: int = 0, seed: int = 0) -> MultiviewImages:
    """A perturbed copy of ``views`` (the input is not modified).

    Parameters
    ----------
    noise : float
        Standard deviation of Gaussian noise added to each normal component (then renormalised).
    mask_px : int
        Positive: dilate every mask by this many pixels; negative: erode.
    seed : int
    """
    normals = views.decoded_normals().astype(np.float32)
    colors = np.array(views.colors, dtype=np.float32)
    masks = np.array(views.masks, dtype=bool)
    if noise > 0:
        rng = np.random.default_rng(seed)
        normals = normals + rng.normal(0.0, noise, normals.shape).astype(np.float32)
        normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-6)
    if mask_px:
        structure = ndimage.generate_binary_structure(2, 1)
        for index, mask in enumerate(masks):
            if mask_px < 0:
                masks[index] = ndimage.binary_erosion(mask, structure, iterations=-mask_px)
                continue
            grown = ndimage.binary_dilation(mask, structure, iterations=mask_px)
            _, (rows, cols) = ndimage.distance_transform_edt(~mask, return_indices=True)
            ring = grown & ~mask
            normals[index][ring] = normals[index][rows[ring], cols[ring]]
            colors[index][ring] = colors[index][rows[ring], cols[ring]]
            masks[index] = grown
    return MultiviewImages.from_normal_vectors(
        normals, colors, masks, source=views.source, description=f"{views.description} (perturbed)"
    )


def visual_hull_mesh(views: MultiviewImages, *, resolution: int = 192, smoothing_iterations: int = 10) -> trimesh.Trimesh:
    """The visual hull of the six masks, meshed like the backends' fields (the baseline)."""
    grid = hull_grid(ViewStack.from_views(views), resolution)
    return extract_mesh(grid, smoothing_iterations=smoothing_iterations)


def largest_component(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The piece with the most triangles."""
    pieces = mesh.split(only_watertight=False)
    return max(pieces, key=lambda piece: len(piece.faces)) if len(pieces) > 1 else mesh
