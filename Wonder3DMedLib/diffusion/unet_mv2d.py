# Adapted from diffusers 0.19.3 src/diffusers/models/unet_2d_condition.py (the version Wonder3D builds on):
# the structure of UNet2DConditionModel's constructor and forward.
# Copyright 2023 The HuggingFace Team, Apache License 2.0 (http://www.apache.org/licenses/LICENSE-2.0),
# the licence of this project too.
"""Wonder3D's multiview cross-domain UNet (``UNetMV2DConditionModel``), weight-compatible with v1.0.

Data form: ``sample`` ``(batch, in_channels, h, w)`` — for Wonder3D 4 noisy-latent channels
followed by 4 condition-image latent channels; ``timestep`` shared by the batch;
``encoder_hidden_states`` ``(batch, 1, cross_attention_dim)`` (the CLIP image embedding);
``class_labels`` ``(batch, projection_class_embeddings_input_dim)`` (camera + domain
sin/cos, :mod:`Wonder3DMedLib.diffusion.cameras`). The batch is consecutive groups of
``num_views`` views; the first half normals, the second half colours (see
:mod:`Wonder3DMedLib.diffusion.attention`).

It is the Stable Diffusion 1.x UNet (diffusers' ``UNet2DConditionModel`` naming) with MV2D
blocks whose transformers add multiview self-attention and cross-domain attention. Every
architecture choice comes from the config; the constructor's keyword names and defaults are
those of Wonder3D's class, so its ``config.json`` round-trips.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.activations import get_activation
from diffusers.models.embeddings import GaussianFourierProjection, TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from Wonder3DMedLib.diffusion.transformer_mv2d import MultiviewSettings
from Wonder3DMedLib.diffusion.unet_mv2d_blocks import BlockSettings, get_down_block, get_mid_block, get_up_block

__all__ = ["UNetMV2DConditionOutput", "UNetMV2DConditionModel"]


@dataclass
class UNetMV2DConditionOutput(BaseOutput):
    """Output of :class:`UNetMV2DConditionModel`.

    Attributes
    ----------
    sample : (batch, out_channels, h, w) tensor
        The predicted noise (epsilon) for each sample.
    """

    sample: torch.Tensor = None


def _per_block(value, count: int, name: str) -> list:
    """A scalar config value repeated per block, or a per-block sequence checked for length."""
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"{name} must give one value per down block ({count}), got {list(value)}")
        return list(value)
    return [value] * count


class UNetMV2DConditionModel(ModelMixin, ConfigMixin):
    """Conditional UNet of Wonder3D: epsilon prediction for ``num_views`` views × 2 domains.

    Parameters (as in ``unet/config.json``; names and defaults of Wonder3D's class)
    ----------
    sample_size : int, optional
        Latent side (32 for 256² images).
    in_channels, out_channels : int
        8 (noisy latent + condition latent) and 4 in Wonder3D v1.0.
    center_input_sample : bool
        Map the input from [0, 1] to [-1, 1] first.
    flip_sin_to_cos, freq_shift
        Layout of the sinusoidal timestep embedding.
    down_block_types, mid_block_type, up_block_types
        ``CrossAttnDownBlockMV2D`` / ``UNetMidBlockMV2DCrossAttn`` / ``CrossAttnUpBlockMV2D``, or any
        diffusers block (``DownBlock2D``, ``CrossAttnDownBlock2D``, ``UpBlock2D``...); mid may be null.
    only_cross_attention : bool or sequence of bool
    block_out_channels : sequence of int
    layers_per_block : int or sequence
        Resnets per down block; up blocks have one more.
    downsample_padding, mid_block_scale_factor, act_fn, norm_num_groups, norm_eps
        As in diffusers; ``norm_num_groups=None`` drops the final GroupNorm.
    cross_attention_dim : int or sequence
        Width of ``encoder_hidden_states`` (768 for CLIP ViT-L/14 image embeds).
    transformer_layers_per_block : int or sequence
        Transformer layers in each attention module.
    attention_head_dim : int or sequence
        Diffusers naming quirk kept for compatibility: this is the NUMBER of heads of the
        cross-attention blocks (8 in v1.0); the head width is channels / heads.
    num_attention_heads : None
        Must stay null (as in Wonder3D's class, which rejects it).
    class_embed_type : {None, 'timestep', 'identity', 'projection', 'simple_projection'}
        ``projection``: ``class_labels`` -> Linear -> SiLU -> Linear, added to the time embedding.
    projection_class_embeddings_input_dim : int
        10 in v1.0 (sin and cos of 3 camera + 2 domain values).
    num_class_embeds, class_embeddings_concat, time_embedding_type, time_embedding_dim,
    time_embedding_act_fn, timestep_post_act, time_cond_proj_dim, conv_in_kernel, conv_out_kernel,
    resnet_time_scale_shift, resnet_skip_time_act, resnet_out_scale_factor, use_linear_projection,
    upcast_attention, dual_cross_attention, cross_attention_norm, mid_block_only_cross_attention
        As in diffusers' ``UNet2DConditionModel`` of the same era (0.19).
    encoder_hid_dim, encoder_hid_dim_type, addition_embed_type, addition_time_embed_dim,
    addition_embed_type_num_heads
        Accepted for config compatibility; only their null defaults are supported (Wonder3D
        does not use these Kandinsky/SDXL inputs).
    num_views : int
        Views per object; the batch must be whole groups of views.
    cd_attention_last, cd_attention_mid : bool
        Cross-domain attention after the feed-forward / between self- and cross-attention.
    multiview_attention : bool
        Self-attention across the views of an object.
    sparse_mv_attention : bool
        Views attend to the front view and themselves only.
    mvcd_attention : bool
        Accepted; has no effect (as in Wonder3D's inference code).
    """

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,
        in_channels: int = 4,
        out_channels: int = 4,
        center_input_sample: bool = False,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        down_block_types: tuple[str, ...] = (
            "CrossAttnDownBlockMV2D", "CrossAttnDownBlockMV2D", "CrossAttnDownBlockMV2D", "DownBlock2D",
        ),
        mid_block_type: str | None = "UNetMidBlockMV2DCrossAttn",
        up_block_types: tuple[str, ...] = (
            "UpBlock2D", "CrossAttnUpBlockMV2D", "CrossAttnUpBlockMV2D", "CrossAttnUpBlockMV2D",
        ),
        only_cross_attention: bool | tuple[bool, ...] = False,
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        layers_per_block: int | tuple[int, ...] = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1,
        act_fn: str = "silu",
        norm_num_groups: int | None = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int | tuple[int, ...] = 1280,
        transformer_layers_per_block: int | tuple[int, ...] = 1,
        encoder_hid_dim: int | None = None,
        encoder_hid_dim_type: str | None = None,
        attention_head_dim: int | tuple[int, ...] = 8,
        num_attention_heads: int | tuple[int, ...] | None = None,
        dual_cross_attention: bool = False,
        use_linear_projection: bool = False,
        class_embed_type: str | None = None,
        addition_embed_type: str | None = None,
        addition_time_embed_dim: int | None = None,
        num_class_embeds: int | None = None,
        upcast_attention: bool = False,
        resnet_time_scale_shift: str = "default",
        resnet_skip_time_act: bool = False,
        resnet_out_scale_factor: float = 1.0,
        time_embedding_type: str = "positional",
        time_embedding_dim: int | None = None,
        time_embedding_act_fn: str | None = None,
        timestep_post_act: str | None = None,
        time_cond_proj_dim: int | None = None,
        conv_in_kernel: int = 3,
        conv_out_kernel: int = 3,
        projection_class_embeddings_input_dim: int | None = None,
        class_embeddings_concat: bool = False,
        mid_block_only_cross_attention: bool | None = None,
        cross_attention_norm: str | None = None,
        addition_embed_type_num_heads: int = 64,
        num_views: int = 1,
        cd_attention_last: bool = False,
        cd_attention_mid: bool = False,
        multiview_attention: bool = True,
        sparse_mv_attention: bool = False,
        mvcd_attention: bool = False,
    ):
        super().__init__()
        self.sample_size = sample_size
        n_blocks = len(down_block_types)
        self._check_config(locals())

        # 1. input
        self.conv_in = nn.Conv2d(
            in_channels, block_out_channels[0], kernel_size=conv_in_kernel, padding=(conv_in_kernel - 1) // 2
        )
        # 2. time and class embeddings
        time_embed_dim, timestep_input_dim = self._set_time_embedding(
            time_embedding_type, time_embedding_dim, block_out_channels[0], flip_sin_to_cos, freq_shift,
            act_fn, timestep_post_act, time_cond_proj_dim,
        )
        self._set_class_embedding(
            class_embed_type, num_class_embeds, time_embed_dim, timestep_input_dim, act_fn,
            projection_class_embeddings_input_dim,
        )
        self.time_embed_act = None if time_embedding_act_fn is None else get_activation(time_embedding_act_fn)

        # 3. blocks
        heads = _per_block(attention_head_dim, n_blocks, "attention_head_dim")
        only_cross = _per_block(only_cross_attention, n_blocks, "only_cross_attention")
        if mid_block_only_cross_attention is None:
            mid_block_only_cross_attention = only_cross_attention if isinstance(only_cross_attention, bool) else False
        cross_dims = _per_block(cross_attention_dim, n_blocks, "cross_attention_dim")
        layers = _per_block(layers_per_block, n_blocks, "layers_per_block")
        transformer_layers = _per_block(transformer_layers_per_block, n_blocks, "transformer_layers_per_block")
        settings = BlockSettings(
            temb_channels=time_embed_dim * 2 if class_embeddings_concat else time_embed_dim,
            resnet_eps=norm_eps,
            resnet_act_fn=act_fn,
            resnet_groups=norm_num_groups,
            resnet_time_scale_shift=resnet_time_scale_shift,
            use_linear_projection=use_linear_projection,
            upcast_attention=upcast_attention,
            dual_cross_attention=dual_cross_attention,
            resnet_skip_time_act=resnet_skip_time_act,
            resnet_out_scale_factor=resnet_out_scale_factor,
            cross_attention_norm=cross_attention_norm,
            multiview=MultiviewSettings(
                num_views=num_views,
                multiview_attention=multiview_attention,
                sparse_mv_attention=sparse_mv_attention,
                cd_attention_mid=cd_attention_mid,
                cd_attention_last=cd_attention_last,
            ),
        )
        # Registration order (down, up, then mid) is Wonder3D's; it fixes the state_dict order.
        self.down_blocks = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        output_channel = block_out_channels[0]
        for i, block_type in enumerate(down_block_types):
            input_channel, output_channel = output_channel, block_out_channels[i]
            self.down_blocks.append(
                get_down_block(
                    block_type, settings=settings, num_layers=layers[i],
                    transformer_layers_per_block=transformer_layers[i], in_channels=input_channel,
                    out_channels=output_channel, add_downsample=i < n_blocks - 1, num_attention_heads=heads[i],
                    attention_head_dim=heads[i], cross_attention_dim=cross_dims[i],
                    downsample_padding=downsample_padding, only_cross_attention=only_cross[i],
                )
            )
        self.mid_block = get_mid_block(
            mid_block_type, settings=settings, in_channels=block_out_channels[-1],
            transformer_layers_per_block=transformer_layers[-1], num_attention_heads=heads[-1],
            attention_head_dim=heads[-1], cross_attention_dim=cross_dims[-1],
            output_scale_factor=mid_block_scale_factor, only_cross_attention=mid_block_only_cross_attention,
        )
        reversed_channels = list(reversed(block_out_channels))
        output_channel = reversed_channels[0]
        for i, block_type in enumerate(up_block_types):
            prev_output_channel, output_channel = output_channel, reversed_channels[i]
            self.up_blocks.append(
                get_up_block(
                    block_type, settings=settings, num_layers=layers[::-1][i] + 1,
                    transformer_layers_per_block=transformer_layers[::-1][i],
                    in_channels=reversed_channels[min(i + 1, n_blocks - 1)], out_channels=output_channel,
                    prev_output_channel=prev_output_channel, add_upsample=i < n_blocks - 1,
                    num_attention_heads=heads[::-1][i],
                    # Matches Wonder3D (diffusers 0.19): the up blocks take attention_head_dim[i]
                    # unreversed; only diffusers' simple/K attention blocks read it.
                    attention_head_dim=heads[i], cross_attention_dim=cross_dims[::-1][i],
                    only_cross_attention=only_cross[::-1][i],
                )
            )
        self.num_upsamplers = n_blocks - 1

        # 4. output
        if norm_num_groups is not None:
            self.conv_norm_out = nn.GroupNorm(num_channels=block_out_channels[0], num_groups=norm_num_groups, eps=norm_eps)
            self.conv_act = get_activation(act_fn)
        else:
            self.conv_norm_out = self.conv_act = None
        self.conv_out = nn.Conv2d(
            block_out_channels[0], out_channels, kernel_size=conv_out_kernel, padding=(conv_out_kernel - 1) // 2
        )

    @staticmethod
    def _check_config(args: dict) -> None:
        n_blocks = len(args["down_block_types"])
        if len(args["up_block_types"]) != n_blocks:
            raise ValueError(
                f"down_block_types and up_block_types must have the same length, got {list(args['down_block_types'])} "
                f"and {list(args['up_block_types'])}"
            )
        if len(args["block_out_channels"]) != n_blocks:
            raise ValueError(
                f"block_out_channels must give one width per down block ({n_blocks}), got {list(args['block_out_channels'])}"
            )
        if args["num_attention_heads"] is not None:
            raise ValueError(
                "num_attention_heads must be null: as in Wonder3D (diffusers 0.19), the number of heads is given by "
                f"attention_head_dim; got num_attention_heads={args['num_attention_heads']}"
            )
        unsupported = {
            key: args[key] for key in ("encoder_hid_dim", "encoder_hid_dim_type", "addition_embed_type") if args[key]
        }
        if unsupported:
            raise ValueError(f"config options not supported by the Wonder3D UNet (must be null): {unsupported}")
        if args["num_views"] < 1:
            raise ValueError(f"num_views must be at least 1, got {args['num_views']}")

    def _set_time_embedding(
        self, embedding_type, embedding_dim, base_channels, flip_sin_to_cos, freq_shift, act_fn, post_act, cond_dim
    ) -> tuple[int, int]:
        if embedding_type == "fourier":
            time_embed_dim = embedding_dim or base_channels * 2
            if time_embed_dim % 2:
                raise ValueError(f"time_embedding_dim must be even for fourier embeddings, got {time_embed_dim}")
            self.time_proj = GaussianFourierProjection(
                time_embed_dim // 2, set_W_to_weight=False, log=False, flip_sin_to_cos=flip_sin_to_cos
            )
            timestep_input_dim = time_embed_dim
        elif embedding_type == "positional":
            time_embed_dim = embedding_dim or base_channels * 4
            self.time_proj = Timesteps(base_channels, flip_sin_to_cos, freq_shift)
            timestep_input_dim = base_channels
        else:
            raise ValueError(f"time_embedding_type must be 'positional' or 'fourier', got {embedding_type!r}")
        self.time_embedding = TimestepEmbedding(
            timestep_input_dim, time_embed_dim, act_fn=act_fn, post_act_fn=post_act, cond_proj_dim=cond_dim
        )
        return time_embed_dim, timestep_input_dim

    def _set_class_embedding(self, embed_type, num_class_embeds, time_embed_dim, timestep_input_dim, act_fn, input_dim):
        if embed_type is None and num_class_embeds is not None:
            self.class_embedding = nn.Embedding(num_class_embeds, time_embed_dim)
        elif embed_type == "timestep":
            self.class_embedding = TimestepEmbedding(timestep_input_dim, time_embed_dim, act_fn=act_fn)
        elif embed_type == "identity":
            self.class_embedding = nn.Identity(time_embed_dim, time_embed_dim)
        elif embed_type in ("projection", "simple_projection"):
            if input_dim is None:
                raise ValueError(f"class_embed_type {embed_type!r} needs projection_class_embeddings_input_dim")
            # Matches Wonder3D (diffusers 0.19): 'projection' uses the default SiLU, not act_fn.
            if embed_type == "projection":
                self.class_embedding = TimestepEmbedding(input_dim, time_embed_dim)
            else:
                self.class_embedding = nn.Linear(input_dim, time_embed_dim)
        elif embed_type is None:
            self.class_embedding = None
        else:
            raise ValueError(
                "class_embed_type must be null, 'timestep', 'identity', 'projection' or 'simple_projection', "
                f"got {embed_type!r}"
            )

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        *,
        subfolder: str | None = None,
        torch_dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> UNetMV2DConditionModel:
        """Load ``config.json`` + ``diffusion_pytorch_model.{safetensors,bin}`` from a local folder.

        ``.bin`` pickles (the hub's fp16 format) are read with torch's weights-only
        unpickler; old joint-attention key names are renamed and stale config keys are
        reported and ignored (see :mod:`Wonder3DMedLib.diffusion.loading`). Never uses
        the network.

        Raises
        ------
        Wonder3DMedLib.errors.WeightsError
            Missing files, unreadable weights, or keys/shapes that do not fit the config.
        """
        from Wonder3DMedLib.diffusion.loading import load_unet

        path = Path(folder) if subfolder is None else Path(folder) / subfolder
        return load_unet(path, dtype=torch_dtype, device=device)

    def _embed(self, sample, timestep, class_labels, timestep_cond) -> torch.Tensor:
        timesteps = timestep
        if not torch.is_tensor(timesteps):
            dtype = torch.float64 if isinstance(timestep, float) else torch.int64
            if sample.device.type == "mps":
                dtype = torch.float32 if isinstance(timestep, float) else torch.int32
            timesteps = torch.tensor([timesteps], dtype=dtype, device=sample.device)
        elif timesteps.ndim == 0:
            timesteps = timesteps[None].to(sample.device)
        timesteps = timesteps.expand(sample.shape[0])
        # Timesteps has no weights and returns float32; the embedding MLP may run in fp16.
        emb = self.time_embedding(self.time_proj(timesteps).to(dtype=sample.dtype), timestep_cond)
        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError("this UNet has a class embedding: pass class_labels (the camera/domain embedding)")
            if self.config.class_embed_type == "timestep":
                class_labels = self.time_proj(class_labels).to(dtype=sample.dtype)
            class_emb = self.class_embedding(class_labels).to(dtype=sample.dtype)
            emb = torch.cat([emb, class_emb], dim=-1) if self.config.class_embeddings_concat else emb + class_emb
        if self.time_embed_act is not None:
            emb = self.time_embed_act(emb)
        return emb

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        class_labels: torch.Tensor | None = None,
        timestep_cond: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNetMV2DConditionOutput | tuple:
        """Predict the noise of every sample.

        Parameters
        ----------
        sample : (batch, in_channels, h, w) tensor
            Batch = whole groups of ``num_views`` views; with cross-domain attention the
            second half is the other domain, aligned with the first.
        timestep : tensor (0-d or (batch,)), float or int
        encoder_hidden_states : (batch, tokens, cross_attention_dim) tensor
        class_labels : (batch, projection_class_embeddings_input_dim) tensor
            Required when the config has a class embedding.
        timestep_cond : (batch, time_cond_proj_dim) tensor, optional
        return_dict : bool
            Return :class:`UNetMV2DConditionOutput` (else a 1-tuple).

        Returns
        -------
        UNetMV2DConditionOutput
            ``.sample`` (batch, out_channels, h, w).
        """
        # Sizes that are not a multiple of the total upsampling force interpolation sizes.
        up_factor = 2**self.num_upsamplers
        forward_upsample_size = any(s % up_factor != 0 for s in sample.shape[-2:])
        upsample_size = None

        # 0. center input
        if self.config.center_input_sample:
            sample = 2 * sample - 1.0
        # 1. time + class embedding
        emb = self._embed(sample, timestep, class_labels, timestep_cond)
        # 2. pre-process
        sample = self.conv_in(sample)
        # 3. down
        skips = (sample,)
        for block in self.down_blocks:
            if getattr(block, "has_cross_attention", False):
                sample, res = block(hidden_states=sample, temb=emb, encoder_hidden_states=encoder_hidden_states)
            else:
                sample, res = block(hidden_states=sample, temb=emb)
            skips += res
        # 4. mid
        if self.mid_block is not None:
            if getattr(self.mid_block, "has_cross_attention", False):
                sample = self.mid_block(sample, emb, encoder_hidden_states=encoder_hidden_states)
            else:
                sample = self.mid_block(sample, emb)
        # 5. up
        for i, block in enumerate(self.up_blocks):
            n_res = len(block.resnets)
            res, skips = skips[-n_res:], skips[:-n_res]
            if i < len(self.up_blocks) - 1 and forward_upsample_size:
                upsample_size = skips[-1].shape[2:]
            if getattr(block, "has_cross_attention", False):
                sample = block(
                    hidden_states=sample, temb=emb, res_hidden_states_tuple=res,
                    encoder_hidden_states=encoder_hidden_states, upsample_size=upsample_size,
                )
            else:
                sample = block(hidden_states=sample, temb=emb, res_hidden_states_tuple=res, upsample_size=upsample_size)
        # 6. post-process
        if self.conv_norm_out is not None:
            sample = self.conv_act(self.conv_norm_out(sample))
        sample = self.conv_out(sample)
        if not return_dict:
            return (sample,)
        return UNetMV2DConditionOutput(sample=sample)
