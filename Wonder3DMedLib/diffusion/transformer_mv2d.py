# Adapted from diffusers 0.19.3 src/diffusers/models/transformer_2d.py + attention.py (the version Wonder3D builds on):
# Transformer2DModel, BasicTransformerBlock.
# Copyright 2023 The HuggingFace Team, Apache License 2.0 (http://www.apache.org/licenses/LICENSE-2.0),
# the licence of this project too.
"""The spatial transformer of Wonder3D's MV2D blocks: multiview self-attention, cross-domain
attention, cross-attention to the CLIP image embedding and a GEGLU feed-forward.

Data form: feature maps ``(batch, channels, height, width)`` in, same shape out; inside,
tokens ``(batch, height·width, channels)`` in row-major ``(h, w)`` order. The batch layout
is the one described in :mod:`Wonder3DMedLib.diffusion.attention`.

Module and parameter names equal Wonder3D's (``norm``, ``proj_in``,
``transformer_blocks.N.{norm1, attn1, norm2, attn2, norm3, ff, attn_joint_mid,
norm_joint_mid, attn_joint_last, norm_joint_last}``, ``proj_out``), so its checkpoints load
unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.activations import GEGLU
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import nn

from Wonder3DMedLib.diffusion.attention import CrossDomainAttnProcessor, ImageCrossAttnProcessor, MultiviewAttnProcessor

__all__ = ["MultiviewSettings", "GEGLUFeedForward", "BasicMVTransformerBlock", "TransformerMV2DModel"]


@dataclass(frozen=True)
class MultiviewSettings:
    """The Wonder3D-specific switches of the UNet config, passed down to every MV2D block.

    Attributes
    ----------
    num_views : int
        Views per object (6 in Wonder3D v1.0).
    multiview_attention : bool
        Self-attention across the views of an object.
    sparse_mv_attention : bool
        Each view attends to the front view and itself only.
    cd_attention_mid : bool
        Cross-domain attention between self- and cross-attention (``attn_joint_mid``).
    cd_attention_last : bool
        Cross-domain attention after the feed-forward (``attn_joint_last``).
    """

    num_views: int = 1
    multiview_attention: bool = True
    sparse_mv_attention: bool = False
    cd_attention_mid: bool = False
    cd_attention_last: bool = False


class GEGLUFeedForward(FeedForward):
    """diffusers' GEGLU ``FeedForward`` (same modules and parameters) computed with less memory traffic.

    ``value · GELU(gate)`` as in diffusers' ``GEGLU`` (exact erf GELU), but the value and gate
    halves of the projection are two matrix products written straight into separate
    tensors and multiplied in place, instead of one product split and copied; about a
    quarter less time and one large temporary fewer per layer.
    """

    def __init__(self, dim: int, *, dropout: float = 0.0):
        super().__init__(dim, dropout=dropout, activation_fn="geglu", final_dropout=False)
        if not isinstance(self.net[0], GEGLU):
            raise TypeError(f"expected diffusers' GEGLU as the first layer, got {type(self.net[0]).__name__}")

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        proj = self.net[0].proj
        inner = proj.out_features // 2
        bias = (None, None) if proj.bias is None else (proj.bias[:inner], proj.bias[inner:])
        value = F.linear(hidden_states, proj.weight[:inner], bias[0])
        value = value.mul_(F.gelu(F.linear(hidden_states, proj.weight[inner:], bias[1])))
        for module in self.net[1:]:
            value = module(value)
        return value


class BasicMVTransformerBlock(nn.Module):
    """One transformer layer, in Wonder3D's execution order (pre-norm, residual after each step).

    1. ``norm1`` → ``attn1`` multiview self-attention;
    2. ``norm_joint_mid`` → ``attn_joint_mid`` cross-domain attention (if ``cd_attention_mid``);
    3. ``norm2`` → ``attn2`` cross-attention to ``encoder_hidden_states`` (if ``cross_attention_dim``);
    4. ``norm3`` → ``ff`` feed-forward (GEGLU by default, :class:`GEGLUFeedForward`);
    5. ``norm_joint_last`` → ``attn_joint_last`` cross-domain attention (if ``cd_attention_last``).

    All LayerNorms use eps 1e-5. Attention layers have no q/k/v bias unless
    ``attention_bias``; their output projection always has one.
    """

    def __init__(
        self,
        dim: int,
        num_attention_heads: int,
        attention_head_dim: int,
        *,
        multiview: MultiviewSettings,
        dropout: float = 0.0,
        cross_attention_dim: int | None = None,
        activation_fn: str = "geglu",
        attention_bias: bool = False,
        only_cross_attention: bool = False,
        upcast_attention: bool = False,
        norm_elementwise_affine: bool = True,
    ):
        super().__init__()
        if only_cross_attention and (multiview.cd_attention_mid or multiview.cd_attention_last):
            raise ValueError(
                "only_cross_attention cannot be combined with cd_attention_mid/cd_attention_last: the cross-domain "
                "attention attends within the batch (Wonder3D's own code fails on this combination too)"
            )
        self.only_cross_attention = only_cross_attention
        attention = dict(
            query_dim=dim, heads=num_attention_heads, dim_head=attention_head_dim, dropout=dropout,
            bias=attention_bias, upcast_attention=upcast_attention,
        )
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=norm_elementwise_affine)
        self.attn1 = Attention(
            cross_attention_dim=cross_attention_dim if only_cross_attention else None,
            processor=MultiviewAttnProcessor(
                multiview.num_views, multiview=multiview.multiview_attention, sparse=multiview.sparse_mv_attention
            ),
            **attention,
        )
        if cross_attention_dim is not None:
            self.norm2 = nn.LayerNorm(dim, elementwise_affine=norm_elementwise_affine)
            self.attn2 = Attention(
                cross_attention_dim=cross_attention_dim, processor=ImageCrossAttnProcessor(), **attention
            )
        else:
            self.norm2 = None
            self.attn2 = None
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=norm_elementwise_affine)
        if activation_fn == "geglu":
            self.ff = GEGLUFeedForward(dim, dropout=dropout)
        else:
            self.ff = FeedForward(dim, dropout=dropout, activation_fn=activation_fn, final_dropout=False)
        # Registration order (last before mid) is Wonder3D's; it fixes the state_dict order.
        if multiview.cd_attention_last:
            self.attn_joint_last = Attention(processor=CrossDomainAttnProcessor(), **attention)
            self.norm_joint_last = nn.LayerNorm(dim)
        else:
            self.attn_joint_last = self.norm_joint_last = None
        if multiview.cd_attention_mid:
            self.attn_joint_mid = Attention(processor=CrossDomainAttnProcessor(), **attention)
            self.norm_joint_mid = nn.LayerNorm(dim)
        else:
            self.attn_joint_mid = self.norm_joint_mid = None

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens ``(batch, tokens, dim)`` -> same shape."""
        context = encoder_hidden_states if self.only_cross_attention else None
        hidden_states = self.attn1(self.norm1(hidden_states), encoder_hidden_states=context) + hidden_states
        if self.attn_joint_mid is not None:
            hidden_states = self.attn_joint_mid(self.norm_joint_mid(hidden_states)) + hidden_states
        if self.attn2 is not None:
            hidden_states = self.attn2(self.norm2(hidden_states), encoder_hidden_states=encoder_hidden_states) + hidden_states
        hidden_states = self.ff(self.norm3(hidden_states)) + hidden_states
        if self.attn_joint_last is not None:
            hidden_states = self.attn_joint_last(self.norm_joint_last(hidden_states)) + hidden_states
        return hidden_states


