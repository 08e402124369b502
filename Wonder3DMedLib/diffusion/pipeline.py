"""Wonder3D's sampling pipeline: one framed image -> 6 normal maps + 6 colour images (+ masks).

Data form: input a framed square image (``unet.sample_size × 8`` pixels, 256² for v1.0) on a
white background — a PIL RGB image, an RGBA image (framed here with
:func:`Wonder3DMedLib.imaging.framing.wonder3d_preprocess`, or only composited on white when
``already_framed``), a :class:`~Wonder3DMedLib.imaging.framing.Wonder3DInput`, or float
arrays/tensors in [0, 1]. Output ``images``: rows 0–5 normal maps, rows 6–11 colour images,
views ``front, front_right, right, back, left, front_left``; normals RGB-encoded ``(n+1)/2``
in the front camera's frame.

``__call__`` reproduces Wonder3D's ``MVDiffusionImagePipeline.__call__`` step for step (CLIP
embedding, VAE condition latents in distribution mode × scaling factor, the camera/domain
table, the classifier-free-guidance batch order, DDIM with η and the same generator draws,
decoding). Wonder3D's defaults of its command line are ours: 50 steps, guidance 1, η 1, seed 42.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from Wonder3DMedLib.diffusion import loading
from Wonder3DMedLib.diffusion.cameras import CameraTable, camera_table, class_labels
from Wonder3DMedLib.diffusion.masks import foreground_masks
from Wonder3DMedLib.errors import InputError, OutputError
from Wonder3DMedLib.imaging.framing import WONDER3D_CROP_SIZE, Wonder3DInput, wonder3d_preprocess
from Wonder3DMedLib.model_frame import MODEL_IMAGE_SIZE
from Wonder3DMedLib.progress import ProgressCallback, report
from Wonder3DMedLib.views import MultiviewImages
from Wonder3DMedLib.weights import find_checkpoint

__all__ = ["DEFAULT_SEED", "OUTPUT_TYPES", "MVDiffusionPipelineOutput", "MVDiffusionImagePipeline"]

#: Seed of the sampler when no generator is passed (Wonder3D's scripts use 42).
DEFAULT_SEED = 42

#: Accepted ``output_type`` values.
OUTPUT_TYPES = ("pil", "np", "pt", "latent")

# Share of the progress bar taken by encoding and decoding; the rest is the denoising loop.
_ENCODE_SHARE, _DECODE_SHARE = 0.02, 0.03


@dataclass
class MVDiffusionPipelineOutput(BaseOutput):
    """What :class:`MVDiffusionImagePipeline` returns.

    Attributes
    ----------
    images : list of PIL.Image, (N, H, W, 3) ndarray, (N, 3, H, W) tensor, or latents
        By ``output_type``; N = 2 · views · objects, normal maps first, then colour images.
        Values in [0, 1] (PIL: 8-bit, rounded).
    masks : (views · objects, H, W) bool ndarray or None
        Foreground of each view (:func:`~Wonder3DMedLib.diffusion.masks.foreground_masks`);
        None for ``output_type='latent'``.
    metadata : dict
        Sampling parameters (JSON-serialisable, no patient data).
    nsfw_content_detected : None
        Kept for diffusers compatibility; there is no safety checker.
    """

    images: list | np.ndarray | torch.Tensor
    masks: np.ndarray | None = None
    metadata: dict | None = None
    nsfw_content_detected: None = None

    def to_multiview_images(self, *, description: str = "") -> MultiviewImages:
        """The generated views as :class:`~Wonder3DMedLib.views.MultiviewImages` (``source='diffusion'``).

        Only for one object (12 images) and a decoded ``output_type``.
        """
        if self.masks is None:
            raise ValueError("latent outputs have no views; call the pipeline with output_type 'pil', 'np' or 'pt'")
        images = _as_float_array(self.images)
        views = len(self.masks)
        if images.shape[0] != 2 * views or views != 6:
            raise ValueError(f"expected the 12 images of one object, got {images.shape[0]}")
        return MultiviewImages(
            images[:views], images[views:], self.masks, source="diffusion", description=description,
            metadata=dict(self.metadata or {}),
        )


def _as_float_array(images) -> np.ndarray:
    """Pipeline images of any output type -> (N, H, W, 3) float32 in [0, 1]."""
    if isinstance(images, torch.Tensor):
        return images.detach().float().permute(0, 2, 3, 1).cpu().numpy()
    if isinstance(images, np.ndarray):
        return images.astype(np.float32)
    return np.stack([np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0 for image in images])


def _to_pil_truncating(pixels: np.ndarray) -> PIL.Image.Image:
    """(H, W, 3) float in [0, 1] -> 8-bit PIL image."""
    # Matches Wonder3D: its pipeline turns float images into PIL with torchvision's to_pil_image,
    # i.e. x·255 truncated (not rounded) to uint8.
    clipped = np.clip(np.asarray(pixels, dtype=np.float32), 0.0, 1.0)
    return PIL.Image.fromarray((clipped * 255).astype(np.uint8))


def _to_tensor(image: PIL.Image.Image) -> torch.Tensor:
    """8-bit PIL RGB -> (3, H, W) float32 in [0, 1] (torchvision's to_tensor)."""
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0


def _composite_on_white(rgba: PIL.Image.Image) -> np.ndarray:
    """An already framed RGBA image on white, float32 — the last step of ``wonder3d_preprocess``."""
    pixels = np.asarray(rgba.convert("RGBA")).astype(np.float32) / 255.0
    alpha = pixels[..., 3:4]
    return pixels[..., :3] * alpha + np.float32(1.0) * (1.0 - alpha)


class MVDiffusionImagePipeline(DiffusionPipeline):
    """Wonder3D v1.0 multiview cross-domain diffusion, CPU or GPU, without xformers.

    Parameters
    ----------
    vae : diffusers.AutoencoderKL
    image_encoder : transformers.CLIPVisionModelWithProjection
    unet : UNetMV2DConditionModel
    scheduler : diffusers scheduler (DDIMScheduler for Wonder3D)
    feature_extractor : transformers CLIP image processor

    Load a checkpoint with :meth:`from_pretrained`; move it with ``.to(device, dtype)``.
    """

    model_cpu_offload_seq = "image_encoder->unet->vae"

    def __init__(self, vae, image_encoder, unet, scheduler, feature_extractor):
        super().__init__()
        self.register_modules(
            vae=vae, image_encoder=image_encoder, unet=unet, scheduler=scheduler, feature_extractor=feature_extractor
        )
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    # ------------------------------------------------------------------ loading / saving
    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path | None = None,
        *,
        torch_dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> MVDiffusionImagePipeline:
        """Load a Wonder3D checkpoint folder (hub layout) offline.

        Parameters
        ----------
        folder : str or Path, optional
            The checkpoint; when omitted, ``$WONDER3DMED_WEIGHTS`` then the local Hugging
            Face cache are searched (:func:`Wonder3DMedLib.weights.find_checkpoint`).
        torch_dtype : torch.dtype
            Precision of all models (float16/bfloat16 are for GPUs).
        device : str or torch.device

        Raises
        ------
        Wonder3DMedLib.errors.WeightsError
            Incomplete folder (the message lists the missing files and how to get them),
            wrong components, or weights that do not fit their configs.
        """
        folder = find_checkpoint(folder)
        components = loading.read_model_index(folder)
        return cls(
            vae=loading.load_vae(folder / "vae", dtype=torch_dtype, device=device),
            image_encoder=loading.load_image_encoder(folder / "image_encoder", dtype=torch_dtype, device=device),
            unet=loading.load_unet(folder / "unet", dtype=torch_dtype, device=device),
            scheduler=loading.load_scheduler(folder / "scheduler", components["scheduler"][1]),
            feature_extractor=loading.load_feature_extractor(folder / "feature_extractor"),
        )

    def save_pretrained(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Write the pipeline in the hub layout (safetensors weights; ``model_index.json`` names
        the UNet by its original module, so Wonder3D's own code can load the folder too).

        Raises
        ------
        OutputError
            ``folder`` is not empty and ``overwrite`` is False.
        """
        folder = Path(folder)
        if folder.exists() and any(folder.iterdir()) and not overwrite:
            raise OutputError("the folder is not empty; refusing to write a checkpoint over it", path=folder,
                              hint="choose an empty folder or pass overwrite=True")
        folder.mkdir(parents=True, exist_ok=True)
        self.unet.save_pretrained(folder / "unet", safe_serialization=True)
        self.vae.save_pretrained(folder / "vae", safe_serialization=True)
        with loading.transformers_progress_bars_off():
            self.image_encoder.save_pretrained(folder / "image_encoder")
        self.feature_extractor.save_pretrained(folder / "feature_extractor")
        self.scheduler.save_pretrained(folder / "scheduler")
        loading.write_model_index(folder, scheduler_class=type(self.scheduler).__name__)
        return folder

    # ------------------------------------------------------------------ inputs
    @property
    def image_size(self) -> int:
        """Side of the input and output images in pixels (256 for Wonder3D v1.0)."""
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    @property
    def num_views(self) -> int:
        """Views per object (from the UNet config)."""
        return int(self.unet.config.num_views)

    def prepare_images(self, image, *, already_framed: bool = False) -> list[PIL.Image.Image]:
        """The 8-bit RGB images the encoders see: one per UNet sample (a single input is repeated).

        Parameters
        ----------
        image : PIL.Image, Wonder3DInput, (H, W, 3) or (N, H, W, 3) ndarray, (3, H, W) or (N, 3, H, W) tensor, or list of PIL
            Floats in [0, 1] (or uint8). An RGBA PIL image with transparency is framed with
            ``wonder3d_preprocess`` unless ``already_framed`` (then only composited on white).
            N must be a multiple of ``2 · num_views``.
        already_framed : bool
            The RGBA input is already a framed image (``input.png`` of ``wonder3dmed prepare``).

        Raises
        ------
        InputError
            Unsupported type, wrong size, or a batch that is not whole objects.
        """
        per_object = 2 * self.num_views
        if isinstance(image, PIL.Image.Image):
            images = [self._framed_pil(image, already_framed)]
        elif isinstance(image, Wonder3DInput):
            images = [_to_pil_truncating(image.rgb)]
        elif isinstance(image, (np.ndarray, torch.Tensor)):
            if isinstance(image, torch.Tensor):
                if image.ndim not in (3, 4):
                    raise InputError(f"image tensors must be (3, H, W) or (N, 3, H, W), got shape {tuple(image.shape)}")
                array = np.moveaxis(image.detach().cpu().numpy(), -3, -1)
            else:
                array = np.asarray(image)
            array = array[None] if array.ndim == 3 else array
            if array.ndim != 4 or array.shape[-1] != 3:
                raise InputError(f"image arrays must be (H, W, 3) or (N, H, W, 3) (tensors channel-first), got {image.shape}")
            if array.dtype == np.uint8:
                images = [PIL.Image.fromarray(a) for a in array]
            else:
                images = [_to_pil_truncating(a) for a in array]
        elif isinstance(image, Sequence) and image and all(isinstance(i, PIL.Image.Image) for i in image):
            images = [i.convert("RGB") for i in image]
        else:
            raise InputError(f"unsupported image type {type(image).__name__}; pass a PIL image, array, tensor or list of PIL images")
        for candidate in images:
            if candidate.size != (self.image_size, self.image_size):
                raise InputError(
                    f"this checkpoint's model takes {self.image_size}×{self.image_size} framed inputs (Wonder3D v1.0 "
                    f"takes 256×256), got {candidate.size[0]}×{candidate.size[1]}",
                    hint="pass an RGBA image with the object in alpha (it is framed to the model's size as Wonder3D "
                    "does); `wonder3dmed prepare` writes 256×256 inputs, for Wonder3D v1.0",
                )
        if len(images) == 1:
            return images * per_object
        if len(images) % per_object:
            raise InputError(f"a batch of images must hold {per_object} per object (views × domains), got {len(images)}")
        return images

    def _framed_pil(self, image: PIL.Image.Image, already_framed: bool) -> PIL.Image.Image:
        has_alpha = image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info)
        if not has_alpha:
            return image.convert("RGB")
        rgba = image.convert("RGBA")
        if np.asarray(rgba)[..., 3].min() == 255:
            return rgba.convert("RGB")
        if already_framed:
            return _to_pil_truncating(_composite_on_white(rgba))
        size = self.image_size
        framed = wonder3d_preprocess(rgba, crop_size=WONDER3D_CROP_SIZE * size // MODEL_IMAGE_SIZE, image_size=size)
        return _to_pil_truncating(framed.rgb)

    # ------------------------------------------------------------------ encoders
    def clip_pixel_values(self, images: list[PIL.Image.Image]) -> torch.Tensor:
        """CLIP preprocessing (resize, centre crop, normalise) -> (N, 3, S, S) float32."""
        return self.feature_extractor(images=images, return_tensors="pt").pixel_values

    @torch.no_grad()
    def encode_images(self, images: list[PIL.Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIP image embeddings ``(N, 1, D)`` and VAE condition latents ``(N, 4, h, w)`` (mode × scaling factor).

        Identical images are encoded once.
        """
        positions: dict[int, int] = {}
        index = torch.tensor([positions.setdefault(id(image), len(positions)) for image in images])
        unique = list({id(image): image for image in images}.values())
        device, encoder_dtype, vae_dtype = self._execution_device, self.image_encoder.dtype, self.vae.dtype
        pixels = self.clip_pixel_values(unique).to(device=device, dtype=encoder_dtype)
        embeddings = self.image_encoder(pixels).image_embeds.unsqueeze(1)
        vae_input = torch.stack([_to_tensor(image) for image in unique]).to(device=device, dtype=vae_dtype) * 2.0 - 1.0
        latents = self.vae.encode(vae_input).latent_dist.mode() * self.vae.config.scaling_factor
        return embeddings[index.to(device)], latents[index.to(device)]

    def camera_class_labels(self, batch: int, *, camera_table_variant: CameraTable | str = CameraTable.PIPELINE,
                            camera_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """Class labels ``(batch, 10)`` in the UNet's dtype: the table repeated per object, or ``camera_embedding`` (batch, 5)."""
        if camera_embedding is None:
            raw = camera_table(camera_table_variant)
            if batch % len(raw):
                raise InputError(f"the camera table covers {len(raw)} samples per object; batch {batch} is not whole objects")
            # Matches Wonder3D: the table is cast to the VAE's dtype before the UNet's.
            raw = raw.to(self.vae.dtype).repeat(batch // len(raw), 1)
        else:
            raw = torch.as_tensor(camera_embedding)
            if raw.shape != (batch, 5):
                raise InputError(f"camera_embedding must have shape ({batch}, 5), got {tuple(raw.shape)}")
        return class_labels(raw.to(self._execution_device), dtype=self.unet.dtype)

    # ------------------------------------------------------------------ sampling
    @staticmethod
    def _to_unet_order(tensor: torch.Tensor) -> torch.Tensor:
        """[normal-uncond, color-uncond, normal-cond, color-cond] -> [normal-uncond, normal-cond, color-uncond, color-cond]."""
        normal_uc, color_uc, normal_c, color_c = torch.chunk(tensor, 4, dim=0)
        return torch.cat([normal_uc, normal_c, color_uc, color_c], dim=0)

    @staticmethod
    def _to_guidance_order(tensor: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`_to_unet_order`."""
        normal_uc, normal_c, color_uc, color_c = torch.chunk(tensor, 4, dim=0)
        return torch.cat([normal_uc, color_uc, normal_c, color_c], dim=0)

    def max_inference_steps(self) -> int:
        """The most DDIM steps the scheduler can take: with "leading" spacing its timesteps are
        ``k · (T // n) + steps_offset``, which must stay below ``T``."""
        config = self.scheduler.config
        total = int(config.num_train_timesteps)
        if config.get("timestep_spacing", "leading") == "leading":
            return total - int(config.get("steps_offset", 0))
        return total

    def check_inputs(self, num_inference_steps, guidance_scale, eta, output_type, callback_steps) -> None:
        """Raise ValueError naming the first invalid argument."""
        limit = self.max_inference_steps()
        if not (isinstance(num_inference_steps, int) and 1 <= num_inference_steps <= limit):
            raise ValueError(f"num_inference_steps must be a whole number from 1 to {limit}, got {num_inference_steps!r}")
        if not np.isfinite(guidance_scale):
            raise ValueError(f"guidance_scale must be a finite number, got {guidance_scale!r}")
        if not (np.isfinite(eta) and eta >= 0):
            raise ValueError(f"eta must be 0 or more (0 deterministic DDIM, 1 Wonder3D's setting), got {eta!r}")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        if not (isinstance(callback_steps, int) and callback_steps > 0):
            raise ValueError(f"callback_steps must be a positive whole number, got {callback_steps!r}")
        if self.unet.config.out_channels != self.vae.config.latent_channels:
            raise ValueError(f"the UNet predicts {self.unet.config.out_channels} channels but the VAE has "
                             f"{self.vae.config.latent_channels} latent channels")

    def _step_kwargs(self, generator, eta) -> dict:
        accepted = set(inspect.signature(self.scheduler.step).parameters)
        return {k: v for k, v in (("eta", eta), ("generator", generator)) if k in accepted}

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, *, batch_size: int = 2) -> torch.Tensor:
        """Latents -> images (N, 3, H, W) in [0, 1]; decoded ``batch_size`` at a time to bound memory."""
        scaled = latents / self.vae.config.scaling_factor
        images = [self.vae.decode(chunk).sample for chunk in scaled.split(batch_size)]
        return (torch.cat(images) / 2 + 0.5).clamp(0, 1)

    @torch.no_grad()
    def __call__(
        self,
        image,
        *,
        num_inference_steps: int = 50,
        guidance_scale: float = 1.0,
        eta: float = 1.0,
        generator: torch.Generator | None = None,
        seed: int = DEFAULT_SEED,
        camera_table_variant: CameraTable | str = CameraTable.PIPELINE,
        camera_embedding: torch.Tensor | None = None,
        already_framed: bool = False,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback: Callable[[int, int, torch.Tensor], None] | None = None,
        callback_steps: int = 1,
        progress: ProgressCallback | None = None,
    ) -> MVDiffusionPipelineOutput | tuple:
        """Generate the normal maps and colour images of every view.

        Parameters
        ----------
        image
            See :meth:`prepare_images`.
        num_inference_steps : int
            DDIM steps (Wonder3D: 50).
        guidance_scale : float
            Classifier-free guidance; 1 disables it and halves the UNet batch.
        eta : float
            DDIM η (Wonder3D: 1, stochastic).
        generator : torch.Generator, optional
            Source of all noise (initial latents, then one draw per step). Default: a CPU
            generator seeded with ``seed``, so CPU and GPU runs start from the same noise.
        seed : int
            Seed of the default generator.
        camera_table_variant : {'pipeline', 'dataset'}
            Wonder3D's built-in fp16 camera table (default) or its dataset's float32 angles.
        camera_embedding : (N, 5) tensor, optional
            Own raw camera + domain values instead of a table.
        already_framed : bool
            See :meth:`prepare_images`.
        latents : (N, 4, h, w) tensor, optional
            Initial latents instead of drawing them.
        output_type : {'pil', 'np', 'pt', 'latent'}
        return_dict : bool
            Return :class:`MVDiffusionPipelineOutput` (else ``(images, None)``).
        callback : callable, optional
            ``callback(step_index, timestep, latents)`` every ``callback_steps`` steps (diffusers' legacy hook).
        progress : ProgressCallback, optional
            ``progress(fraction, message)``; may raise :class:`~Wonder3DMedLib.errors.Cancelled` to stop.
        """
        # 1. check inputs
        self.check_inputs(num_inference_steps, guidance_scale, eta, output_type, callback_steps)
        report(progress, 0.0, "encoding the input")
        # 2. call parameters
        images = self.prepare_images(image, already_framed=already_framed)
        batch = len(images)
        device = self._execution_device
        do_cfg = guidance_scale != 1.0
        seeded_here = generator is None
        if seeded_here:
            generator = torch.Generator(device="cpu").manual_seed(int(seed))
        # 3. encode the input image (CLIP embedding, VAE condition latents) and the cameras
        embeddings, image_latents = self.encode_images(images)
        cameras = self.camera_class_labels(batch, camera_table_variant=camera_table_variant, camera_embedding=camera_embedding)
        if do_cfg:
            embeddings = self._to_unet_order(torch.cat([torch.zeros_like(embeddings), embeddings]))
            image_latents = self._to_unet_order(torch.cat([torch.zeros_like(image_latents), image_latents]))
            cameras = self._to_unet_order(torch.cat([cameras, cameras]))
        report(progress, _ENCODE_SHARE, "input encoded")
        # 4. timesteps
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        # 5. initial latents (first draw of the generator)
        shape = (batch, self.unet.config.out_channels, image_latents.shape[-2], image_latents.shape[-1])
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=embeddings.dtype)
        elif tuple(latents.shape) != shape:
            raise InputError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        latents = latents.to(device) * self.scheduler.init_noise_sigma
        step_kwargs = self._step_kwargs(generator, eta)
        # 6. denoising loop
        loop_share = 1.0 - _ENCODE_SHARE - _DECODE_SHARE
        for i, t in enumerate(timesteps):
            model_input = self._to_unet_order(torch.cat([latents] * 2)) if do_cfg else latents
            model_input = self.scheduler.scale_model_input(torch.cat([model_input, image_latents], dim=1), t)
            noise = self.unet(model_input, t, encoder_hidden_states=embeddings, class_labels=cameras).sample
            if do_cfg:
                noise_uncond, noise_cond = self._to_guidance_order(noise).chunk(2)
                noise = noise_uncond + guidance_scale * (noise_cond - noise_uncond)
            latents = self.scheduler.step(noise, t, latents, **step_kwargs).prev_sample
            if callback is not None and i % callback_steps == 0:
                callback(i, t, latents)
            report(progress, _ENCODE_SHARE + loop_share * (i + 1) / len(timesteps),
                   f"denoising step {i + 1}/{len(timesteps)}")
        metadata = {
            "num_inference_steps": num_inference_steps, "guidance_scale": float(guidance_scale), "eta": float(eta),
            "seed": int(seed) if seeded_here else None,
            "camera_table": CameraTable(camera_table_variant).value if camera_embedding is None else "caller",
            "dtype": str(self.unet.dtype).removeprefix("torch."), "device": str(device),
        }
        # 7. decode
        if output_type == "latent":
            report(progress, 1.0, "done")
            return MVDiffusionPipelineOutput(images=latents, metadata=metadata) if return_dict else (latents, None)
        report(progress, 1.0 - _DECODE_SHARE, "decoding")
        decoded = self.decode_latents(latents)
        as_array = decoded.float().permute(0, 2, 3, 1).cpu().numpy()
        half = batch // 2
        masks = foreground_masks(as_array[:half], as_array[half:])
        if output_type == "pt":
            out = decoded
        elif output_type == "np":
            out = as_array
        else:
            out = [PIL.Image.fromarray(np.round(a * 255).astype(np.uint8)) for a in as_array]
        report(progress, 1.0, "done")
        if not return_dict:
            return out, None
        return MVDiffusionPipelineOutput(images=out, masks=masks, metadata=metadata)
