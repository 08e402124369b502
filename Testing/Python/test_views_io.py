"""The six-view folder layout is the original Wonder3D's, read and written exactly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.views import MIN_VIEW_SIZE, VIEW_NAMES, MultiviewImages, contact_sheet, load_views, save_views


@pytest.fixture
def views():
    rng = np.random.default_rng(0)
    size = 32
    yy, xx = np.mgrid[0:size, 0:size]
    masks = np.stack([((xx - 16) ** 2 + (yy - 16) ** 2 < (6 + v) ** 2) for v in range(6)])
    normals = rng.uniform(-1, 1, (6, size, size, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    colors = rng.uniform(0, 1, (6, size, size, 3)).astype(np.float32)
    return MultiviewImages.from_normal_vectors(normals, colors, masks, source="oracle", description="test shapes")


def test_round_trip_through_the_original_layout(tmp_path, views):
    written = save_views(views, tmp_path)
    for name in VIEW_NAMES:
        assert (tmp_path / f"normals_000_{name}.png") in written
        with Image.open(tmp_path / f"normals_000_{name}.png") as image:
            assert image.mode == "RGBA"
        with Image.open(tmp_path / f"rgb_000_{name}.png") as image:
            assert image.mode == "RGB"
        with Image.open(tmp_path / "masked_colors" / f"rgb_000_{name}.png") as image:
            assert image.mode == "RGBA"
    assert (tmp_path / "views.png").is_file()
    loaded = load_views(tmp_path)
    assert loaded.source == "oracle" and loaded.description == "test shapes"
    assert np.array_equal(loaded.masks, views.masks)
    assert np.abs(loaded.normals - views.normals).max() <= 0.5 / 255 + 1e-6, "8-bit quantisation only"
    decoded = loaded.decoded_normals()
    assert np.all(decoded[~loaded.masks] == 0)
    lengths = np.linalg.norm(decoded[loaded.masks], axis=-1)
    assert np.all(np.abs(lengths - 1) < 0.01)


def test_views_written_by_the_original_code_load(tmp_path, views):
    """No views.json, no contact sheet: what the original test script writes."""
    save_views(views, tmp_path, sheet=False)
    (tmp_path / "views.json").unlink()
    loaded = load_views(tmp_path)
    assert loaded.source == "files" and np.array_equal(loaded.masks, views.masks)


def test_mask_falls_back_to_masked_colors_alpha(tmp_path, views):
    save_views(views, tmp_path, sheet=False)
    for name in VIEW_NAMES:
        path = tmp_path / f"normals_000_{name}.png"
        Image.open(path).convert("RGB").save(path)
    assert np.array_equal(load_views(tmp_path).masks, views.masks)


def test_missing_mask_and_inconsistent_sizes_are_clear_errors(tmp_path, views):
    save_views(views, tmp_path, sheet=False)
    normal = tmp_path / "normals_000_right.png"
    Image.open(normal).convert("RGB").save(normal)
    (tmp_path / "masked_colors" / "rgb_000_right.png").unlink()
    with pytest.raises(InputError, match="view 'right' has no foreground mask"):
        load_views(tmp_path)
    save_views(views, tmp_path, sheet=False)
    Image.open(normal).resize((64, 64)).save(normal)
    with pytest.raises(InputError, match="colour image of view 'right' is 32×32 pixels, its normal map 64×64"):
        load_views(tmp_path)
    for path in (tmp_path / "rgb_000_right.png", tmp_path / "masked_colors" / "rgb_000_right.png"):
        Image.open(path).resize((64, 64)).save(path)
    with pytest.raises(InputError, match="view 'right' is 64 pixels wide, view 'front' 32"):
        load_views(tmp_path)
    save_views(views, tmp_path, sheet=False)
    (tmp_path / "normals_000_back.png").unlink()
    with pytest.raises(InputError, match="missing normal map of view 'back'"):
        load_views(tmp_path)


def test_contact_sheet_labels_oracle_views(views):
    oracle = np.asarray(contact_sheet(views))
    generated = np.asarray(contact_sheet(MultiviewImages(views.normals, views.colors, views.masks, source="diffusion")))
    banner = oracle[:20, :, :]
    assert (np.all(banner == [180, 20, 20], axis=-1)).mean() > 0.5, "oracle sheets carry a red banner"
    assert oracle.shape[0] > generated.shape[0]
    assert not np.any(np.all(generated == [180, 20, 20], axis=-1))


def test_shape_validation():
    with pytest.raises(ValueError, match="square"):
        MultiviewImages(np.zeros((6, 4, 5, 3)), np.zeros((6, 4, 5, 3)), np.zeros((6, 4, 5), bool))
    with pytest.raises(ValueError, match="source"):
        MultiviewImages(np.zeros((6, 16, 16, 3)), np.zeros((6, 16, 16, 3)), np.zeros((6, 16, 16), bool), source="guess")


@pytest.mark.parametrize("mode", ["L", "LA", "I;16"])
def test_grey_level_normal_maps_are_refused_by_name(tmp_path, views, mode):
    """One channel cannot hold a normal vector: say so, rather than fail later as an empty reconstruction."""
    save_views(views, tmp_path, sheet=False)
    path = tmp_path / "normals_000_left.png"
    Image.open(path).convert(mode).save(path)
    with pytest.raises(InputError, match=r"normal map of view 'left' is a grey-level image \(mode"):
        load_views(tmp_path)


def test_palette_normal_maps_keep_their_transparency_as_the_mask(tmp_path, views, recwarn):
    save_views(views, tmp_path, sheet=False)
    path = tmp_path / "normals_000_front.png"
    rgba = Image.open(path)
    palette = rgba.convert("RGB").quantize(colors=255)
    palette.info["transparency"] = 255  # an unused index: no pixel becomes transparent by accident
    pixels = np.array(palette)
    pixels[~views.masks[0]] = 255
    transparent = Image.fromarray(pixels, mode="P")
    colours = palette.getpalette()
    transparent.putpalette(colours + [0] * (768 - len(colours)))  # a full palette, so index 255 exists
    transparent.save(path, transparency=255)
    (tmp_path / "masked_colors" / "rgb_000_front.png").unlink()
    assert np.array_equal(load_views(tmp_path).masks[0], views.masks[0])
    assert not [w for w in recwarn if "Palette" in str(w.message)]


def test_mask_image_of_another_size_is_a_clear_error(tmp_path, views):
    save_views(views, tmp_path, sheet=False)
    normal = tmp_path / "normals_000_right.png"
    Image.open(normal).convert("RGB").save(normal)  # the mask must come from masked_colors
    masked = tmp_path / "masked_colors" / "rgb_000_right.png"
    Image.open(masked).resize((16, 16)).save(masked)
    with pytest.raises(InputError, match="masked colour image of view 'right' is 16×16 pixels, its normal map 32×32"):
        load_views(tmp_path)


def test_views_below_the_minimum_size_are_refused(tmp_path, views):
    save_views(views, tmp_path, sheet=False)
    size = MIN_VIEW_SIZE - 1
    for path in [*tmp_path.glob("*.png"), *tmp_path.glob("masked_colors/*.png")]:
        Image.open(path).resize((size, size)).save(path)
    with pytest.raises(InputError, match=f"only {size}×{size} pixels; reconstruction needs at least {MIN_VIEW_SIZE}"):
        load_views(tmp_path)
    with pytest.raises(ValueError, match=f"at least {MIN_VIEW_SIZE}×{MIN_VIEW_SIZE} pixels"):
        MultiviewImages(views.normals[:, :size, :size], views.colors[:, :size, :size], views.masks[:, :size, :size])


def test_bad_views_json_and_a_file_instead_of_a_folder(tmp_path, views):
    save_views(views, tmp_path, sheet=False)
    (tmp_path / "views.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="views.json must hold a JSON object, it holds a list"):
        load_views(tmp_path)
    with pytest.raises(InputError, match="this is a file, not a views folder"):
        load_views(tmp_path / "normals_000_front.png")
