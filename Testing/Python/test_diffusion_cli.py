"""``wonder3dmed views`` end to end on the tiny fixture checkpoint (offline)."""

from __future__ import annotations

import json
import re

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


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--steps", "0"], r"--steps\) must be a whole number of at least 1"),
        (["--guidance", "nan"], r"--guidance\) must be a finite number"),
        (["--eta", "-1"], r"--eta\) must be 0 or more"),
        (["--seed", "99999999999999999999"], r"--seed\) must be a whole number from 0 to 2\^64 - 1"),
    ],
)
def test_bad_sampling_options_are_refused_before_loading(prepared, tmp_path, capsys, option, message):
    """Checked by name before the weights are even looked for (the folder here does not exist)."""
    assert main(["views", str(prepared), "--weights", str(tmp_path / "none"), "--out", str(tmp_path / "o"), *option]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_steps_above_the_scheduler_limit_are_refused(prepared, weights, tmp_path, capsys):
    """DDIM's leading spacing with steps_offset 1 reaches timestep T at T steps: the limit is T - 1."""
    args = ["views", str(prepared), "--weights", str(weights), "--out", str(tmp_path / "o")]
    assert main([*args, "--steps", "1000"]) == 2
    assert "--steps) must be a whole number from 1 to 999, got 1000" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_unframed_input_never_reuses_a_frame_left_in_the_output(prepared, weights, tmp_path, capsys):
    out = tmp_path / "views"
    assert main(["views", str(prepared), "--weights", str(weights), "--out", str(out), "--steps", "1"]) == 0
    frame_before = (out / "frame.json").read_bytes()
    capsys.readouterr()
    plain = tmp_path / "plain.png"
    Image.open(prepared / "input.png").save(plain)
    assert main(["views", str(plain), "--weights", str(weights), "--out", str(out), "--steps", "1", "--overwrite"]) == 2
    assert "holds a frame.json, which would not describe views of this unframed input" in capsys.readouterr().err
    assert (out / "frame.json").read_bytes() == frame_before


def test_an_oversized_input_picture_is_a_clear_error(tmp_path, capsys):
    huge = tmp_path / "huge.png"
    Image.new("L", (15000, 15000)).save(huge)
    assert main(["views", str(huge), "--weights", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "too large to be a framed object picture" in capsys.readouterr().err


def test_help_lists_the_contract_options():
    parser = build_parser()
    views = parser._subparsers._group_actions[0].choices["views"]
    options = {option for action in views._actions for option in action.option_strings}
    assert {"--weights", "--out", "--steps", "--guidance", "--seed", "--device", "--dtype"} <= options
