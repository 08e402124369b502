"""The model frame and pixel grid follow the fixtures README exactly; frame records place meshes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.imaging.framing import FrameRecord, place_mesh
from Wonder3DMedLib.model_frame import model_to_pixel_matrix, pixel_centers_model, pixel_to_model_matrix


@pytest.mark.parametrize("size", [16, 256, 1024])
def test_pixel_rule_of_the_fixtures_readme(size):
    """Column i is at x = (2i+1)/W − 1 and row j at y = 1 − (2j+1)/H."""
    cols = np.array([0, 1, size // 2, size - 1], dtype=float)
    homogeneous = np.stack([cols, cols, np.zeros_like(cols), np.ones_like(cols)])
    model = pixel_to_model_matrix(size) @ homogeneous
    assert np.allclose(model[0], (2 * cols + 1) / size - 1)
    assert np.allclose(model[1], 1 - (2 * cols + 1) / size)
    assert np.allclose(model_to_pixel_matrix(size) @ model, homogeneous)
    x, y = pixel_centers_model(size)
    assert x[0] == pytest.approx(-1 + 1 / size) and y[0] == pytest.approx(1 - 1 / size)
    assert np.allclose(x, -y)


def test_depth_uses_the_pixel_scale():
    """w pixels towards the viewer are 2w/size model units along +z."""
    point = pixel_to_model_matrix(256) @ np.array([127.5, 127.5, 64.0, 1.0])
    assert np.allclose(point[:3], [0.0, 0.0, 0.5])


def test_recon_front_camera_axes_are_the_model_frame(reference_dir):
    """The front camera's axes (x right, y up, z towards it) in world coordinates."""
    poses = json.loads((reference_dir / "wonder3d_recon_poses.json").read_text())
    rotation = np.array(poses["world_to_camera"]["front"])[:, :3]
    # world z-up; the front camera at (0, -1.3, 0): camera x = world x, camera y = world z, camera z = -world y
    assert np.allclose(rotation, [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-6)


def _frame(mirror_rows: bool = True) -> FrameRecord:
    """A frame record: 0.5 mm pixels, slice normal along +S, oblique in-plane axes."""
    angle = np.deg2rad(30)
    col_dir = np.array([np.cos(angle), np.sin(angle), 0.0])
    row_dir = np.array([np.sin(angle), -np.cos(angle), 0.0]) * (1 if mirror_rows else -1)
    depth_dir = -np.cross(col_dir, row_dir)
    model_to_ras = np.eye(4)
    model_to_ras[:3, :3] = np.stack([col_dir, row_dir, depth_dir], axis=1) * 0.5
    model_to_ras[:3, 3] = [10.0, -20.0, 30.0]
    return FrameRecord(model_to_ras, 0.5, "k", 12, np.diag([1.0, 1.0, 2.0, 1.0]), details={"axis_name": "axial"})


def test_frame_record_json_round_trip(tmp_path):
    frame = _frame()
    loaded = FrameRecord.load(frame.save(tmp_path / "frame.json"))
    assert np.array_equal(loaded.model_to_ras, frame.model_to_ras)
    assert loaded.slice_axis == "k" and loaded.slice_index == 12 and loaded.details == {"axis_name": "axial"}
    data = json.loads((tmp_path / "frame.json").read_text())
    for key in ("model_to_ras", "mm_per_pixel", "slice_axis", "slice_index", "ijk_to_ras", "model_frame_to_pixel"):
        assert key in data


def test_place_mesh_scales_and_never_mirrors():
    frame = _frame()
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    placed = place_mesh(sphere, frame)
    # the model-frame origin is pixel (127.5, 127.5, 0)
    centre = (frame.model_to_ras @ [127.5, 127.5, 0.0, 1.0])[:3]
    assert np.allclose(placed.vertices.mean(0), centre, atol=1e-9)
    # radius 0.5 model units = 64 pixels = 32 mm
    assert np.allclose(np.linalg.norm(placed.vertices - centre, axis=1), 32.0)
    assert placed.volume > 0 and np.linalg.det(frame.model_frame_to_ras[:3, :3]) > 0
    assert np.array_equal(sphere.vertices, trimesh.creation.icosphere(subdivisions=3, radius=0.5).vertices)


def test_bad_frame_records_are_refused(tmp_path):
    with pytest.raises(ValueError, match="mm_per_pixel"):
        FrameRecord(np.eye(4), 0.0, "k", 0, np.eye(4))
    with pytest.raises(ValueError, match="singular"):
        FrameRecord(np.diag([1.0, 0.0, 1.0, 1.0]), 1.0, "k", 0, np.eye(4))
    with pytest.raises(InputError, match="frame record not found"):
        FrameRecord.load(tmp_path / "none.json")
    (tmp_path / "other.json").write_text('{"format": "something"}')
    with pytest.raises(InputError, match="not a Wonder3DMed frame record"):
        FrameRecord.load(tmp_path / "other.json")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda data: [data], "JSON object, this file holds a list"),
        (lambda data: {**data, "version": 99}, "version 99 is not supported"),
        (lambda data: {key: value for key, value in data.items() if key != "mm_per_pixel"}, "missing key 'mm_per_pixel'"),
        (lambda data: {**data, "image_size": 0}, "image_size must be a positive whole number"),
        (lambda data: {**data, "image_size": "256"}, "image_size must be a positive whole number"),
        (lambda data: {**data, "model_frame_to_ras": np.diag([2.0, 2.0, 2.0, 1.0]).tolist()},
         "model_frame_to_ras disagrees with model_to_ras"),
        (lambda data: {**data, "model_frame_to_ras": "identity"}, "model_frame_to_ras must be a finite 4×4 matrix"),
        (lambda data: {**data, "model_frame_to_pixel": np.eye(4).tolist()}, "model_frame_to_pixel disagrees"),
    ],
)
def test_edited_frame_records_are_refused_when_loaded(tmp_path, edit, message):
    """A record edited by hand fails on loading with what is wrong, not later or silently."""
    data = _frame().to_dict()
    path = tmp_path / "frame.json"
    path.write_text(json.dumps(edit(data)))
    with pytest.raises(InputError, match=message):
        FrameRecord.load(path)


def test_frame_record_path_that_is_a_folder_is_refused(tmp_path):
    with pytest.raises(InputError, match="folder, not a frame record"):
        FrameRecord.load(tmp_path)


def test_frame_record_without_derived_matrices_loads(tmp_path):
    """The derived matrices are for other tools; a record without them is still complete."""
    data = {key: value for key, value in _frame().to_dict().items() if not key.startswith("model_frame_to")}
    path = tmp_path / "frame.json"
    path.write_text(json.dumps(data))
    assert np.allclose(FrameRecord.load(path).model_frame_to_ras, _frame().model_frame_to_ras)
