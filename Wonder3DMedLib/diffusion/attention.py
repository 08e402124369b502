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
CUDA, fp16/bf16 on CUDA, no xformers) called on query chunks small enough that a full
score tensor is never materialised, whichever kernel torch picks.
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
]

#: Upper bound of the attention-score memory of one SDPA call (batch × heads × query
#: rows × keys × element size); larger problems are split along the query axis.
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

    Parameters
    ----------
    query : (batch, heads, queries, head_dim) tensor
    key, value : (batch, heads, keys, head_dim) tensor
    scale : float
        Multiplier of the dot products (``head_dim ** -0.5`` for standard attention).
    max_score_bytes : int
        Score memory allowed per call; the query axis, and if needed the batch axis,
        is split to stay below it (at least one query row per call).

    Returns
    -------
    (batch, heads, queries, head_dim) tensor
        Same dtype and device as ``query``.
    """
    batch, heads, n_queries, _ = query.shape
    n_keys = key.shape[2]
    rows_per_call = max(1, max_score_bytes // (heads * n_keys * query.element_size()))
    if rows_per_call >= batch * n_queries:
        return F.scaled_dot_product_attention(query, key, value, scale=scale)
    if rows_per_call >= n_queries:
        batch_step, row_step = rows_per_call // n_queries, n_queries
    else:
        batch_step = 1
        row_step = rows_per_call if rows_per_call < _ROW_ALIGN else rows_per_call - rows_per_call % _ROW_ALIGN
    out = query.new_empty(batch, heads, n_queries, value.shape[-1])
    for b0 in range(0, batch, batch_step):
        b1 = min(b0 + batch_step, batch)
        k, v = key[b0:b1], value[b0:b1]
        for r0 in range(0, n_queries, row_step):
            r1 = min(r0 + row_step, n_queries)
            q = query[b0:b1, :, r0:r1].contiguous()
            out[b0:b1, :, r0:r1] = F.scaled_dot_product_attention(q, k, v, scale=scale)
    return out


def _split_heads(tokens: torch.Tensor, heads: int) -> torch.Tensor:
    """(batch, tokens, heads·dim) -> contiguous (batch, heads, tokens, dim); fused kernels prefer contiguous heads."""
    batch, length, inner = tokens.shape
    return tokens.view(batch, length, heads, inner // heads).transpose(1, 2).contiguous()


def _merge_heads(tokens: torch.Tensor) -> torch.Tensor:
    """(batch, heads, tokens, dim) -> (batch, tokens, heads·dim)."""
    batch, heads, length, dim = tokens.shape
    return tokens.transpose(1, 2).reshape(batch, length, heads * dim)


def _attend(attn: Attention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, max_score_bytes: int):
    heads = attn.heads
    out = chunked_attention(
        _split_heads(query, heads),
        _split_heads(key, heads),
        _split_heads(value, heads),
        scale=attn.scale,
        max_score_bytes=max_score_bytes,
    )
    return _merge_heads(out)


def _project_out(attn: Attention, hidden_states: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
    out = attn.to_out[1](attn.to_out[0](attended))
    if attn.residual_connection:
        out = out + hidden_states
    return out / attn.rescale_output_factor


def _check_tokens(hidden_states: torch.Tensor, attention_mask, name: str) -> None:
    if hidden_states.ndim != 3:
        raise ValueError(f"{name} expects tokens (batch, tokens, channels), got shape {tuple(hidden_states.shape)}")
    if attention_mask is not None:
        raise ValueError(f"{name} does not support attention masks (Wonder3D never uses them)")


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
        if encoder_hidden_states is None:
            context = hidden_states
        else:
            context = attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross else encoder_hidden_states
        query, key, value = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
        batch, n_queries, channels = query.shape
        views = self.num_views
        if not self.multiview or views == 1:
            return _project_out(attn, hidden_states, _attend(attn, query, key, value, self.max_score_bytes))
        if batch % views:
            raise ValueError(
                f"multiview attention needs the batch to be whole groups of {views} views, got a batch of {batch}"
            )
        groups, n_keys = batch // views, key.shape[1]
        if self.sparse:
            # Keys of view j: [front view of its group ; view j itself].
            def with_front(tokens: torch.Tensor) -> torch.Tensor:
                grouped = tokens.view(groups, views, n_keys, tokens.shape[-1])
                front = grouped[:, :1].expand(-1, views, -1, -1).reshape(batch, n_keys, tokens.shape[-1])
                return torch.cat([front, tokens], dim=1)

            attended = _attend(attn, query, with_front(key), with_front(value), self.max_score_bytes)
        else:
            # Every view of a group attends over the same keys (all views' tokens, view order),
            # which is attention over the group's queries stacked into one sequence.
            attended = _attend(
                attn,
                query.reshape(groups, views * n_queries, channels),
                key.reshape(groups, views * n_keys, key.shape[-1]),
                value.reshape(groups, views * n_keys, value.shape[-1]),
                self.max_score_bytes,
            ).reshape(batch, n_queries, -1)
        return _project_out(attn, hidden_states, attended)


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
        batch, n_tokens, _ = hidden_states.shape
        if batch % 2:
            raise ValueError(
                f"cross-domain attention pairs the two halves of the batch (normals, colours); got an odd batch of {batch}"
            )
        half = batch // 2

        def paired(tokens: torch.Tensor) -> torch.Tensor:
            return torch.cat([tokens[:half], tokens[half:]], dim=1)

        query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        attended = _attend(attn, paired(query), paired(key), paired(value), self.max_score_bytes)
        attended = torch.cat([attended[:, :n_tokens], attended[:, n_tokens:]], dim=0)
        return _project_out(attn, hidden_states, attended)
