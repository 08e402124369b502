"""Attention of the Wonder3D UNet: chunked SDPA within its memory budget, the cross-domain
pairing rule and the transformer layer's execution order, against literal transcriptions
of the spec (softmax written out, one sample and one head at a time)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from diffusers.models.attention_processor import Attention  # noqa: E402

from Wonder3DMedLib.diffusion import attention as attention_module  # noqa: E402
from Wonder3DMedLib.diffusion.attention import (  # noqa: E402
    CrossDomainAttnProcessor,
    ImageCrossAttnProcessor,
    MultiviewAttnProcessor,
    chunked_attention,
)
from Wonder3DMedLib.diffusion.transformer_mv2d import (  # noqa: E402
    BasicMVTransformerBlock,
    GEGLUFeedForward,
    MultiviewSettings,
)

ATOL = 1e-5  # float32 attention over a few hundred tokens: summation-order differences ~1e-7


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def softmax_attention(query, key, value, scale):
    return torch.softmax(query @ key.transpose(-1, -2) * scale, dim=-1) @ value


@pytest.mark.parametrize("budget_rows", [1, 3, 200, 600, 10_000])
def test_chunked_attention_equals_one_call_and_respects_the_budget(monkeypatch, budget_rows):
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(3, 2, 300, 8, generator=generator)
    key = torch.randn(3, 2, 170, 8, generator=generator)
    value = torch.randn(3, 2, 170, 8, generator=generator)
    budget = budget_rows * 2 * 170 * 4  # bytes of float32 scores for budget_rows query rows
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording_sdpa(q, k, v, **kwargs):
        calls.append(q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * q.element_size())
        return sdpa(q, k, v, **kwargs)

    monkeypatch.setattr(attention_module.F, "scaled_dot_product_attention", recording_sdpa)
    result = chunked_attention(query, key, value, scale=8**-0.5, max_score_bytes=budget)
    torch.testing.assert_close(result, softmax_attention(query, key, value, 8**-0.5), atol=ATOL, rtol=ATOL)
    assert max(calls) <= max(budget, 2 * 170 * 4), "an SDPA call exceeded the score-memory budget"
    assert (len(calls) == 1) == (budget_rows >= 3 * 300)


def make_attention(dim=16, heads=2, processor=None, cross_attention_dim=None):
    torch.manual_seed(1)
    attn = Attention(query_dim=dim, heads=heads, dim_head=dim // heads, processor=processor,
                     cross_attention_dim=cross_attention_dim)
    with torch.no_grad():
        for param in attn.parameters():
            param.normal_(0, 0.3)
    return attn


def naive_cross_domain(attn, tokens):
    """Spec §3.3: sample i and sample i + B/2 both attend over [tokens_i ; tokens_(i+B/2)]."""
    query, key, value = attn.to_q(tokens), attn.to_k(tokens), attn.to_v(tokens)
    batch, _, channels = query.shape
    half, width = batch // 2, channels // attn.heads
    out = torch.empty_like(query)
    for b in range(batch):
        pair = b % half
        keys, values = torch.cat([key[pair], key[pair + half]]), torch.cat([value[pair], value[pair + half]])
        for h in range(attn.heads):
            cols = slice(h * width, (h + 1) * width)
            out[b, :, cols] = softmax_attention(query[b, :, cols], keys[:, cols], values[:, cols], width**-0.5)
    return attn.to_out[0](out)


def naive_multiview(attn, tokens, views, sparse=False):
    """Spec §3.2 written out per view."""
    query, key, value = attn.to_q(tokens), attn.to_k(tokens), attn.to_v(tokens)
    batch, _, channels = query.shape
    width = channels // attn.heads
    out = torch.empty_like(query)
    for b in range(batch):
        first = b - b % views
        members = [first, b] if sparse else range(first, first + views)
        keys, values = torch.cat([key[m] for m in members]), torch.cat([value[m] for m in members])
        for h in range(attn.heads):
            cols = slice(h * width, (h + 1) * width)
            out[b, :, cols] = softmax_attention(query[b, :, cols], keys[:, cols], values[:, cols], width**-0.5)
    return attn.to_out[0](out)


def test_cross_domain_attention_pairs_the_two_batch_halves():
    attn = make_attention(processor=CrossDomainAttnProcessor(max_score_bytes=64))
    tokens = torch.randn(8, 5, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(attn(tokens), naive_cross_domain(attn, tokens), atol=ATOL, rtol=ATOL)
        with pytest.raises(ValueError, match="odd batch of 7"):
            attn(tokens[:7])


@pytest.mark.parametrize("sparse", [False, True])
def test_multiview_processor_follows_the_per_view_rule(sparse):
    attn = make_attention(processor=MultiviewAttnProcessor(4, sparse=sparse, max_score_bytes=256))
    tokens = torch.randn(8, 5, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(attn(tokens), naive_multiview(attn, tokens, 4, sparse), atol=ATOL, rtol=ATOL)


@pytest.mark.parametrize("tokens", [1, 3])
def test_image_cross_attention_is_softmax_attention_with_an_exact_one_token_shortcut(tokens):
    attn = make_attention(processor=ImageCrossAttnProcessor(), cross_attention_dim=6)
    generator = torch.Generator().manual_seed(6)
    hidden, context = torch.randn(4, 5, 16, generator=generator), torch.randn(4, tokens, 6, generator=generator)
    with torch.no_grad():
        query, key, value = attn.to_q(hidden), attn.to_k(context), attn.to_v(context)
        out = torch.empty_like(query)
        for h in range(2):
            cols = slice(8 * h, 8 * (h + 1))
            out[..., cols] = softmax_attention(query[..., cols], key[..., cols], value[..., cols], 8**-0.5)
        torch.testing.assert_close(attn(hidden, encoder_hidden_states=context), attn.to_out[0](out), atol=ATOL, rtol=ATOL)


def test_geglu_feed_forward_equals_diffusers_with_the_same_parameters():
    from diffusers.models.attention import FeedForward

    torch.manual_seed(7)
    ours, theirs = GEGLUFeedForward(16), FeedForward(16, activation_fn="geglu")
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    theirs.load_state_dict(ours.state_dict())
    tokens = torch.randn(3, 5, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens), theirs(tokens), atol=ATOL, rtol=ATOL)


def test_transformer_layer_runs_in_wonder3d_order():
    """attn1 (multiview) -> joint mid -> attn2 (CLIP) -> feed-forward -> joint last, each pre-norm + residual."""
    settings = MultiviewSettings(num_views=3, multiview_attention=True, cd_attention_mid=True, cd_attention_last=True)
    torch.manual_seed(4)
    block = BasicMVTransformerBlock(16, 2, 8, multiview=settings, cross_attention_dim=6).eval()
    with torch.no_grad():
        for name, param in block.named_parameters():
            param.copy_(1 + 0.1 * torch.randn_like(param) if "norm" in name else 0.3 * torch.randn_like(param))
    names = [name for name, _ in block.named_children()]
    assert names == ["norm1", "attn1", "norm2", "attn2", "norm3", "ff", "attn_joint_last", "norm_joint_last",
                     "attn_joint_mid", "norm_joint_mid"]
    generator = torch.Generator().manual_seed(5)
    tokens, clip = torch.randn(6, 4, 16, generator=generator), torch.randn(6, 1, 6, generator=generator)
    with torch.no_grad():
        x = tokens + naive_multiview(block.attn1, block.norm1(tokens), 3)
        x = x + naive_cross_domain(block.attn_joint_mid, block.norm_joint_mid(x))
        x = x + block.attn2.to_out[0](block.attn2.to_v(clip)).expand_as(x)  # one key token: softmax is exactly 1
        x = x + block.ff(block.norm3(x))
        x = x + naive_cross_domain(block.attn_joint_last, block.norm_joint_last(x))
        torch.testing.assert_close(block(tokens, clip), x, atol=ATOL, rtol=ATOL)
