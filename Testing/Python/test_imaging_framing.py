"""Framing reproduces Wonder3D's preprocessing pixel for pixel, and the frame record places it exactly in RAS."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image

from imaging_data import oblique_volume
from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.imaging.framing import FrameRecord, frame_from_box, frame_slice, place_mesh, wonder3d_preprocess
from Wonder3DMedLib.imaging.io import Volume
from Wonder3DMedLib.imaging.masks import box_mask
from Wonder3DMedLib.imaging.prepare import prepare_slice
from Wonder3DMedLib.imaging.slicing import take_slice


def reference_preprocess(image: Image.Image, crop_size: int = 192, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Wonder3D's SingleImageDataset steps, written out from the spec (design note §5 step 1)."""
    alpha = np.array(image)[:, :, 3]
    ys, xs = np.where(alpha > 0)
    # the crop box is (min x, min y, max x, max y) with PIL's exclusive max: the last row/column is dropped
    cropped = image.crop((xs.min(), ys.min(), xs.max(), ys.max()))
    w, h = cropped.size
    scale = crop_size / max(h, w)
    h2, w2 = int(h * scale), int(w * scale)
    cropped = cropped.resize((w2, h2))
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    canvas.paste(cropped, ((size - w2) // 2, (size - h2) // 2))
    rgba = np.array(canvas).astype(np.float32) / 255.0
    rgb = rgba[:, :, :3] * rgba[:, :, 3:] + 1.0 * (1.0 - rgba[:, :, 3:])
    return rgb, np.array(canvas)


def rgba_case(name: str) -> Image.Image:
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    shapes = {"odd": (53, 37), "tall": (181, 47), "wide": (41, 301), "small": (9, 11), "large": (517, 433),
              "border": (60, 80), "stray": (70, 90)}
    rows, cols = shapes[name]
    pixels = rng.integers(0, 256, size=(rows, cols, 4), dtype=np.uint8)
    r, c = np.mgrid[:rows, :cols]
    blob = ((r - rows / 2) / (rows / 2.6)) ** 2 + ((c - cols / 2) / (cols / 2.6)) ** 2 < 1
    alpha = np.where(blob, rng.integers(1, 256, size=(rows, cols)), 0)  # partial alpha everywhere inside
    if name == "border":
        alpha[:, :5] = 255
    if name == "stray":
        alpha[2, 85] = 3  # one nearly transparent pixel far from the object stretches the box
    pixels[:, :, 3] = alpha
    return Image.fromarray(pixels)


@pytest.mark.parametrize("name", ["odd", "tall", "wide", "small", "large", "border", "stray"])
def test_preprocessing_matches_the_original_pixel_for_pixel(name):
    image = rgba_case(name)
    expected_rgb, expected_rgba = reference_preprocess(image)
    framed = wonder3d_preprocess(image)
    assert np.array_equal(np.array(framed.rgba), expected_rgba)
    assert np.array_equal(framed.rgb, expected_rgb)
    assert max(framed.resized) in (191, 192)


def test_source_to_frame_follows_pil_resize_geometry():
    """A linear ramp keeps its value at every framed pixel's source position (bicubic reproduces linear functions)."""
    rows, cols = 40, 64
    r, c = np.mgrid[:rows, :cols]
    pixels = np.dstack([c * 3 + 20, r * 4 + 30, np.full_like(r, 128), np.full_like(r, 255)]).astype(np.uint8)
    framed = wonder3d_preprocess(Image.fromarray(pixels))
    frame_to_source = np.linalg.inv(framed.source_to_frame)
    out = np.array(framed.rgba).astype(float)
    ys, xs = np.mgrid[75:180, 40:215]  # inside the pasted crop (192×118 at (32, 69))
    source = frame_to_source @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    assert np.abs(out[ys, xs, 0].ravel() - (source[0] * 3 + 20)).max() <= 1.0
    assert np.abs(out[ys, xs, 1].ravel() - (source[1] * 4 + 30)).max() <= 1.0


def oblique_cases():
    k, j, i = np.meshgrid(np.arange(24), np.arange(30), np.arange(36), indexing="ij")
    array = ((i - 18) ** 2 / 90 + (j - 15) ** 2 / 50 + (k - 12) ** 2 / 40 < 1).astype(np.int16) * 100
    for permute in (False, True):
        yield oblique_volume(array, spacing=(0.7, 1.3, 2.2), permute=permute)


@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
def test_model_frame_round_trip_through_frame_json(axis, tmp_path):
    """Model point → RAS via frame.json → back agrees to 1e-6 mm; w = 0 lies on the slice plane."""
    rng = np.random.default_rng(7)
    for number, volume in enumerate(oblique_cases()):
        grid = "ijk".index(take_slice(volume, axis, 0).axis.grid_axis)
        index = volume.shape_ijk[grid] // 2
        prepared = prepare_slice(volume, axis=axis, index=index, automatic=True)
        path = prepared.framed.frame.save(tmp_path / f"frame{number}.json")
        frame = FrameRecord.load(path)
        points = np.column_stack([rng.uniform(-20, 275, (500, 3)), np.ones(500)])
        ras = points @ frame.model_to_ras.T
        back = ras @ np.linalg.inv(frame.model_to_ras).T
        assert np.abs(back[:, :3] - points[:, :3]).max() * frame.mm_per_pixel < 1e-6
        on_plane = points.copy()
        on_plane[:, 2] = 0.0
        ijk = volume.ras_to_ijk_points((on_plane @ frame.model_to_ras.T)[:, :3])
        assert np.abs(ijk[:, grid] - index).max() < 1e-9
        assert np.linalg.det(frame.model_frame_to_ras[:3, :3]) > 0
        assert np.allclose(frame.ijk_to_ras, volume.ijk_to_ras) and frame.slice_index == index
        assert frame.slice_axis == "ijk"[grid] and frame.details["axis_name"] == axis


def test_alpha_maps_back_onto_the_object_and_the_scale_is_physical():
    volume = next(oblique_cases())
    prepared = prepare_slice(volume, axis="axial", index=12, automatic=True)
    frame, source = prepared.framed.frame, prepared.slice
    rows, cols = source.shape
    r, c = np.mgrid[:rows, :cols]
    ras = source.pixel_to_ras_points(np.stack([c.ravel(), r.ravel()], axis=1))
    model = np.column_stack([ras, np.ones(len(ras))]) @ np.linalg.inv(frame.model_to_ras).T
    alpha = np.array(prepared.framed.input.rgba)[:, :, 3]
    inside = np.all((model[:, :2] >= 0) & (model[:, :2] <= 255), axis=1)
    sampled = np.zeros(len(ras), dtype=bool)
    sampled[inside] = alpha[np.rint(model[inside, 1]).astype(int), np.rint(model[inside, 0]).astype(int)] > 127
    truth = prepared.object.mask.ravel()
    assert (sampled & truth).sum() / (sampled | truth).sum() > 0.98
    # the object's longer side is 192 model pixels long (up to the anti-aliased edge and the crop quirk)
    col0, row0, col1, row1 = prepared.object.box
    extent_mm = max(col1 - col0 + 1, row1 - row0 + 1) * source.spacing[0]
    assert extent_mm / frame.mm_per_pixel == pytest.approx(192, abs=2)


def test_box_framing_gives_the_mask_framing_record():
    volume = next(oblique_cases())
    source = take_slice(volume, "coronal", 15)
    grey = np.clip(source.pixels / 100.0, 0, 1).astype(np.float32)
    framed = frame_slice(source, grey, box_mask(source.shape, (5, 3, 20, 9)).mask, details={"mask": "box"})
    assert np.array_equal(np.array(framed.input.rgba), reference_preprocess(framed.source_rgba)[1])
    again = frame_from_box(framed.source, framed.input.box)
    assert np.array_equal(again.model_to_ras, framed.frame.model_to_ras)
    assert (again.mm_per_pixel, again.slice_axis, again.slice_index, again.image_size) == (
        framed.frame.mm_per_pixel, framed.frame.slice_axis, framed.frame.slice_index, framed.frame.image_size)
    assert np.array_equal(again.ijk_to_ras, framed.frame.ijk_to_ras)
    assert again.details.items() <= framed.frame.details.items()
    # the record inverts exactly the geometry the preprocessing reports (source pixel -> framed pixel)
    model_to_source = np.array(again.details["model_to_source"])[np.ix_([0, 1, 3], [0, 1, 3])]
    assert np.allclose(model_to_source, np.linalg.inv(framed.input.source_to_frame))


def test_depth_offset_moves_the_model_origin_along_the_normal():
    volume = next(oblique_cases())
    source = take_slice(volume, "sagittal", 18)
    plain = frame_from_box(source, (3.0, 4.0, 25.5, 17.0))
    moved = frame_from_box(source, (3.0, 4.0, 25.5, 17.0), depth_offset_mm=-6.5)
    origin = [127.5, 127.5, 0.0, 1.0]
    assert np.allclose((moved.model_to_ras @ origin)[:3] - (plain.model_to_ras @ origin)[:3], -6.5 * source.normal)
    assert np.allclose(moved.model_to_ras[:3, :3], plain.model_to_ras[:3, :3])
    # the longer side (22.5 px) spans crop_size model pixels
    assert plain.mm_per_pixel == pytest.approx(22.5 * source.spacing[0] / 192)


def test_placed_unit_sphere_has_the_physical_radius_and_is_not_mirrored():
    volume = next(oblique_cases())
    frame = prepare_slice(volume, axis="axial", index=12, automatic=True).framed.frame
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
    placed = place_mesh(sphere, frame)
    centre = (frame.model_to_ras @ [127.5, 127.5, 0.0, 1.0])[:3]
    radii = np.linalg.norm(placed.vertices - centre, axis=1)
    assert np.allclose(radii, 128 * frame.mm_per_pixel, rtol=0.01)  # in-plane axes differ by < 1/192
    assert placed.volume > 0


def test_large_objects_are_cropped_without_resampling():
    pixels = np.zeros((1, 260, 300), dtype=np.float32)
    pixels[0, 20:240, 30:270] = np.linspace(0.1, 1, 240)[None, :]
    volume = Volume(pixels, np.diag([0.5, 0.5, 1.0, 1.0]))
    source = take_slice(volume, "k", 0)
    framed = frame_slice(source, source.pixels, source.pixels > 0)
    assert framed.supersample == 1
    assert np.array_equal(framed.source.pixels, source.pixels[18:242, 28:272])  # 2-pixel margin
    # Wonder3D's box of columns 30…269 is 239 pixels wide (exclusive max), scaled to 192
    assert framed.frame.mm_per_pixel == pytest.approx(0.5 * 239 / 192)


def test_degenerate_objects_are_refused():
    source = take_slice(Volume(np.zeros((1, 20, 30)), np.eye(4)), "k", 0)
    grey = np.zeros(source.shape, dtype=np.float32)
    with pytest.raises(InputError, match="the object mask is empty: there is nothing to frame"):
        frame_slice(source, grey, np.zeros(source.shape, dtype=bool))
    with pytest.raises(InputError, match="too thin to frame"):
        frame_from_box(source, (0, 0, 300, 1))
    with pytest.raises(InputError, match="the image's alpha channel is empty"):
        wonder3d_preprocess(Image.new("RGBA", (8, 8)))
