"""All model loading: every kind of model a worker serves, from a hub id (resolved through the
Hugging Face cache, `HF_HUB_OFFLINE=1` honoured) or a local directory. The worker's model cache
decides when to load; this module knows how."""

from __future__ import annotations

import logging
from pathlib import Path

from .control import DepthEstimator
from .device import Placement, optimise, optimise_model
from .text_segmentation import TextSegmenter

log = logging.getLogger(__name__)


def load_text_to_image(model: str, placement: Placement):
    """Load a text-to-image diffusers pipeline onto `placement`.

    `model` is a hub id (resolved through the Hugging Face cache, `HF_HUB_OFFLINE=1` honoured)
    or a directory written by `save_pretrained`. The safety checker is left out: filtering is
    a deployment's policy, not the renderer's.
    """
    from diffusers import AutoPipelineForText2Image

    return load_pipeline(AutoPipelineForText2Image, model, placement)


def load_instruct_pix2pix(model: str, placement: Placement):
    """Load an InstructPix2Pix pipeline (e.g. timbrooks/instruct-pix2pix: a Stable Diffusion
    whose UNet takes 8 channels, the noisy latents and the input image's) the same way."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    return load_pipeline(StableDiffusionInstructPix2PixPipeline, model, placement)


def load_pipeline(pipeline_class, model: str, placement: Placement):
    """`pipeline_class.from_pretrained(model)` on `placement`, without safety checker or progress
    bars, then tuned for its device by `optimise` (pipelines/device.py) with the placement's
    options."""
    from diffusers.utils import logging as diffusers_logging

    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()

    if not model:
        raise ValueError("no model configured: set RENDERQ_DEFAULT_MODEL to a hub id or a directory")
    source = Path(model)
    is_local = source.is_dir()
    log.info("loading model %s (%s) on %s", model, "local" if is_local else "hub", placement.device)
    pipe = pipeline_class.from_pretrained(
        str(source) if is_local else model,
        dtype=placement.dtype,
        safety_checker=None,
        requires_safety_checker=False,
    )
    pipe.to(placement.device)
    pipe.set_progress_bar_config(disable=True)
    return optimise(pipe, placement)  # attention, VAE tiling/slicing; on CUDA channels_last, compile


def load_controlnet(source: str, placement: Placement):
    """A diffusers `ControlNetModel` from a hub id or a local directory, onto `placement`."""
    from diffusers import ControlNetModel

    log.info("loading ControlNet %s on %s", source, placement.device)
    return optimise_model(ControlNetModel.from_pretrained(source, dtype=placement.dtype).to(placement.device), placement)


def load_upscaler(source: str, placement: Placement):
    """A transformers super-resolution model (Swin2SR) from a hub id or a directory."""
    from transformers import Swin2SRForImageSuperResolution

    model = Swin2SRForImageSuperResolution.from_pretrained(source, dtype=placement.dtype)
    return model.to(placement.device).eval()



def load_segmenter(source: str, placement: Placement):
    from transformers import AutoModelForSemanticSegmentation

    model = AutoModelForSemanticSegmentation.from_pretrained(source, dtype=placement.dtype)
    return model.to(placement.device).eval()



def load_text_segmenter(source: str, placement: Placement) -> TextSegmenter:
    """CLIPSeg (e.g. CIDAS/clipseg-rd64-refined) from a hub id or a directory."""
    from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

    model = CLIPSegForImageSegmentation.from_pretrained(source, dtype=placement.dtype)
    return TextSegmenter(model.to(placement.device).eval(), CLIPSegProcessor.from_pretrained(source))



def load_depth_estimator(source: str, placement: Placement) -> DepthEstimator:
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    model = AutoModelForDepthEstimation.from_pretrained(source, dtype=placement.dtype).to(placement.device).eval()
    return DepthEstimator(model, AutoImageProcessor.from_pretrained(source))


def load_preview_decoder(source: str, placement: Placement):
    """A tiny autoencoder (diffusers' AutoencoderTiny: TAESD, TAESDXL) that decodes live previews."""
    from diffusers import AutoencoderTiny

    return AutoencoderTiny.from_pretrained(source, dtype=placement.dtype).to(placement.device).eval()


# How a worker loads each catalog kind besides bases, LoRAs, ControlNets and IP-Adapters (which
# the model cache loads onto a base): kind → loader(source, placement).
LOADERS = {
    "upscaler": load_upscaler,
    "background-removal": load_segmenter,
    "text-segmentation": load_text_segmenter,
    "depth-estimator": load_depth_estimator,
    "instruct-pix2pix": load_instruct_pix2pix,
    "preview-decoder": load_preview_decoder,
}