class TransformerMV2DModel(nn.Module):
    """Feature map -> GroupNorm(eps 1e-6) -> ``proj_in`` -> MV transformer layers -> ``proj_out`` -> + input.

    Parameters
    ----------
    num_attention_heads, attention_head_dim : int
        Heads and channels per head; ``heads · head_dim`` is the token width.
    in_channels : int
        Channels of the feature map.
    multiview : MultiviewSettings
    num_layers : int
        Number of :class:`BasicMVTransformerBlock`.
    norm_num_groups : int
        Groups of the input GroupNorm.
    use_linear_projection : bool
        ``proj_in``/``proj_out`` as Linear on tokens instead of 1×1 convolutions.
    cross_attention_dim, dropout, attention_bias, activation_fn, only_cross_attention, upcast_attention
        Passed to each layer.
    """

    def __init__(
        self,
        num_attention_heads: int,
        attention_head_dim: int,
        in_channels: int,
        *,
        multiview: MultiviewSettings,
        num_layers: int = 1,
        dropout: float = 0.0,
        norm_num_groups: int = 32,
        cross_attention_dim: int | None = None,
        attention_bias: bool = False,
        activation_fn: str = "geglu",
        use_linear_projection: bool = False,
        only_cross_attention: bool = False,
        upcast_attention: bool = False,
    ):
        super().__init__()
        inner_dim = num_attention_heads * attention_head_dim
        self.use_linear_projection = use_linear_projection
        self.norm = nn.GroupNorm(num_groups=norm_num_groups, num_channels=in_channels, eps=1e-6, affine=True)
        if use_linear_projection:
            self.proj_in = nn.Linear(in_channels, inner_dim)
        else:
            self.proj_in = nn.Conv2d(in_channels, inner_dim, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            BasicMVTransformerBlock(
                inner_dim,
                num_attention_heads,
                attention_head_dim,
                multiview=multiview,
                dropout=dropout,
                cross_attention_dim=cross_attention_dim,
                activation_fn=activation_fn,
                attention_bias=attention_bias,
                only_cross_attention=only_cross_attention,
                upcast_attention=upcast_attention,
            )
            for _ in range(num_layers)
        )
        if use_linear_projection:
            self.proj_out = nn.Linear(inner_dim, in_channels)
        else:
            self.proj_out = nn.Conv2d(inner_dim, in_channels, kernel_size=1)

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, channels, height, width)`` -> same shape."""
        batch, _, height, width = hidden_states.shape
        residual = hidden_states
        hidden_states = self.norm(hidden_states)
        if not self.use_linear_projection:
            hidden_states = self.proj_in(hidden_states)
        inner_dim = hidden_states.shape[1]
        hidden_states = hidden_states.permute(0, 2, 3, 1).reshape(batch, height * width, inner_dim)
        if self.use_linear_projection:
            hidden_states = self.proj_in(hidden_states)
        for block in self.transformer_blocks:
            hidden_states = block(hidden_states, encoder_hidden_states)
        if self.use_linear_projection:
            hidden_states = self.proj_out(hidden_states)
        hidden_states = hidden_states.reshape(batch, height, width, -1).permute(0, 3, 1, 2).contiguous()
        if not self.use_linear_projection:
            hidden_states = self.proj_out(hidden_states)
        return hidden_states + residual
