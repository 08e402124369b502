"""The ``wonder3dmed`` command line: help texts, the doctor, argument parsing."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from Wonder3DMedLib.cli import SUBCOMMANDS, build_parser, main
from Wonder3DMedLib.cli.arguments import LabelledPath, labelled_path, slice_spec


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed console script, or the module when it is not installed."""
    script = shutil.which("wonder3dmed")
    command = [script] if script else [sys.executable, "-m", "Wonder3DMedLib"]
    return subprocess.run([*command, *args], cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=300)


def test_main_help_lists_every_subcommand():
    result = run_cli("--help")
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert f"    {name}" in result.stdout
    assert "not for diagnosis" in result.stdout.lower()


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_option_of_every_subcommand_is_explained(name):
    parser = build_parser()
    subparser = parser._subparsers._group_actions[0].choices[name]
    assert subparser.description and len(subparser.description) > 60
    for action in subparser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and len(action.help) > 10, f"{name} {action.option_strings or action.dest} lacks help"
    result = run_cli(name, "--help")
    assert result.returncode == 0 and result.stdout.startswith(f"usage: wonder3dmed {name}")


@pytest.mark.parametrize(
    "name,options",
    [
        ("prepare", ["--slice", "--mask", "--auto-mask", "--window", "--out"]),
        ("views", ["--weights", "--out", "--steps", "--guidance", "--seed", "--device", "--dtype"]),
        ("mesh", ["--out", "--recon", "--mc-resolution", "--frame"]),
        ("reconstruct", ["--slice", "--mask", "--auto-mask", "--out", "--weights", "--oracle", "--recon", "--device",
                         "--steps", "--guidance", "--seed", "--format", "--compare", "--overwrite"]),
        ("compare", ["--tolerance", "--align", "--out"]),
        ("demo", ["--out"]),
        ("doctor", ["--weights", "--json"]),
    ],
)
def test_subcommand_options_are_the_contract(name, options):
    parser = build_parser()
    subparser = parser._subparsers._group_actions[0].choices[name]
    declared = {option for action in subparser._actions for option in action.option_strings}
    assert set(options) <= declared


