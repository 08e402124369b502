# Adapted from diffusers 0.19.3 src/diffusers/models/unet_2d_blocks.py (the version Wonder3D builds on):
# CrossAttnDownBlock2D, UNetMidBlock2DCrossAttn, CrossAttnUpBlock2D.
# Copyright 2023 The HuggingFace Team, Apache License 2.0 (http://www.apache.org/licenses/LICENSE-2.0),
# the licence of this project too.
"""Down, mid and up blocks of the Wonder3D UNet (MV2D = SD cross-attention blocks whose
transformer is the multiview one), and the factories that pick a block by its config name.

Data form: feature maps ``(batch, channels, height, width)``; ``temb`` ``(batch,
temb_channels)``; ``encoder_hidden_states`` ``(batch, tokens, cross_attention_dim)``.

Block names other than the three MV2D ones (``DownBlock2D``, ``CrossAttnDownBlock2D``,
``UpBlock2D``, ``UNetMidBlock2DCrossAttn``...) are diffusers' own blocks, built with the
arguments Wonder3D's UNet gives them. Resnets, down- and upsamplers are diffusers'
``ResnetBlock2D``, ``Downsample2D`` and ``Upsample2D``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D
from diffusers.models.unets import unet_2d_blocks
from torch import nn

from Wonder3DMedLib.diffusion.transformer_mv2d import MultiviewSettings, TransformerMV2DModel

__all__ = [
    "MV_DOWN_BLOCK",
    "MV_MID_BLOCK",
    "MV_UP_BLOCK",
    "BlockSettings",
    "CrossAttnDownBlockMV2D",
    "UNetMidBlockMV2DCrossAttn",
    "CrossAttnUpBlockMV2D",
    "get_down_block",
    "get_mid_block",
    "get_up_block",
]

MV_DOWN_BLOCK = "CrossAttnDownBlockMV2D"
MV_MID_BLOCK = "UNetMidBlockMV2DCrossAttn"
MV_UP_BLOCK = "CrossAttnUpBlockMV2D"


@dataclass(frozen=True)
class BlockSettings:
    """Settings every block of one UNet shares (from its config).

    Attributes
    ----------
    temb_channels : int
        Width of the time(+class) embedding.
    resnet_eps : float
        GroupNorm eps of the resnets (``norm_eps``).
    resnet_act_fn : str
        Activation of the resnets (``act_fn``).
    resnet_groups : int or None
        GroupNorm groups (``norm_num_groups``).
    resnet_time_scale_shift : str
        How resnets use the embedding (``default`` adds it).
    use_linear_projection, upcast_attention, dual_cross_attention : bool
    resnet_skip_time_act : bool
    resnet_out_scale_factor : float
    cross_attention_norm : str or None
        Only used by diffusers' simple cross-attention blocks.
    multiview : MultiviewSettings
    """

    temb_channels: int
    resnet_eps: float
    resnet_act_fn: str
    resnet_groups: int | None
    resnet_time_scale_shift: str
    use_linear_projection: bool
    upcast_attention: bool
    dual_cross_attention: bool
    resnet_skip_time_act: bool
    resnet_out_scale_factor: float
    cross_attention_norm: str | None
    multiview: MultiviewSettings


def _resnet(settings: BlockSettings, in_channels: int, out_channels: int, output_scale_factor: float = 1.0):
    return ResnetBlock2D(
        in_channels=in_channels,
        out_channels=out_channels,
        temb_channels=settings.temb_channels,
        eps=settings.resnet_eps,
        groups=settings.resnet_groups,
        dropout=0.0,
        time_embedding_norm=settings.resnet_time_scale_shift,
        non_linearity=settings.resnet_act_fn,
        output_scale_factor=output_scale_factor,
        pre_norm=True,
    )


def _transformer(settings, channels, num_attention_heads, layers, cross_attention_dim, only_cross_attention=False):
    if settings.dual_cross_attention:
        raise ValueError("dual_cross_attention is not available in MV2D blocks (nor in Wonder3D's code)")
    return TransformerMV2DModel(
        num_attention_heads,
        channels // num_attention_heads,
        channels,
        multiview=settings.multiview,
        num_layers=layers,
        cross_attention_dim=cross_attention_dim,
        norm_num_groups=settings.resnet_groups,
        use_linear_projection=settings.use_linear_projection,
        only_cross_attention=only_cross_attention,
        upcast_attention=settings.upcast_attention,
    )


class CrossAttnDownBlockMV2D(nn.Module):
    """``num_layers`` × (resnet → MV transformer), then an optional stride-2 conv downsampler."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        settings: BlockSettings,
        num_layers: int,
        transformer_layers_per_block: int,
        num_attention_heads: int,
        cross_attention_dim: int,
        add_downsample: bool,
        downsample_padding: int,
        only_cross_attention: bool,
    ):
        super().__init__()
        self.has_cross_attention = True
        attentions, resnets = [], []
        for i in range(num_layers):
            resnets.append(_resnet(settings, in_channels if i == 0 else out_channels, out_channels))
            attentions.append(
                _transformer(
                    settings, out_channels, num_attention_heads, transformer_layers_per_block,
                    cross_attention_dim, only_cross_attention,
                )
            )
        self.attentions = nn.ModuleList(attentions)
        self.resnets = nn.ModuleList(resnets)
        if add_downsample:
            self.downsamplers = nn.ModuleList(
                [Downsample2D(out_channels, use_conv=True, out_channels=out_channels, padding=downsample_padding, name="op")]
            )
        else:
            self.downsamplers = None

    def forward(self, hidden_states, temb=None, encoder_hidden_states=None):
        """Returns the output and the skip tensors for the up path (one per layer, plus the downsampled one)."""
        output_states = ()
        for resnet, attention in zip(self.resnets, self.attentions):
            hidden_states = attention(resnet(hidden_states, temb), encoder_hidden_states)
            output_states += (hidden_states,)
        if self.downsamplers is not None:
            for downsampler in self.downsamplers:
                hidden_states = downsampler(hidden_states)
            output_states += (hidden_states,)
        return hidden_states, output_states


