"""Offscreen renders and the self-contained HTML report."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import trimesh
from PIL import Image

from Wonder3DMedLib import NOT_FOR_DIAGNOSIS
from Wonder3DMedLib.report.html import Figure, ReportContent, render_html
from Wonder3DMedLib.report.renders import VIEW_DIRECTIONS, render_mesh

RED = np.array([217, 26, 26])


@pytest.fixture(scope="module")
def meshes():
    surface = trimesh.creation.icosphere(subdivisions=3, radius=10.0)
    surface.apply_translation([-30.0, 15.0, 40.0])
    reference = trimesh.creation.box(extents=[26.0, 18.0, 14.0])
    reference.apply_translation([-30.0, 15.0, 40.0])
    return surface, reference


def test_views_look_from_where_their_names_say(meshes):
    """An object on the patient's left (−R) appears on the image's right when seen from anterior."""
    surface, _ = meshes
    left_blob = trimesh.creation.icosphere(subdivisions=2, radius=3.0)
    left_blob.apply_translation([-45.0, 15.0, 40.0])
    scene = trimesh.util.concatenate([surface, left_blob])
    anterior = render_mesh(scene, "anterior").image
    drawn = np.any(anterior < 250, axis=-1)
    columns = np.nonzero(drawn.any(axis=0))[0]
    # the small blob (radius 3) is the right-most thing drawn, the big sphere (radius 10) the left-most
    height_right = drawn[:, columns.max() - 3].sum()
    height_left = drawn[:, columns.min() + 3].sum()
    assert 0 < height_right < height_left


def test_render_shows_surface_and_reference_outline(meshes):
    surface, reference = meshes
    for view in ("anterior", "superior", "left"):
        image = render_mesh(surface, view, reference=reference, size=(200, 160)).image
        assert image.shape == (160, 200, 3) and image.dtype == np.uint8
        background = np.all(image == 255, axis=-1)
        assert 0.2 < background.mean() < 0.95, "the surface fills part of the frame"
        reddish = (image[..., 0] > 150) & (image[..., 1] < 90) & (image[..., 2] < 90)
        assert reddish.sum() > 50, "the reference outline is drawn"
    with pytest.raises(ValueError, match="view must be one of"):
        render_mesh(surface, "diagonal")
    assert set(VIEW_DIRECTIONS) >= {"anterior", "superior", "left"}


def test_html_is_self_contained_and_labelled():
    picture = Image.new("RGB", (40, 30), (10, 200, 30))
    content = ReportContent(
        title="Wonder3DMed reconstruction",
        summary="left thalamus from axial slice 80",
        oracle=True,
        sections=[("Input slice", [Figure(picture, "the slice", "slice")])],
        metrics={"hd95_mm": 1.23456, "volume_pred_mm3": 8123.4, "dice": 0.91, "surface_dice": {"1.0": 0.8},
                 "assd_mm": float("inf")},
        definitions={"hd95_mm": "95th percentile", "surface_dice": "fraction within tolerance"},
        tables=[("Parameters", {"steps": 50, "recon": "fast"})],
        warnings=["depth clipped"],
    )
    page = render_html(content)
    assert NOT_FOR_DIAGNOSIS in page and 'id="oracle-mode"' in page
    assert "<code>hd95_mm</code></td><td class=value>1.2346</td><td>mm</td>" in page
    assert "surface_dice@1.0mm" in page and "∞" in page and "mm³" in page
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(uris) == 1
    decoded = Image.open(io.BytesIO(base64.b64decode(uris[0])))
    assert decoded.size == (40, 30)
    assert "http://" not in page and "https://" not in page, "nothing is fetched when the page opens"
    assert 'id="oracle-mode"' not in render_html(ReportContent("t", "s", False, []))


def test_cross_section_figure_keeps_both_outlines_visible_where_they_coincide():
    from Wonder3DMedLib.placement import cross_section_figure

    grey = np.full((60, 80), 0.5)
    disc = np.hypot(*np.mgrid[-30:30, -40:40]) < 10
    figure = np.asarray(cross_section_figure(grey, disc, disc, zoom=3)).astype(int)
    green = np.all(np.abs(figure - [25, 229, 51]) <= 1, axis=-1)
    red = np.all(np.abs(figure - [242, 38, 25]) <= 1, axis=-1)
    assert green.sum() > 100 and red.sum() > 100, "identical outlines: both colours still show"
    assert not (green & red).any()
    shifted = np.roll(disc, 15, axis=1)
    wide = np.asarray(cross_section_figure(grey, disc, shifted, zoom=1))
    assert wide.shape[1] >= 19 + 15 + 2 * 8, "the crop holds both the section and the outline, with a margin"
