"""Live previews: what a render looks like between denoising steps, decoded cheaply from its
latents. By default a per-model-family linear map from the latent channels to RGB (the factors
ComfyUI's and A1111's "approximate" previews use), which costs microseconds; with a tiny
autoencoder (TAESD, diffusers' AutoencoderTiny) given, a real but small decode. Either way the
picture is at most PREVIEW_SIDE pixels on its long side."""

from __future__ import annotations

import torch
from PIL import Image

PREVIEW_SIDE = 256  # long side of a preview, at most

# Latent channel → (R, G, B) of Stable Diffusion 1.x / 2.x latents (as the UNet sees them,
# scaled), and of SDXL's (with a bias); ComfyUI's comfy/latent_formats.py values.
SD_FACTORS = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)
SDXL_FACTORS = (
    (0.3651, 0.4232, 0.4341),
    (-0.2533, -0.0042, 0.1068),
    (0.1076, 0.1111, -0.0362),
    (-0.3165, -0.2492, -0.2188),
)
SDXL_BIAS = (0.1084, -0.0175, -0.0011)


def latent_family(pipe) -> str:
    """"sdxl", "sd" (1.x and 2.x: 4 latent channels) or "other" (the fallback map)."""
    vae = getattr(pipe, "vae", None)
    channels = getattr(getattr(vae, "config", None), "latent_channels", 4)
    if channels != 4:
        return "other"
    return "sdxl" if "XL" in type(pipe).__name__ else "sd"


def latents_to_rgb(latents: torch.Tensor, family: str) -> torch.Tensor:
    """(N, C, h, w) latents → (N, h, w, 3) uint8 RGB by the family's linear map; "other" (any
    channel count) shows the first three channels, each stretched to its own range."""
    latents = latents.detach().float()
    if family in ("sd", "sdxl") and latents.shape[1] == 4:
        factors = torch.tensor(SDXL_FACTORS if family == "sdxl" else SD_FACTORS, device=latents.device)
        rgb = torch.einsum("nchw,ck->nhwk", latents, factors)
        if family == "sdxl":
            rgb = rgb + torch.tensor(SDXL_BIAS, device=latents.device)
        rgb = (rgb + 1.0) / 2.0
    else:
        picked = latents[:, :3] if latents.shape[1] >= 3 else latents[:, :1].expand(-1, 3, -1, -1)
        low = picked.amin(dim=(2, 3), keepdim=True)
        high = picked.amax(dim=(2, 3), keepdim=True)
        rgb = ((picked - low) / (high - low).clamp(min=1e-6)).permute(0, 2, 3, 1)
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).cpu()


def preview_size(width: int, height: int, side: int = PREVIEW_SIDE) -> tuple[int, int]:
    """An image of width×height scaled to at most `side` on its long side (never enlarged)."""
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def decode_previews(pipe, latents: torch.Tensor, indices: list[int], decoder=None) -> list[Image.Image | None]:
    """Preview images of the latents at `indices` (the rows of a batched call), each at most
    PREVIEW_SIDE px on its long side, shaped like the image it will become (latents are 1/8 of
    it); None for latents that are not (N, C, h, w) (packed transformer latents). `decoder`: a
    tiny autoencoder (AutoencoderTiny) to decode with instead of the linear map."""
    if latents.dim() != 4 or not indices:
        return [None] * len(indices)
    picked = latents[indices]
    height, width = picked.shape[2] * 8, picked.shape[3] * 8
    if decoder is not None:
        with torch.inference_mode():
            decoded = decoder.decode(picked.to(decoder.device, decoder.dtype)).sample  # in [-1, 1]
        rgb = ((decoded.float() + 1) / 2).clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()
    else:
        rgb = latents_to_rgb(picked, latent_family(pipe))
    size = preview_size(width, height)
    return [Image.fromarray(frame.numpy(), "RGB").resize(size, Image.BILINEAR) for frame in rgb]
