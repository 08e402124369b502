"""``wonder3dmed mesh`` on a views folder: model-frame and RAS outputs, clear errors, user data kept."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from Wonder3DMedLib.cli import main
from Wonder3DMedLib.errors import InputError
from Wonder3DMedLib.imaging.framing import FrameRecord, place_mesh
from Wonder3DMedLib.mesh_io import MODEL_SPACE, read_mesh, write_mesh
from Wonder3DMedLib.reconstruction.backends import reconstruct_mesh
from Wonder3DMedLib.reconstruction.render import render_views
from Wonder3DMedLib.reconstruction.shapes import bumpy_blob, frame_mesh
from Wonder3DMedLib.views import load_views, save_views


@pytest.fixture(scope="module")
def blob():
    return frame_mesh(bumpy_blob(subdivisions=4))


@pytest.fixture(scope="module")
def views_dir(tmp_path_factory, blob):
    folder = tmp_path_factory.mktemp("views")
    save_views(render_views(blob, size=96, description="bumpy blob"), folder)
    return folder


def _frame() -> FrameRecord:
    """0.4 mm per model-frame pixel, model x -> R, row -> S (down), depth -> A; det < 0 as the contract requires."""
    model_to_ras = np.array([[0.4, 0, 0, 10.0], [0, 0, -0.4, 20.0], [0, -0.4, 0, -5.0], [0, 0, 0, 1.0]])
    return FrameRecord(model_to_ras, 0.4, "j", 30, np.eye(4))


def test_model_frame_output_is_marked_and_refused_as_patient_data(tmp_path, views_dir, blob):
    out = tmp_path / "blob.ply"
    assert main(["mesh", str(views_dir), "--out", str(out), "--mc-resolution", "96"]) == 0
    head = out.read_bytes()[:400]
    assert b"FRAME=wonder3d-model" in head and b"SPACE=" not in head
    loaded = trimesh.load(out, process=False)
    assert loaded.is_watertight and loaded.visual.vertex_colors.shape[0] == len(loaded.vertices)
    assert np.allclose(loaded.bounds, blob.bounds, atol=0.05), "model frame, model units"
    with pytest.raises(InputError, match="model frame"):
        read_mesh(out)


@pytest.mark.parametrize("suffix", [".stl", ".obj"])
def test_frame_places_the_mesh_in_ras_millimetres(tmp_path, views_dir, suffix):
    frame_path = _frame().save(tmp_path / "frame.json")
    out = tmp_path / f"blob{suffix}"
    assert main(["mesh", str(views_dir), "--out", str(out), "--frame", str(frame_path), "--mc-resolution", "64", "--smooth", "0"]) == 0
    placed = read_mesh(out)
    assert placed.space_in_file == "RAS" and placed.space_tagged
    model = reconstruct_mesh(load_views(views_dir), resolution=64, smoothing_iterations=0).mesh
    expected = place_mesh(model, _frame())
    assert np.allclose(placed.mesh.bounds, expected.bounds, atol=1e-3)
    assert placed.mesh.volume > 0, "outward winding survives the mirroring placement"


def test_existing_output_is_never_replaced_without_overwrite(tmp_path, views_dir, capsys):
    out = tmp_path / "keep.ply"
    out.write_text("user data")
    assert main(["mesh", str(views_dir), "--out", str(out)]) == 2
    assert out.read_text() == "user data"
    assert "--overwrite" in capsys.readouterr().err


def test_output_that_is_a_folder_is_refused_before_any_work(tmp_path, views_dir, capsys):
    folder = tmp_path / "mesh.ply"
    folder.mkdir()
    for extra in ([], ["--overwrite"]):
        assert main(["mesh", str(views_dir), "--out", str(folder), *extra]) == 2
        assert "--out is a folder" in capsys.readouterr().err
    assert folder.is_dir() and not any(folder.iterdir())


def test_writing_never_touches_other_files_beside_the_output(tmp_path, views_dir):
    """The temporary file is a fresh name: a user's file that looks like one survives."""
    lookalike = tmp_path / ".blob.partial.ply"
    lookalike.write_text("user data")
    out = tmp_path / "blob.ply"
    assert main(["mesh", str(views_dir), "--out", str(out), "--mc-resolution", "48"]) == 0
    assert lookalike.read_text() == "user data"
    assert sorted(path.name for path in tmp_path.iterdir()) == [".blob.partial.ply", "blob.ply"]
    assert out.stat().st_mode & 0o777 == lookalike.stat().st_mode & 0o777, "the usual permissions, not a temp file's"