class UNetMidBlockMV2DCrossAttn(nn.Module):
    """resnet → (MV transformer → resnet) × ``num_layers``; Wonder3D's UNet uses one layer."""

    def __init__(
        self,
        in_channels: int,
        *,
        settings: BlockSettings,
        transformer_layers_per_block: int,
        num_attention_heads: int,
        cross_attention_dim: int,
        output_scale_factor: float,
        num_layers: int = 1,
    ):
        super().__init__()
        self.has_cross_attention = True
        resnets = [_resnet(settings, in_channels, in_channels, output_scale_factor)]
        attentions = []
        for _ in range(num_layers):
            attentions.append(
                _transformer(settings, in_channels, num_attention_heads, transformer_layers_per_block, cross_attention_dim)
            )
            resnets.append(_resnet(settings, in_channels, in_channels, output_scale_factor))
        self.attentions = nn.ModuleList(attentions)
        self.resnets = nn.ModuleList(resnets)

    def forward(self, hidden_states, temb=None, encoder_hidden_states=None):
        hidden_states = self.resnets[0](hidden_states, temb)
        for attention, resnet in zip(self.attentions, self.resnets[1:]):
            hidden_states = resnet(attention(hidden_states, encoder_hidden_states), temb)
        return hidden_states


class CrossAttnUpBlockMV2D(nn.Module):
    """``num_layers`` × (concat skip → resnet → MV transformer), then an optional nearest×2 + conv upsampler."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        prev_output_channel: int,
        *,
        settings: BlockSettings,
        num_layers: int,
        transformer_layers_per_block: int,
        num_attention_heads: int,
        cross_attention_dim: int,
        add_upsample: bool,
        only_cross_attention: bool,
    ):
        super().__init__()
        self.has_cross_attention = True
        attentions, resnets = [], []
        for i in range(num_layers):
            skip_channels = in_channels if i == num_layers - 1 else out_channels
            resnet_in_channels = prev_output_channel if i == 0 else out_channels
            resnets.append(_resnet(settings, resnet_in_channels + skip_channels, out_channels))
            attentions.append(
                _transformer(
                    settings, out_channels, num_attention_heads, transformer_layers_per_block,
                    cross_attention_dim, only_cross_attention,
                )
            )
        self.attentions = nn.ModuleList(attentions)
        self.resnets = nn.ModuleList(resnets)
        if add_upsample:
            self.upsamplers = nn.ModuleList([Upsample2D(out_channels, use_conv=True, out_channels=out_channels)])
        else:
            self.upsamplers = None

    def forward(self, hidden_states, res_hidden_states_tuple, temb=None, encoder_hidden_states=None, upsample_size=None):
        for resnet, attention in zip(self.resnets, self.attentions):
            skip, res_hidden_states_tuple = res_hidden_states_tuple[-1], res_hidden_states_tuple[:-1]
            hidden_states = resnet(torch.cat([hidden_states, skip], dim=1), temb)
            hidden_states = attention(hidden_states, encoder_hidden_states)
        if self.upsamplers is not None:
            for upsampler in self.upsamplers:
                hidden_states = upsampler(hidden_states, upsample_size)
        return hidden_states


def _strip_res_prefix(block_type: str) -> str:
    return block_type[7:] if block_type.startswith("UNetRes") else block_type


def get_down_block(
    block_type: str,
    *,
    settings: BlockSettings,
    num_layers: int,
    transformer_layers_per_block: int,
    in_channels: int,
    out_channels: int,
    add_downsample: bool,
    num_attention_heads: int,
    attention_head_dim: int,
    cross_attention_dim: int,
    downsample_padding: int,
    only_cross_attention: bool,
) -> nn.Module:
    """The down block named ``block_type`` (an MV2D block, or any block diffusers knows)."""
    if _strip_res_prefix(block_type) == MV_DOWN_BLOCK:
        return CrossAttnDownBlockMV2D(
            in_channels, out_channels, settings=settings, num_layers=num_layers,
            transformer_layers_per_block=transformer_layers_per_block, num_attention_heads=num_attention_heads,
            cross_attention_dim=cross_attention_dim, add_downsample=add_downsample,
            downsample_padding=downsample_padding, only_cross_attention=only_cross_attention,
        )
    return unet_2d_blocks.get_down_block(
        block_type,
        num_layers=num_layers,
        in_channels=in_channels,
        out_channels=out_channels,
        temb_channels=settings.temb_channels,
        add_downsample=add_downsample,
        resnet_eps=settings.resnet_eps,
        resnet_act_fn=settings.resnet_act_fn,
        transformer_layers_per_block=transformer_layers_per_block,
        num_attention_heads=num_attention_heads,
        resnet_groups=settings.resnet_groups,
        cross_attention_dim=cross_attention_dim,
        downsample_padding=downsample_padding,
        dual_cross_attention=settings.dual_cross_attention,
        use_linear_projection=settings.use_linear_projection,
        only_cross_attention=only_cross_attention,
        upcast_attention=settings.upcast_attention,
        resnet_time_scale_shift=settings.resnet_time_scale_shift,
        resnet_skip_time_act=settings.resnet_skip_time_act,
        resnet_out_scale_factor=settings.resnet_out_scale_factor,
        cross_attention_norm=settings.cross_attention_norm,
        attention_head_dim=attention_head_dim,
    )


def get_up_block(
    block_type: str,
    *,
    settings: BlockSettings,
    num_layers: int,
    transformer_layers_per_block: int,
    in_channels: int,
    out_channels: int,
    prev_output_channel: int,
    add_upsample: bool,
    num_attention_heads: int,
    attention_head_dim: int,
    cross_attention_dim: int,
    only_cross_attention: bool,
) -> nn.Module:
    """The up block named ``block_type`` (an MV2D block, or any block diffusers knows)."""
    if _strip_res_prefix(block_type) == MV_UP_BLOCK:
        return CrossAttnUpBlockMV2D(
            in_channels, out_channels, prev_output_channel, settings=settings, num_layers=num_layers,
            transformer_layers_per_block=transformer_layers_per_block, num_attention_heads=num_attention_heads,
            cross_attention_dim=cross_attention_dim, add_upsample=add_upsample,
            only_cross_attention=only_cross_attention,
        )
    return unet_2d_blocks.get_up_block(
        block_type,
        num_layers=num_layers,
        in_channels=in_channels,
        out_channels=out_channels,
        prev_output_channel=prev_output_channel,
        temb_channels=settings.temb_channels,
        add_upsample=add_upsample,
        resnet_eps=settings.resnet_eps,
        resnet_act_fn=settings.resnet_act_fn,
        transformer_layers_per_block=transformer_layers_per_block,
        num_attention_heads=num_attention_heads,
        resnet_groups=settings.resnet_groups,
        cross_attention_dim=cross_attention_dim,
        dual_cross_attention=settings.dual_cross_attention,
        use_linear_projection=settings.use_linear_projection,
        only_cross_attention=only_cross_attention,
        upcast_attention=settings.upcast_attention,
        resnet_time_scale_shift=settings.resnet_time_scale_shift,
        resnet_skip_time_act=settings.resnet_skip_time_act,
        resnet_out_scale_factor=settings.resnet_out_scale_factor,
        cross_attention_norm=settings.cross_attention_norm,
        attention_head_dim=attention_head_dim,
    )


def get_mid_block(
    block_type: str | None,
    *,
    settings: BlockSettings,
    in_channels: int,
    transformer_layers_per_block: int,
    num_attention_heads: int,
    attention_head_dim: int,
    cross_attention_dim: int,
    output_scale_factor: float,
    only_cross_attention: bool,
) -> nn.Module | None:
    """The mid block named ``block_type``; ``None`` for no mid block.

    Accepted: ``UNetMidBlockMV2DCrossAttn``, diffusers' ``UNetMidBlock2DCrossAttn`` and
    ``UNetMidBlock2DSimpleCrossAttn`` (the choices of Wonder3D's UNet).
    """
    if block_type is None:
        return None
    if block_type == MV_MID_BLOCK:
        return UNetMidBlockMV2DCrossAttn(
            in_channels, settings=settings, transformer_layers_per_block=transformer_layers_per_block,
            num_attention_heads=num_attention_heads, cross_attention_dim=cross_attention_dim,
            output_scale_factor=output_scale_factor,
        )
    common = dict(
        in_channels=in_channels,
        temb_channels=settings.temb_channels,
        resnet_eps=settings.resnet_eps,
        resnet_act_fn=settings.resnet_act_fn,
        output_scale_factor=output_scale_factor,
        resnet_time_scale_shift=settings.resnet_time_scale_shift,
        cross_attention_dim=cross_attention_dim,
        resnet_groups=settings.resnet_groups,
    )
    if block_type == "UNetMidBlock2DCrossAttn":
        return unet_2d_blocks.UNetMidBlock2DCrossAttn(
            transformer_layers_per_block=transformer_layers_per_block,
            num_attention_heads=num_attention_heads,
            dual_cross_attention=settings.dual_cross_attention,
            use_linear_projection=settings.use_linear_projection,
            upcast_attention=settings.upcast_attention,
            **common,
        )
    if block_type == "UNetMidBlock2DSimpleCrossAttn":
        return unet_2d_blocks.UNetMidBlock2DSimpleCrossAttn(
            attention_head_dim=attention_head_dim,
            skip_time_act=settings.resnet_skip_time_act,
            only_cross_attention=only_cross_attention,
            cross_attention_norm=settings.cross_attention_norm,
            **common,
        )
    raise ValueError(
        f"unknown mid_block_type {block_type!r}; expected {MV_MID_BLOCK!r}, 'UNetMidBlock2DCrossAttn', "
        "'UNetMidBlock2DSimpleCrossAttn' or null"
    )