def test_doctor_reports_packages_devices_weights_disk_memory():
    result = run_cli("doctor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    names = {p["name"]: p for p in report["packages"]}
    assert names["torch"]["version"] and names["numpy"]["version"]
    assert any(d["kind"] == "cpu" for d in report["devices"])
    origins = [c["origin"] for c in report["checkpoints"]]
    assert origins == ["$WONDER3DMED_WEIGHTS", "Hugging Face cache"]
    assert report["disk_free_gb"] > 0 and report["memory_total_gb"] > 0
    assert report["usable"] is True
    text = run_cli("doctor")
    assert "Wonder3D weights (searched in this order)" in text.stdout and "Status: usable" in text.stdout


def test_doctor_finds_the_fixture_checkpoint(reference_dir):
    folder = reference_dir / "wonder3d_pipeline_tiny" / "saved_pipeline_fp16"
    result = run_cli("doctor", "--json", "--weights", str(folder))
    report = json.loads(result.stdout)
    assert report["checkpoints"][0] == {"origin": "--weights", "path": str(folder), "complete": True, "missing": []}
    assert result.returncode == 0


def test_doctor_fails_on_an_incomplete_weights_folder(tmp_path):
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text("{}")
    result = run_cli("doctor", "--weights", str(tmp_path))
    assert result.returncode == 1
    assert "incomplete, missing" in result.stdout and "unet/diffusion_pytorch_model.safetensors" in result.stdout
    assert "NOT usable" in result.stdout


def test_doctor_reads_the_weights_environment_variable(reference_dir):
    folder = reference_dir / "wonder3d_pipeline_tiny" / "saved_pipeline_fp32"
    env = dict(os.environ, WONDER3DMED_WEIGHTS=str(folder))
    report = json.loads(run_cli("doctor", "--json", env=env).stdout)
    assert report["checkpoints"][0]["origin"] == "$WONDER3DMED_WEIGHTS" and report["checkpoints"][0]["complete"]


def test_doctor_finds_truncated_weights_and_names_odd_paths(tmp_path, reference_dir):
    """Present is not intact: a cut safetensors or .bin is reported, not called complete."""
    damaged = tmp_path / "cut"
    shutil.copytree(reference_dir / "wonder3d_pipeline_tiny" / "saved_pipeline_fp32", damaged)
    unet = damaged / "unet" / "diffusion_pytorch_model.safetensors"
    unet.write_bytes(unet.read_bytes()[: unet.stat().st_size // 2])
    result = run_cli("doctor", "--weights", str(damaged))
    assert result.returncode == 1 and "DAMAGED: unet/diffusion_pytorch_model.safetensors is truncated" in result.stdout
    bin_copy = tmp_path / "cut16"
    shutil.copytree(reference_dir / "wonder3d_pipeline_tiny" / "saved_pipeline_fp16", bin_copy)
    vae = next((bin_copy / "vae").glob("*.bin"))
    vae.write_bytes(vae.read_bytes()[:-100])
    assert "is truncated or not a torch checkpoint archive" in run_cli("doctor", "--weights", str(bin_copy)).stdout
    missing = run_cli("doctor", "--weights", str(tmp_path / "none"))
    assert missing.returncode == 1 and f"--weights: {tmp_path / 'none'} — does not exist" in missing.stdout
    a_file = tmp_path / "weights.png"
    a_file.write_bytes(b"")
    assert "is a file, not a checkpoint folder" in run_cli("doctor", "--weights", str(a_file)).stdout


def test_doctor_warns_about_a_bad_weights_variable_and_points_into_a_hub_cache(tmp_path):
    env = dict(os.environ, WONDER3DMED_WEIGHTS=str(tmp_path / "none"))
    result = run_cli("doctor", env=env)
    assert result.returncode == 0 and "$WONDER3DMED_WEIGHTS " + str(tmp_path / "none") + " does not exist" in result.stdout
    snapshot = tmp_path / "hub" / "models--flamehaze1115--wonder3d-v1.0" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    assert f"pass the revision folder inside it, e.g. --weights {snapshot}" in run_cli(
        "doctor", "--weights", str(tmp_path / "hub")).stdout


def test_labelled_path_parsing(tmp_path):
    assert labelled_path("seg.nii.gz:71") == LabelledPath(Path("seg.nii.gz"), "71")
    assert labelled_path("seg.seg.nrrd:Caudate_L") == LabelledPath(Path("seg.seg.nrrd"), "Caudate_L")
    assert labelled_path("mesh.stl") == LabelledPath(Path("mesh.stl"))
    odd = tmp_path / "a:b"
    odd.write_text("")
    assert labelled_path(str(odd)) == LabelledPath(odd), "an existing file is never split at ':'"
    assert labelled_path("dir:/x/y.stl").label is None


def test_slice_spec_parsing():
    assert slice_spec("axial:90").axis == "axial" and slice_spec("K:3").index == 3
    by_point = slice_spec("Coronal@-10.5,18,2e1")
    assert (by_point.axis, by_point.index, by_point.ras) == ("coronal", None, (-10.5, 18.0, 20.0))
    assert str(by_point) == "coronal@-10.5,18,20" and str(slice_spec("k:3")) == "k:3"
    for bad in ("axial", "oblique:3", "axial:x", "k:-1", "axial@1,2", "axial@1,2,x", "axial@1,2,nan", "oblique@1,2,3"):
        with pytest.raises(argparse.ArgumentTypeError):
            slice_spec(bad)


def test_usage_errors_say_what_is_wrong(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "in.nii.gz", "--slice", "diagonal:3", "--auto-mask", "--out", "x"])
    assert exit_info.value.code == 2
    assert "AXIS one of axial, coronal, sagittal, i, j, k" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(monkeypatch, capsys):
    """`wonder3dmed doctor --json | head`: the reader leaving is not an error worth a traceback."""
    from Wonder3DMedLib.cli import doctor

    def reader_gone(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(doctor, "run", reader_gone)
    assert main(["doctor"]) == 141
    assert "Traceback" not in capsys.readouterr().err
