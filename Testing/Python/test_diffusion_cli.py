"""``wonder3dmed views`` end to end on the tiny fixture checkpoint (offline)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("diffusers")

from Wonder3DMedLib.cli import build_parser, main  # noqa: E402
from Wonder3DMedLib.imaging.framing import FrameRecord  # noqa: E402
from Wonder3DMedLib.views import VIEW_NAMES, load_views  # noqa: E402


@pytest.fixture(autouse=True)
def offline_one_thread(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def weights(reference_dir):
    return reference_dir / "wonder3d_pipeline_tiny" / "saved_pipeline_fp32"


@pytest.fixture
def prepared(tmp_path):
    """A `prepare`-style folder for the tiny 16-pixel model: framed RGBA input.png + frame.json."""
    folder = tmp_path / "prepared"
    folder.mkdir()
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[3:13, 4:12] = [180, 90, 40, 255]
    Image.fromarray(rgba).save(folder / "input.png")
    FrameRecord(model_to_ras=np.diag([0.5, -0.5, -0.5, 1.0]), mm_per_pixel=0.5, slice_axis="k", slice_index=3,
                ijk_to_ras=np.eye(4), image_size=16).save(folder / "frame.json")
    return folder


def test_views_writes_the_original_layout_and_keeps_the_frame(prepared, weights, tmp_path, capsys):
    out = tmp_path / "views"
    code = main(["views", str(prepared), "--weights", str(weights), "--out", str(out), "--steps", "2"])
    assert code == 0, capsys.readouterr().err
    for view in VIEW_NAMES:
        for name in (f"normals_000_{view}.png", f"rgb_000_{view}.png", f"masked_colors/rgb_000_{view}.png"):
            assert (out / name).is_file(), name
    assert (out / "views.png").is_file()
    assert json.loads((out / "frame.json").read_text()) == json.loads((prepared / "frame.json").read_text())
    views = load_views(out)
    assert views.source == "diffusion" and views.metadata["num_inference_steps"] == 2 and views.size == 16
    captured = capsys.readouterr()
    assert "diffusion" in captured.err and "100%" in captured.err and "Not for diagnosis" in captured.err


def test_existing_views_are_not_overwritten_without_asking(prepared, weights, tmp_path, capsys):
    out = tmp_path / "views"
    args = ["views", str(prepared / "input.png"), "--weights", str(weights), "--out", str(out), "--steps", "1"]
    assert main(args) == 0
    before = (out / "normals_000_front.png").read_bytes()
    assert main(args) == 2
    assert "already holds views" in capsys.readouterr().err
    assert (out / "normals_000_front.png").read_bytes() == before
    assert main([*args, "--overwrite", "--seed", "7"]) == 0


def test_missing_weights_and_inputs_are_plain_errors(prepared, tmp_path, capsys):
    assert main(["views", str(prepared), "--weights", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["views", str(tmp_path), "--weights", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "input image not found" in capsys.readouterr().err
    assert main(["views", str(prepared), "--out", str(tmp_path / "o"), "--device", "cpu", "--dtype", "float16"]) == 2
    assert "float16 needs a GPU" in capsys.readouterr().err


def test_help_lists_the_contract_options():
    parser = build_parser()
    views = parser._subparsers._group_actions[0].choices["views"]
    options = {option for action in views._actions for option in action.option_strings}
    assert {"--weights", "--out", "--steps", "--guidance", "--seed", "--device", "--dtype"} <= options
