"""Multiview and cross-domain attention of the Wonder3D UNet, as weight-free processors.

Data form: token tensors ``(batch, tokens, channels)`` as diffusers'
:class:`~diffusers.models.attention_processor.Attention` hands them to its processor. The
batch is laid out the way Wonder3D's pipeline builds it: consecutive groups of
``num_views`` samples are the views of one object in one domain (front, front_right,
right, back, left, front_left), and the second half of the batch is the other domain,
aligned sample by sample with the first half (normals first, colours second).

Both attentions reduce to plain softmax attention over a rearranged batch, so the
keys and values are never repeated per view (the original Wonder3D repeats them, which
needs ~2.4 GB per layer at 32×32 latents): every view of a group attends to the same
keys, so the group's queries are simply stacked into one sequence. The softmax itself
is :func:`torch.nn.functional.scaled_dot_product_attention` (fused kernels on CPU and
CUDA, fp16/bf16 on CUDA, no xformers) called on pieces — samples, heads, then query
chunks — small enough that a full score tensor is never materialised, whichever kernel
torch picks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention

__all__ = [
    "DEFAULT_MAX_SCORE_BYTES",
    "chunked_attention",
    "MultiviewAttnProcessor",
    "CrossDomainAttnProcessor",
    "ImageCrossAttnProcessor",
]

#: Upper bound of the attention-score memory of one SDPA call (batch × heads × query
#: rows × keys × element size); larger problems are split into several calls.
DEFAULT_MAX_SCORE_BYTES = 256 * 2**20

# Query chunks are kept multiples of this many rows: the CPU flash kernel works in
# query blocks of this size, so ragged chunks would waste part of a block.
_ROW_ALIGN = 128


def chunked_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *,
    scale: float,
    max_score_bytes: int = DEFAULT_MAX_SCORE_BYTES,
) -> torch.Tensor:
    """``softmax(query · keyᵀ · scale) · value``, split so no call exceeds ``max_score_bytes`` of scores.

    The problem is split along the batch, then the heads (slices that stay contiguous),
    and only when one head of one sample is still too large, along the query rows.

    Parameters
    ----------
    query : (batch, heads, queries, head_dim) tensor
    key, value : (batch, heads, keys, head_dim) tensor
    scale : float
        Multiplier of the dot products (``head_dim ** -0.5`` for standard attention).
    max_score_bytes : int
        Score memory allowed per call (at least one query row per call).

    Returns
    -------
    (batch, heads, queries, head_dim) tensor
        Same dtype and device as ``query``.
    """
    batch, heads, n_queries, _ = query.shape
    head_bytes = n_queries * key.shape[2] * query.element_size()  # scores of one head of one sample
    if batch * heads * head_bytes <= max_score_bytes:
        return F.scaled_dot_product_attention(query, key, value, scale=scale)
    out = query.new_empty(batch, heads, n_queries, value.shape[-1])
    if heads * head_bytes <= max_score_bytes:
        step = max_score_bytes // (heads * head_bytes)
        for b0 in range(0, batch, step):
            part = slice(b0, b0 + step)
            out[part] = F.scaled_dot_product_attention(query[part], key[part], value[part], scale=scale)
        return out
    if head_bytes <= max_score_bytes:
        step = max_score_bytes // head_bytes
        for b in range(batch):
            for h0 in range(0, heads, step):
                part = (slice(b, b + 1), slice(h0, h0 + step))
                out[part] = F.scaled_dot_product_attention(query[part], key[part], value[part], scale=scale)
        return out
    rows = max(1, max_score_bytes // (head_bytes // n_queries))
    rows = rows if rows < _ROW_ALIGN else rows - rows % _ROW_ALIGN
    for b in range(batch):
        for h in range(heads):
            k, v = key[b : b + 1, h : h + 1], value[b : b + 1, h : h + 1]
            for r0 in range(0, n_queries, rows):
                part = (slice(b, b + 1), slice(h, h + 1), slice(r0, r0 + rows))
                out[part] = F.scaled_dot_product_attention(query[part], k, v, scale=scale)
    return out


# Layout helpers: tokens (batch, tokens, heads·dim) <-> heads (batch', heads, tokens', dim), one copy each way.
def _heads_grouped(tokens: torch.Tensor, heads: int, size: int) -> torch.Tensor:
    """Consecutive groups of ``size`` samples, each stacked into one sequence (view order)."""
    batch, length, inner = tokens.shape
    grouped = tokens.view(batch // size, size, length, heads, inner // heads).permute(0, 3, 1, 2, 4)
    return grouped.reshape(batch // size, heads, size * length, inner // heads)


def _tokens_grouped(attended: torch.Tensor, size: int) -> torch.Tensor:
    """Inverse of :func:`_heads_grouped`."""
    groups, heads, length, dim = attended.shape
    split = attended.view(groups, heads, size, length // size, dim).permute(0, 2, 3, 1, 4)
    return split.reshape(groups * size, length // size, heads * dim)


def _heads_paired(tokens: torch.Tensor, heads: int) -> torch.Tensor:
    """Sample ``i`` and sample ``i + batch/2`` stacked into one sequence (first half first)."""
    batch, length, inner = tokens.shape
    paired = tokens.view(2, batch // 2, length, heads, inner // heads).permute(1, 3, 0, 2, 4)
    return paired.reshape(batch // 2, heads, 2 * length, inner // heads)


def _tokens_paired(attended: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_heads_paired`."""
    half, heads, length, dim = attended.shape
    split = attended.view(half, heads, 2, length // 2, dim).permute(2, 0, 3, 1, 4)
    return split.reshape(2 * half, length // 2, heads * dim)


def _project_out(attn: Attention, hidden_states: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
    out = attn.to_out[1](attn.to_out[0](attended))
    if attn.residual_connection:
        out = out + hidden_states
    if attn.rescale_output_factor != 1.0:
        out = out / attn.rescale_output_factor
    return out


def _check_tokens(hidden_states: torch.Tensor, attention_mask, name: str) -> None:
    if hidden_states.ndim != 3:
        raise ValueError(f"{name} expects tokens (batch, tokens, channels), got shape {tuple(hidden_states.shape)}")
    if attention_mask is not None:
        raise ValueError(f"{name} does not support attention masks (Wonder3D never uses them)")


def _context(attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None):
    if encoder_hidden_states is None:
        return hidden_states
    return attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross else encoder_hidden_states


class MultiviewAttnProcessor:
    """Self-attention in which each view attends to the tokens of the other views of its object.

    Dense (Wonder3D v1.0): the keys/values of view ``j`` are the tokens of all
    ``num_views`` views of its group, concatenated in view order. Sparse
    (``sparse=True``): the tokens of the group's front view followed by the view's own
    tokens. ``multiview=False`` or ``num_views == 1`` gives plain self-attention.
    When the layer is a cross-attention (``only_cross_attention``), the same grouping
    applies to the encoder tokens.

    Parameters
    ----------
    num_views : int
        Views per object; the batch must be a multiple of it.
    multiview : bool
        Whether views see each other at all.
    sparse : bool
        Front view + own view instead of all views.
    max_score_bytes : int
        See :func:`chunked_attention`.
    """

    def __init__(
        self,
        num_views: int,
        *,
        multiview: bool = True,
        sparse: bool = False,
        max_score_bytes: int = DEFAULT_MAX_SCORE_BYTES,
    ):
        if num_views < 1:
            raise ValueError(f"num_views must be at least 1, got {num_views}")
        self.num_views = int(num_views)
        self.multiview = bool(multiview)
        self.sparse = bool(sparse)
        self.max_score_bytes = int(max_score_bytes)

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_tokens(hidden_states, attention_mask, "MultiviewAttnProcessor")
        context = _context(attn, hidden_states, encoder_hidden_states)
        query, key, value = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
        batch, n_queries, heads, views = query.shape[0], query.shape[1], attn.heads, self.num_views
        if not self.multiview or views == 1:
            views = 1
        elif batch % views:
            raise ValueError(
                f"multiview attention needs the batch to be whole groups of {views} views, got a batch of {batch}"
            )
        if self.sparse and views > 1:
            # Keys of view j: [front view of its group ; view j itself].
            def with_front(tokens: torch.Tensor) -> torch.Tensor:
                grouped = tokens.view(batch // views, views, *tokens.shape[1:])
                front = grouped[:, :1].expand_as(grouped).reshape(tokens.shape)
                return _heads_grouped(torch.cat([front, tokens], dim=1), heads, 1)

            attended = chunked_attention(
                _heads_grouped(query, heads, 1), with_front(key), with_front(value),
                scale=attn.scale, max_score_bytes=self.max_score_bytes,
            )
            return _project_out(attn, hidden_states, _tokens_grouped(attended, 1))
        # Dense: every view of a group attends over the same keys (all views' tokens, view order),
        # which is attention over the group's queries stacked into one sequence.
        attended = chunked_attention(
            _heads_grouped(query, heads, views), _heads_grouped(key, heads, views), _heads_grouped(value, heads, views),
            scale=attn.scale, max_score_bytes=self.max_score_bytes,
        )
        return _project_out(attn, hidden_states, _tokens_grouped(attended, views))


class CrossDomainAttnProcessor:
    """Joint attention between the two domains: sample ``i`` of the first batch half with sample ``i`` of the second.

    Both samples of a pair (the normal map and the colour image of the same view, same
    guidance branch) attend over ``[tokens of the first-half sample ; tokens of the
    second-half sample]``. There is no mixing between views here.

    Parameters
    ----------
    max_score_bytes : int
        See :func:`chunked_attention`.
    """

    def __init__(self, *, max_score_bytes: int = DEFAULT_MAX_SCORE_BYTES):
        self.max_score_bytes = int(max_score_bytes)

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_tokens(hidden_states, attention_mask, "CrossDomainAttnProcessor")
        if encoder_hidden_states is not None:
            raise ValueError("cross-domain attention attends within the batch; it takes no encoder_hidden_states")
        batch = hidden_states.shape[0]
        if batch % 2:
            raise ValueError(
                f"cross-domain attention pairs the two halves of the batch (normals, colours); got an odd batch of {batch}"
            )
        query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        attended = chunked_attention(
            _heads_paired(query, attn.heads), _heads_paired(key, attn.heads), _heads_paired(value, attn.heads),
            scale=attn.scale, max_score_bytes=self.max_score_bytes,
        )
        return _project_out(attn, hidden_states, _tokens_paired(attended))


class ImageCrossAttnProcessor:
    """Cross-attention to the encoder tokens (the CLIP image embedding), with a shortcut for one token.

    With a single key token the softmax is exactly 1, so every query receives that token's
    value: the output is ``to_out(to_v(token))`` for all tokens, and the query projection and
    the attention itself are skipped (bit-for-bit the same maths, less work). With more
    encoder tokens it is plain softmax attention.

    Parameters
    ----------
    max_score_bytes : int
        See :func:`chunked_attention`.
    """

    def __init__(self, *, max_score_bytes: int = DEFAULT_MAX_SCORE_BYTES):
        self.max_score_bytes = int(max_score_bytes)

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_tokens(hidden_states, attention_mask, "ImageCrossAttnProcessor")
        context = _context(attn, hidden_states, encoder_hidden_states)
        if context.shape[1] == 1 and not attn.residual_connection:
            return _project_out(attn, hidden_states, attn.to_v(context)).expand(-1, hidden_states.shape[1], -1)
        heads = attn.heads
        attended = chunked_attention(
            _heads_grouped(attn.to_q(hidden_states), heads, 1), _heads_grouped(attn.to_k(context), heads, 1),
            _heads_grouped(attn.to_v(context), heads, 1), scale=attn.scale, max_score_bytes=self.max_score_bytes,
        )
        return _project_out(attn, hidden_states, _tokens_grouped(attended, 1))
