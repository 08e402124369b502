"""The Wonder3D UNet: parity with the original code's outputs, the v1.0 key list, and
independent references for configs the fixtures do not cover (diffusers' own UNet with
the same weights; a per-view transcription of the multiview/cross-domain rules).

Tolerances: the fixtures README measures ≤ 2.6e-6 between equivalent float32 attention
formulas, so 1e-4 (its suggested bound) leaves ample room while any batch-ordering,
grouping or embedding mistake shows up at 0.1–1.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch

pytest.importorskip("diffusers")

from diffusers import UNet2DConditionModel  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from Wonder3DMedLib.diffusion import UNetMV2DConditionModel  # noqa: E402
from Wonder3DMedLib.diffusion.loading import unet_init_kwargs  # noqa: E402
from Wonder3DMedLib.errors import WeightsError  # noqa: E402

ATOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(reference_dir):
    folder = reference_dir / "wonder3d_unet_tiny"
    config = json.loads((folder / "config.json").read_text())
    return {
        "config": {k: v for k, v in config.items() if not k.startswith("_")},
        "weights": load_file(folder / "model.safetensors"),
        "inputs": load_file(folder / "inputs.safetensors"),
        "cfg24": load_file(folder / "inputs_cfg24.safetensors"),
        "outputs": load_file(folder / "outputs.safetensors"),
        "fp16": load_file(folder / "outputs_fp16_weights.safetensors"),
    }


def build(config: dict, weights: dict | None = None) -> UNetMV2DConditionModel:
    model = UNetMV2DConditionModel(**config).eval()
    if weights is not None:
        model.load_state_dict(weights)
    return model


def run(model, sample, timestep, hidden, labels):
    with torch.no_grad():
        return model(sample, timestep, hidden, class_labels=labels).sample


@pytest.mark.parametrize(
    "output,timestep,labels",
    [("out_t981", "timestep", "class_labels"), ("out_t501", "timestep2", "class_labels"),
     ("out_t981_dataset_cam", "timestep", "class_labels_dataset")],
)
def test_matches_the_original_on_every_timestep_and_camera_variant(tiny, output, timestep, labels):
    inputs = tiny["inputs"]
    result = run(build(tiny["config"], tiny["weights"]), inputs["sample"], inputs[timestep],
                 inputs["encoder_hidden_states"], inputs[labels])
    torch.testing.assert_close(result, tiny["outputs"][output], atol=ATOL, rtol=ATOL)


def test_sparse_multiview_attention_matches_the_original(tiny):
    inputs = tiny["inputs"]
    model = build({**tiny["config"], "sparse_mv_attention": True}, tiny["weights"])
    result = run(model, inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"], inputs["class_labels"])
    torch.testing.assert_close(result, tiny["outputs"]["out_t981_sparse_mv"], atol=ATOL, rtol=ATOL)
    # The flag matters (by up to 0.9 here), so the comparison above is not vacuous.
    assert (result - tiny["outputs"]["out_t981"]).abs().max() > 0.1


def test_guidance_batch_of_24_matches_the_original(tiny):
    cfg = tiny["cfg24"]
    result = run(build(tiny["config"], tiny["weights"]), cfg["sample24"], tiny["inputs"]["timestep"],
                 cfg["encoder_hidden_states24"], cfg["class_labels24"])
    torch.testing.assert_close(result, tiny["outputs"]["out24_t981"], atol=ATOL, rtol=ATOL)


def test_fp16_saved_weights_load_through_the_weights_only_path(tiny, reference_dir):
    folder = reference_dir / "wonder3d_pipeline_tiny" / "saved_pipeline_fp16" / "unet"
    assert (folder / "diffusion_pytorch_model.bin").is_file()
    model = UNetMV2DConditionModel.from_pretrained(folder)
    assert model.dtype == torch.float32
    inputs = tiny["inputs"]
    result = run(model, inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"], inputs["class_labels"])
    torch.testing.assert_close(result, tiny["fp16"]["out_t981_from_fp16_bin"], atol=ATOL, rtol=ATOL)


def test_v1_config_has_exactly_the_hub_keys_shapes_and_order(reference_dir):
    rows = [line.rstrip("\n").split("\t") for line in (reference_dir / "wonder3d_unet_v1_keys.tsv").open()][1:]
    v1 = dict(
        sample_size=32, in_channels=8, out_channels=4, cross_attention_dim=768, class_embed_type="projection",
        projection_class_embeddings_input_dim=10, num_views=6, multiview_attention=True, cd_attention_mid=True,
    )
    with torch.device("meta"):
        model = UNetMV2DConditionModel(**v1)
    state = model.state_dict()
    assert [(k, "x".join(map(str, v.shape))) for k, v in state.items()] == [(r[0], r[1]) for r in rows]
    assert sum(v.numel() for v in state.values()) == 910_785_284


def test_old_joint_attention_names_are_renamed_on_load(tiny, tmp_path):
    config = {**tiny["config"], "cd_attention_last": True}
    reference = build(config)
    weights = reference.state_dict()
    for key, value in weights.items():
        value.copy_(torch.randn_like(value) * 0.1 + (1.0 if "norm" in key and key.endswith("weight") else 0.0))
    old = {}
    for key, value in weights.items():
        key = key.replace("attn_joint_mid.", "attn_joint_twice.").replace("norm_joint_mid.", "norm_joint_twice.")
        key = key.replace("attn_joint_last.", "attn_joint.").replace("norm_joint_last.", "norm_joint.")
        old[key] = value.half()
    assert any("attn_joint_twice." in k for k in old) and any(".attn_joint." in k for k in old)
    torch.save(old, tmp_path / "diffusion_pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "UNetMV2DConditionModel", **config}))
    loaded = UNetMV2DConditionModel.from_pretrained(tmp_path)
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, weights[key].half().float())


def test_stale_hub_config_keys_warn_and_translate():
    with pytest.warns(UserWarning, match="joint_attention_twice=True .*ignored"):
        kwargs = unet_init_kwargs({"cd_attention_mid": True, "joint_attention_twice": True, "joint_attention": False,
                                   "cross_domain_attention": False, "_name_or_path": "/somewhere"})
    assert kwargs == {"cd_attention_mid": True, "cd_attention_last": False}
    with pytest.warns(UserWarning, match="used as cd_attention_mid"):
        assert unet_init_kwargs({"joint_attention_twice": True}) == {"cd_attention_mid": True}
    with pytest.raises(WeightsError, match="unknown UNet config keys"):
        unet_init_kwargs({"selfattn_block": "custom"})


def test_save_pretrained_round_trips_and_keeps_the_original_config_keys(tiny, tmp_path):
    model = build(tiny["config"], tiny["weights"])
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert {k for k in saved if not k.startswith("_")} == set(tiny["config"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = UNetMV2DConditionModel.from_pretrained(tmp_path)
    inputs = tiny["inputs"]
    args = (inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"], inputs["class_labels"])
    assert torch.equal(run(loaded, *args), run(model, *args))


def test_mismatched_weights_are_a_clear_error(tiny, tmp_path):
    torch.save({k: v for k, v in tiny["weights"].items() if "attn_joint_mid" not in k}, tmp_path / "diffusion_pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps(tiny["config"]))
    with pytest.raises(WeightsError, match="missing .*attn_joint_mid"):
        UNetMV2DConditionModel.from_pretrained(tmp_path)


def test_bfloat16_runs_and_stays_close(tiny):
    inputs = tiny["inputs"]
    model = build(tiny["config"], tiny["weights"])
    full = run(model, inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"], inputs["class_labels"])
    half = run(model.to(torch.bfloat16), inputs["sample"].bfloat16(), inputs["timestep"],
               inputs["encoder_hidden_states"].bfloat16(), inputs["class_labels"].bfloat16())
    assert half.dtype == torch.bfloat16
    # bfloat16 keeps 8 bits of mantissa: errors of a few percent of the output range are expected.
    assert (half.float() - full).abs().max() < 0.1 * full.abs().max()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_float16_on_cuda_matches_float32(tiny):
    inputs = {k: v.cuda() for k, v in tiny["inputs"].items()}
    model = build(tiny["config"], tiny["weights"]).cuda()
    full = run(model, inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"], inputs["class_labels"])
    half = run(model.half(), inputs["sample"].half(), inputs["timestep"], inputs["encoder_hidden_states"].half(),
               inputs["class_labels"].half())
    assert (half.float() - full).abs().max() < 2e-2 * full.abs().max()


# ---------------------------------------------------------------------------------------------
# Configs beyond the fixtures, against independent references


def reinit_(model: torch.nn.Module, seed: int) -> None:
    """Fixture-style weights: norms 1 + 0.1·N, matrices N/√fan_in, biases 0.1·N (nothing zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if "norm" in name and name.endswith("weight"):
                param.copy_(1 + 0.1 * noise)
            elif param.ndim >= 2:
                param.copy_(noise / param[0].numel() ** 0.5)
            else:
                param.copy_(0.1 * noise)


MV_TO_PLAIN = {"CrossAttnDownBlockMV2D": "CrossAttnDownBlock2D", "CrossAttnUpBlockMV2D": "CrossAttnUpBlock2D",
               "UNetMidBlockMV2DCrossAttn": "UNetMidBlock2DCrossAttn"}

BASE = dict(
    sample_size=8, in_channels=8, out_channels=4, norm_num_groups=4, cross_attention_dim=12,
    class_embed_type="projection", projection_class_embeddings_input_dim=10,
)

CONFIGS = {
    "three-levels-mixed-blocks-2-layers": dict(
        down_block_types=("CrossAttnDownBlockMV2D", "DownBlock2D", "CrossAttnDownBlockMV2D"),
        up_block_types=("CrossAttnUpBlockMV2D", "UpBlock2D", "CrossAttnUpBlockMV2D"),
        mid_block_type="UNetMidBlockMV2DCrossAttn", block_out_channels=(8, 16, 16), layers_per_block=2,
        transformer_layers_per_block=2, attention_head_dim=(2, 2, 4),
    ),
    "linear-projection-per-block-layers-diffusers-mid": dict(
        down_block_types=("DownBlock2D", "CrossAttnDownBlockMV2D"), up_block_types=("CrossAttnUpBlockMV2D", "UpBlock2D"),
        mid_block_type="UNetMidBlock2DCrossAttn", block_out_channels=(8, 16), layers_per_block=(1, 2),
        transformer_layers_per_block=(1, 2), attention_head_dim=2, use_linear_projection=True,
    ),
    "no-mid-block-no-class-embedding": dict(
        down_block_types=("CrossAttnDownBlockMV2D", "CrossAttnDownBlockMV2D"),
        up_block_types=("CrossAttnUpBlockMV2D", "CrossAttnUpBlockMV2D"), mid_block_type=None,
        block_out_channels=(8, 16), layers_per_block=1, attention_head_dim=4, class_embed_type=None,
    ),
    "simple-cross-attention-mid-block": dict(
        down_block_types=("CrossAttnDownBlockMV2D", "CrossAttnDownBlockMV2D"),
        up_block_types=("CrossAttnUpBlockMV2D", "CrossAttnUpBlockMV2D"), mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        block_out_channels=(8, 16), layers_per_block=1, attention_head_dim=4,
    ),
    "plain-cross-attention-blocks-mixed-in": dict(
        down_block_types=("CrossAttnDownBlockMV2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlockMV2D"), mid_block_type="UNetMidBlockMV2DCrossAttn",
        block_out_channels=(8, 16), layers_per_block=1, attention_head_dim=2, resnet_time_scale_shift="scale_shift",
    ),
}


def diffusers_reference(config: dict) -> UNet2DConditionModel:
    plain = {k: MV_TO_PLAIN.get(v, v) if isinstance(v, str) else v for k, v in config.items()}
    plain["down_block_types"] = [MV_TO_PLAIN.get(b, b) for b in config["down_block_types"]]
    plain["up_block_types"] = [MV_TO_PLAIN.get(b, b) for b in config["up_block_types"]]
    return UNet2DConditionModel(**plain).eval()


def random_inputs(batch: int, config: dict, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    sample = torch.randn(batch, config["in_channels"], 8, 8, generator=generator)
    hidden = torch.randn(batch, 1, config["cross_attention_dim"], generator=generator)
    labels = torch.randn(batch, 10, generator=generator) if config.get("class_embed_type") else None
    return sample, torch.tensor(417), hidden, labels


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("views_setting", ["multiview-off", "one-view"])
def test_reduces_to_the_diffusers_unet_without_multiview_mixing(name, views_setting):
    """With multiview and cross-domain attention off, or one view per object, the maths is plain SD."""
    config = {**BASE, **CONFIGS[name]}
    reference = diffusers_reference(config)
    reinit_(reference, seed=3)
    mv = dict(num_views=6, multiview_attention=False) if views_setting == "multiview-off" else dict(num_views=1)
    ours = build({**config, **mv}, reference.state_dict())
    args = random_inputs(6, config)
    with torch.no_grad():
        expected = reference(*args[:3], class_labels=args[3]).sample
    torch.testing.assert_close(run(ours, *args), expected, atol=ATOL, rtol=ATOL)


class PerViewAttention:
    """A literal transcription of the multiview rule (spec §3.2), one view and one head at a time."""

    def __init__(self, views: int, sparse: bool):
        self.views, self.sparse = views, sparse

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        batch, tokens, channels = query.shape
        heads, width = attn.heads, channels // attn.heads
        out = torch.empty_like(query)
        for b in range(batch):
            first = b - b % self.views
            members = [first, b] if self.sparse else list(range(first, first + self.views))
            keys, values = torch.cat([key[m] for m in members]), torch.cat([value[m] for m in members])
            for h in range(heads):
                cols = slice(h * width, (h + 1) * width)
                weights = torch.softmax(query[b, :, cols] @ keys[:, cols].T / width**0.5, dim=-1)
                out[b, :, cols] = weights @ values[:, cols]
        return attn.to_out[1](attn.to_out[0](out))


@pytest.mark.parametrize("name", ["three-levels-mixed-blocks-2-layers", "linear-projection-per-block-layers-diffusers-mid"])
@pytest.mark.parametrize("sparse", [False, True])
def test_multiview_attention_matches_a_per_view_transcription(name, sparse):
    """diffusers' UNet whose MV-block self-attentions follow the rule view by view must equal ours."""
    config = {**BASE, **CONFIGS[name]}
    reference = diffusers_reference(config)
    reinit_(reference, seed=5)
    ours = build({**config, "num_views": 3, "multiview_attention": True, "sparse_mv_attention": sparse},
                 reference.state_dict())
    mv_prefixes = [n for n, m in ours.named_modules() if "MV2D" in type(m).__name__]
    patched = 0
    for module_name, module in reference.named_modules():
        if module_name.endswith("attn1") and any(module_name.startswith(p + ".") for p in mv_prefixes):
            module.set_processor(PerViewAttention(3, sparse))
            patched += 1
    assert patched > 0
    args = random_inputs(6, config, seed=1)
    with torch.no_grad():
        expected = reference(*args[:3], class_labels=args[3]).sample
    result = run(ours, *args)
    torch.testing.assert_close(result, expected, atol=ATOL, rtol=ATOL)
    plain = build({**config, "num_views": 3, "multiview_attention": False}, reference.state_dict())
    assert (run(plain, *args) - result).abs().max() > 1e-2, "multiview mixing had no effect"


def test_batch_must_be_whole_groups_of_views(tiny):
    inputs = tiny["inputs"]
    model = build(tiny["config"], tiny["weights"])
    with pytest.raises(ValueError, match="whole groups of 6 views"):
        run(model, inputs["sample"][:8], inputs["timestep"], inputs["encoder_hidden_states"][:8], inputs["class_labels"][:8])


def test_unsupported_config_values_are_named():
    with pytest.raises(ValueError, match="num_attention_heads must be null"):
        UNetMV2DConditionModel(**{**BASE, **CONFIGS["no-mid-block-no-class-embedding"]}, num_attention_heads=2)
    with pytest.raises(ValueError, match="unknown mid_block_type 'Nope'"):
        UNetMV2DConditionModel(**{**BASE, **CONFIGS["no-mid-block-no-class-embedding"], "mid_block_type": "Nope"})
    with pytest.raises(ValueError, match="only_cross_attention cannot be combined"):
        UNetMV2DConditionModel(**{**BASE, **CONFIGS["no-mid-block-no-class-embedding"]}, only_cross_attention=True,
                               cd_attention_mid=True)
