"""Finding the Wonder3D checkpoint: explicit folder, environment variable, offline HF cache."""

from __future__ import annotations

import shutil

import pytest

from Wonder3DMedLib import weights
from Wonder3DMedLib.errors import WeightsError


def test_fixture_checkpoints_are_complete(reference_dir):
    """The fp16 folder holds .bin pickles (the hub's format), the fp32 one safetensors; both count."""
    for name in ("saved_pipeline_fp16", "saved_pipeline_fp32"):
        assert weights.missing_files(reference_dir / "wonder3d_pipeline_tiny" / name) == []


def test_missing_files_names_each_absent_file(tmp_path):
    assert len(weights.missing_files(tmp_path)) == len(weights.REQUIRED_FILES)
    (tmp_path / "model_index.json").write_text("{}")
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "diffusion_pytorch_model.bin").write_bytes(b"")
    missing = weights.missing_files(tmp_path)
    assert "model_index.json" not in missing
    assert "vae/diffusion_pytorch_model.safetensors | vae/diffusion_pytorch_model.bin" not in missing
    assert "vae/config.json" in missing and len(missing) == len(weights.REQUIRED_FILES) - 2


@pytest.fixture
def fake_hf_cache(tmp_path, monkeypatch, reference_dir):
    """A Hugging Face cache holding the tiny fixture pipeline as the wonder3d-v1.0 snapshot."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / "models--flamehaze1115--wonder3d-v1.0"
    snapshot = repo / "snapshots" / "abc123"
    shutil.copytree(reference_dir / "wonder3d_pipeline_tiny" / "saved_pipeline_fp16", snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.delenv(weights.WEIGHTS_ENV, raising=False)
    return snapshot


def test_hf_cache_snapshot_is_found_offline(fake_hf_cache):
    assert weights.hf_cache_snapshot() == fake_hf_cache
    assert weights.find_checkpoint() == fake_hf_cache


def test_environment_variable_wins_over_the_cache(fake_hf_cache, reference_dir, monkeypatch):
    folder = reference_dir / "wonder3d_pipeline_tiny" / "saved_pipeline_fp32"
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(folder))
    assert weights.find_checkpoint() == folder


def test_an_explicit_incomplete_folder_is_an_error_not_a_fallback(fake_hf_cache, tmp_path):
    with pytest.raises(WeightsError) as error:
        weights.find_checkpoint(tmp_path)
    message = str(error.value)
    assert "not a complete Wonder3D checkpoint" in message and "unet/config.json" in message
    assert "hf download flamehaze1115/wonder3d-v1.0" in message and "--oracle" in message


def test_no_checkpoint_anywhere_says_where_it_looked(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv(weights.WEIGHTS_ENV, raising=False)
    with pytest.raises(WeightsError) as error:
        weights.find_checkpoint()
    message = str(error.value)
    assert "$WONDER3DMED_WEIGHTS: not set" in message and "Hugging Face cache: no copy of flamehaze1115/wonder3d-v1.0" in message
    with pytest.raises(WeightsError, match="does not exist"):
        weights.find_checkpoint(tmp_path / "nowhere")


def test_an_explicit_file_or_cache_folder_gets_a_pointed_error(fake_hf_cache, tmp_path):
    a_file = tmp_path / "weights.safetensors"
    a_file.write_bytes(b"")
    with pytest.raises(WeightsError, match="--weights names a file"):
        weights.find_checkpoint(a_file)
    cache_entry = fake_hf_cache.parent.parent
    with pytest.raises(WeightsError, match=f"pass the revision folder inside it, e.g. --weights {fake_hf_cache}"):
        weights.find_checkpoint(cache_entry)


def test_damaged_files_reads_only_the_structure(reference_dir, tmp_path):
    for name in ("saved_pipeline_fp16", "saved_pipeline_fp32"):
        assert weights.damaged_files(reference_dir / "wonder3d_pipeline_tiny" / name) == []
    copy = tmp_path / "copy"
    shutil.copytree(reference_dir / "wonder3d_pipeline_tiny" / "saved_pipeline_fp32", copy)
    encoder = copy / "image_encoder" / "model.safetensors"
    encoder.write_bytes(encoder.read_bytes()[:4])
    assert weights.damaged_files(copy) == ["image_encoder/model.safetensors is empty or truncated"]