def test_write_failure_names_the_output_and_leaves_nothing(tmp_path, views_dir, capsys, monkeypatch):
    from Wonder3DMedLib import mesh_io

    def failing_write(mesh, path, **options):
        path.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mesh_io, "write_mesh", failing_write)
    out = tmp_path / "blob.ply"
    assert main(["mesh", str(views_dir), "--out", str(out), "--mc-resolution", "48"]) == 2
    error = capsys.readouterr().err
    assert "cannot write the mesh: No space left on device" in error and str(out) in error
    assert list(tmp_path.iterdir()) == []


def test_device_with_the_fast_backend_is_noted_as_ignored(tmp_path, views_dir, capsys):
    assert main(["mesh", str(views_dir), "--out", str(tmp_path / "m.ply"), "--mc-resolution", "48", "--device", "cuda"]) == 0
    assert "--device cuda is ignored" in capsys.readouterr().err


def test_missing_backend_and_bad_arguments_are_clear_errors(tmp_path, views_dir, capsys, monkeypatch):
    from Wonder3DMedLib.reconstruction import backends

    monkeypatch.setitem(backends.BACKENDS, "neus", "Wonder3DMedLib.reconstruction.not_built_here")
    assert main(["mesh", str(views_dir), "--out", str(tmp_path / "m.ply"), "--recon", "neus"]) == 2
    error = capsys.readouterr().err
    assert "neus" in error and "not part of this build" in error and "--recon fast" in error
    assert not (tmp_path / "m.ply").exists()
    monkeypatch.undo()
    assert main(["mesh", str(views_dir), "--out", str(tmp_path / "m.ply"), "--recon", "neus", "--neus-steps", "0"]) == 2
    assert "--neus-steps must be at least 1" in capsys.readouterr().err
    assert main(["mesh", str(views_dir), "--out", str(tmp_path / "m.ply"), "--recon", "neus", "--device", "mps"]) == 2
    assert "not supported by the NeuS backend" in capsys.readouterr().err
    assert not (tmp_path / "m.ply").exists()
    assert main(["mesh", str(views_dir), "--out", str(tmp_path / "m.xyz")]) == 2
    assert main(["mesh", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.ply")]) == 2
    assert "views folder not found" in capsys.readouterr().err


def test_original_wonder3d_folder_without_views_json(tmp_path, views_dir):
    """Only the files the original writes (no views.json, no contact sheet), at another resolution."""
    folder = tmp_path / "original"
    views = render_views(frame_mesh(bumpy_blob(subdivisions=4)), size=80)
    save_views(views, folder, sheet=False)
    (folder / "views.json").unlink()
    out = tmp_path / "original.ply"
    assert main(["mesh", str(folder), "--out", str(out), "--mc-resolution", "64"]) == 0
    assert trimesh.load(out).is_watertight


def test_write_mesh_model_space_round_trip_of_the_marker(tmp_path):
    ball = trimesh.creation.icosphere(subdivisions=1)
    for suffix in (".ply", ".stl", ".obj", ".vtk", ".vtp"):
        path = write_mesh(ball, tmp_path / f"ball{suffix}", space=MODEL_SPACE)
        with pytest.raises(InputError, match="model frame"):
            read_mesh(path)
