"""Which torch device and dtype a pipeline runs on, and how a loaded pipeline is tuned for it.

The one place that places and optimises a loaded diffusers pipeline (`optimise`, called by
pipelines/loading.py for every diffusion model it loads). Its options are plain values carried
by the `Placement` (`Optimisations`); the worker builds them from its settings
(worker/placement.py), this module reads no settings.

On CUDA: fp16 (or bf16) weights, SDPA attention, channels_last UNet/VAE/ControlNet weights,
VAE slicing, optional `torch.compile` of the UNet warmed at load for the configured sizes. On
CPU: float32, SDPA attention, and nothing else changes unless asked (see `optimise`).
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import Literal

import torch

log = logging.getLogger(__name__)

DTypeChoice = Literal["auto", "float16", "bfloat16", "float32"]
Switch = Literal["auto", "on", "off"]

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
WARM_UP_STEPS = 2


@dataclass(frozen=True)
class Optimisations:
    """How a loaded pipeline is tuned for its device; the defaults are what a worker does
    without settings."""

    channels_last: bool = True  # UNet, VAE, ControlNet weights; CUDA only
    vae_tiling: Switch = "auto"  # auto: tile images above `vae_tiling_pixels`
    vae_tiling_pixels: int = 1024 * 1024
    vae_slicing: Switch = "auto"  # auto: on CUDA, off on CPU
    torch_compile: bool = False  # the UNet, in place; CUDA only
    compile_mode: str = "default"  # torch.compile's mode
    compile_shapes: tuple[tuple[int, int], ...] = ()  # (width, height) warmed at load when compiling


@dataclass(frozen=True)
class Placement:
    device: str
    dtype: torch.dtype
    options: Optimisations = field(default_factory=Optimisations)


def choose_placement(
    preference: Literal["auto", "cuda", "cpu"] = "auto",
    dtype: DTypeChoice = "auto",
    options: Optimisations | None = None,
) -> Placement:
    """CUDA where present (and wanted), else CPU; `dtype` "auto" is float16 on CUDA and
    float32 on CPU, any other choice is taken as asked.

    Call this in the process that renders, after any fork: asking CUDA anything in a parent
    that later forks leaves the children with a CUDA state they cannot use.
    """
    if dtype != "auto" and dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: one of auto, {', '.join(DTYPES)}")
    options = options or Optimisations()
    if preference != "cpu" and (preference == "cuda" or torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but no CUDA device is available")
        chosen = DTYPES.get(dtype, torch.float16)
        if chosen is torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise RuntimeError(f"dtype bfloat16 was asked for but {torch.cuda.get_device_name()} does not support it")
        return Placement("cuda", chosen, options)
    return Placement("cpu", DTYPES.get(dtype, torch.float32), options)


def optimise(pipe, placement: Placement):
    """Tune a diffusers pipeline already loaded onto `placement`, in place, and return it.

    - attention: every classic attention processor of the UNet, VAE and ControlNet becomes its
      SDPA one (`AttnProcessor2_0`, diffusers' default on torch 2; set explicitly, as diffusers
      documents, so a checkpoint or an earlier change cannot leave the slow path on);
    - VAE tiling and slicing as `options` say (`vae_size_rule`);
    - CUDA only: channels_last weights, and `torch.compile` of the UNet, warmed at once for
      `compile_shapes` (a text-to-image pipeline renders each shape for two steps).

    channels_last and compile are skipped on CPU: the CPU path serves development, tests and
    the tiny model, where compile needs a C++ toolchain at run time and minutes per shape for
    no measured gain, and channels_last would change today's CPU behaviour for none either.
    """
    options = placement.options
    cuda = placement.device == "cuda"
    models = [m for m in (getattr(pipe, "unet", None), getattr(pipe, "vae", None), getattr(pipe, "controlnet", None)) if m is not None]
    applied = [f"{placement.device}/{str(placement.dtype).removeprefix('torch.')}"]
    if sum(use_sdpa(model) for model in models):
        applied.append("sdpa")
    vae = getattr(pipe, "vae", None)
    if vae is not None:
        applied += vae_size_rule(vae, options, cuda)
    if cuda and options.channels_last:
        for model in models:
            model.to(memory_format=torch.channels_last)
        applied.append("channels_last")
    if options.torch_compile and not cuda:
        log.warning("torch.compile is applied on CUDA only; the UNet stays uncompiled on %s", placement.device)
    unet = getattr(pipe, "unet", None)
    if options.torch_compile and cuda and unet is not None:
        # torch's automatic dynamic shapes: the first shape gets a specialised graph, a second size
        # or batch one graph with those dimensions dynamic, which then serves every later one (a
        # few compilations in all, however many sizes and micro-batch sizes the jobs bring).
        unet.compile(mode=options.compile_mode)
        applied.append(f"compiled ({options.compile_mode})")
        if options.compile_shapes and _renders_from_text(pipe):
            warm_up(pipe, options.compile_shapes)
    log.info("pipeline %s optimised: %s", type(pipe).__name__, ", ".join(applied))
    return pipe


def optimise_model(model, placement: Placement):
    """The same for a model loaded on its own (a ControlNet): SDPA attention, and channels_last
    on CUDA."""
    use_sdpa(model)
    if placement.device == "cuda" and placement.options.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def use_sdpa(model) -> bool:
    """Swap the classic attention processors of `model` for their SDPA ones; the others
    (already SDPA, IP-Adapter, custom) are kept. True when any was swapped."""
    processors = getattr(model, "attn_processors", None)
    if not processors:
        return False
    from diffusers.models.attention_processor import (
        AttnAddedKVProcessor,
        AttnAddedKVProcessor2_0,
        AttnProcessor,
        AttnProcessor2_0,
    )

    sdpa = {AttnProcessor: AttnProcessor2_0, AttnAddedKVProcessor: AttnAddedKVProcessor2_0}
    swapped = {name: sdpa[type(p)]() if type(p) in sdpa else p for name, p in processors.items()}
    if all(swapped[name] is p for name, p in processors.items()):
        return False
    model.set_attn_processor(swapped)
    return True


def vae_size_rule(vae, options: Optimisations, cuda: bool) -> list[str]:
    """VAE tiling and slicing, with diffusers' own switches (`enable_tiling`, `enable_slicing`).

    Tiling "on" tiles every image larger than one tile (the VAE's sample size); "auto" decides
    per call: an image above `vae_tiling_pixels` is tiled, a smaller one decoded whole (exactly
    as without tiling). Slicing "auto" is on on CUDA (one image decoded at a time, so the VAE's
    memory does not grow with the batch) and off on CPU. Returns what it set, for the log."""
    applied = []
    if hasattr(vae, "use_tiling"):
        if options.vae_tiling != "auto":  # a size rule set before goes
            for method in ("decode", "encode"):
                vae.__dict__.pop(method, None)
        if options.vae_tiling == "on":
            vae.enable_tiling()
            applied.append("vae tiling")
        elif options.vae_tiling == "off":
            vae.disable_tiling()
        else:
            _tile_above(vae, options.vae_tiling_pixels)
            applied.append(f"vae tiling above {options.vae_tiling_pixels} px")
    if hasattr(vae, "use_slicing"):
        if options.vae_slicing == "on" or (options.vae_slicing == "auto" and cuda):
            vae.enable_slicing()
            applied.append("vae slicing")
        else:
            vae.disable_slicing()
    return applied


class _SizeSwitched:
    """`vae.encode`/`vae.decode` that switch tiling on for images above `pixels` only."""

    def __init__(self, vae, method, pixels: int, latent: bool) -> None:
        self.vae, self.method, self.pixels = vae, method, pixels
        blocks = len(getattr(vae.config, "block_out_channels", ())) or 1
        self.scale = 2 ** (blocks - 1) if latent else 1  # latent side → image side

    def __call__(self, x, *args, **kwargs):
        height, width = x.shape[-2] * self.scale, x.shape[-1] * self.scale
        self.vae.use_tiling = width * height > self.pixels
        return self.method(x, *args, **kwargs)


def _tile_above(vae, pixels: int) -> None:
    if isinstance(vae.__dict__.get("decode"), _SizeSwitched):  # already set: update the threshold
        vae.decode.pixels = vae.encode.pixels = pixels
        return
    vae.use_tiling = False
    # Instance attributes shadow the class's methods: every caller of vae.decode (each diffusers
    # pipeline, and every pipeline derived with from_pipe, which shares this VAE) goes through.
    vae.decode = _SizeSwitched(vae, vae.decode, pixels, latent=True)
    vae.encode = _SizeSwitched(vae, vae.encode, pixels, latent=False)


def _renders_from_text(pipe) -> bool:
    """Whether `pipe` can render from a prompt alone (text-to-image), so it can be warmed up."""
    parameters = inspect.signature(type(pipe).__call__).parameters
    return "prompt" in parameters and "image" not in parameters


def warm_up(pipe, shapes, steps: int = WARM_UP_STEPS) -> None:
    """Render each (width, height) once for `steps` steps, latents only, as a job would (one
    image with guidance, under inference mode), then the first again with two images: a
    compiled UNet compiles its graphs for those sizes, and for other batch sizes (several
    images, micro-batches), now rather than in the first jobs that bring them."""
    runs = [(shape, 1) for shape in shapes] + [(shape, 2) for shape in list(shapes)[:1]]
    for (width, height), images in runs:
        started = time.perf_counter()
        with torch.inference_mode():
            pipe(prompt="", width=width, height=height, num_inference_steps=steps, guidance_scale=7.5,
                 num_images_per_prompt=images, output_type="latent")
        log.info("warmed %dx%d ×%d in %.1fs", width, height, images, time.perf_counter() - started)
