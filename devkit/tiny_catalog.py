"""Tiny random-weight companions of the tiny Stable Diffusion model, and a catalog naming them.

Tests, the benchmark and `renderq tiny-model --catalog` need every kind of model the service
serves (a LoRA, a super-resolution model, segmentation models, an InstructPix2Pix model,
ControlNets, an IP-Adapter, a depth model) without a model hub: each is built here from a config
in a second or two. Random weights: outputs have the right shapes and
types, not meaningful content.
"""

from __future__ import annotations

import json
from pathlib import Path

CATALOG_FILE = "models.json"


def build_tiny_lora(base_dir: str | Path, directory: str | Path, seed: int = 0) -> Path:
    """A rank-4 LoRA on the tiny UNet's attention projections, with non-zero weights so that
    applying it really changes the output."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    pipe = StableDiffusionPipeline.from_pretrained(str(base_dir))
    pipe.unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    )
    target = Path(directory)
    StableDiffusionPipeline.save_lora_weights(target, unet_lora_layers=get_peft_model_state_dict(pipe.unet))
    return target


def build_tiny_upscaler(directory: str | Path, seed: int = 0, scale: int = 2) -> Path:
    import torch
    from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution

    torch.manual_seed(seed)
    config = Swin2SRConfig(
        image_size=32, embed_dim=16, depths=[1], num_heads=[2], window_size=8, upscale=scale, upsampler="pixelshuffle"
    )
    Swin2SRForImageSuperResolution(config).save_pretrained(directory)
    return Path(directory)


def build_tiny_segmenter(directory: str | Path, seed: int = 0) -> Path:
    """A one-stage SegFormer with two labels: 0 background, 1 foreground."""
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(seed)
    config = SegformerConfig(
        num_encoder_blocks=1, depths=[1], sr_ratios=[1], hidden_sizes=[16], patch_sizes=[7], strides=[4],
        num_attention_heads=[1], mlp_ratios=[2], decoder_hidden_size=16, num_labels=2,
        id2label={0: "background", 1: "foreground"}, label2id={"background": 0, "foreground": 1},
    )
    SegformerForSemanticSegmentation(config).save_pretrained(directory)
    return Path(directory)


def build_tiny_text_segmenter(directory: str | Path, seed: int = 0) -> Path:
    """A two-layer CLIPSeg (text and vision towers, decoder) with the byte-level CLIP tokenizer
    of the tiny base and a 64×64 image processor: loads like CIDAS/clipseg-rd64-refined."""
    import torch
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation, CLIPSegProcessor, CLIPTokenizer
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    from .tiny_model import _write_tokenizer

    target = Path(directory)
    vocab_size = _write_tokenizer(target)
    tokenizer = CLIPTokenizer.from_pretrained(target)
    torch.manual_seed(seed)
    tower = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4}
    config = CLIPSegConfig(
        text_config=tower | {"vocab_size": vocab_size, "max_position_embeddings": 77, "bos_token_id": tokenizer.bos_token_id,
                             "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id},
        vision_config=tower | {"image_size": 64, "patch_size": 16},
        projection_dim=32, extract_layers=(1,), reduce_dim=16, decoder_num_attention_heads=2, decoder_intermediate_size=32,
    )
    CLIPSegForImageSegmentation(config).save_pretrained(target)
    image_processor = ViTImageProcessorPil(
        size={"height": 64, "width": 64}, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
    )
    CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(target)
    return target


def build_tiny_instruct_pix2pix(base_dir: str | Path, directory: str | Path, seed: int = 0) -> Path:
    """The tiny base's VAE, text encoder, tokenizer and scheduler around a new UNet that takes
    8 input channels (noisy latents + the input image's latents), as diffusers' own
    InstructPix2Pix tests build it."""
    import torch
    from diffusers import StableDiffusionInstructPix2PixPipeline, StableDiffusionPipeline, UNet2DConditionModel

    base = StableDiffusionPipeline.from_pretrained(str(base_dir))
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config({**base.unet.config, "in_channels": 8})
    components = {k: v for k, v in base.components.items() if k != "unet"}
    StableDiffusionInstructPix2PixPipeline(**components, unet=unet).save_pretrained(directory)
    return Path(directory)


def build_tiny_controlnet(base_dir: str | Path, directory: str | Path, seed: int = 0) -> Path:
    """A ControlNet shaped like the tiny UNet (`ControlNetModel.from_unet`, as diffusers' tests
    do), with its zero convolutions given random weights so the control image really steers
    the output (a freshly initialised ControlNet adds exactly nothing)."""
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_pretrained(str(base_dir), subfolder="unet")
    # Four conditioning stages downsample ×8, the tiny VAE's scale factor.
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(4, 8, 8, 16))
    for block in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
        torch.nn.init.normal_(block.weight)
        torch.nn.init.constant_(block.bias, 1.0)
    controlnet.save_pretrained(directory)
    return Path(directory)


def build_tiny_ip_adapter(base_dir: str | Path, directory: str | Path, seed: int = 0) -> Path:
    """An IP-Adapter for the tiny UNet in the layout `load_ip_adapter` reads:
    `ip-adapter.safetensors` (image projection + per cross-attention key/value weights) and a
    tiny CLIP image encoder in `image_encoder/`."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    target = Path(directory)
    unet_config = UNet2DConditionModel.load_config(str(base_dir), subfolder="unet")
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        image_size=32, patch_size=8,
    ))
    encoder.save_pretrained(target / "image_encoder")
    cross, channels = unet_config["cross_attention_dim"], unet_config["block_out_channels"]
    weights = {
        "image_proj.proj.weight": torch.randn(4 * cross, encoder.config.projection_dim),
        "image_proj.proj.bias": torch.randn(4 * cross),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    # One key/value pair per cross-attention layer, numbered 1, 3, 5, … in the UNet's
    # processor order (diffusers' `_convert_ip_adapter_attn_to_diffusers`).
    unet = UNet2DConditionModel.from_config(unet_config)
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        weights[f"ip_adapter.{key_id}.to_k_ip.weight"] = torch.randn(hidden, cross)
        weights[f"ip_adapter.{key_id}.to_v_ip.weight"] = torch.randn(hidden, cross)
        key_id += 2
    save_file(weights, str(target / "ip-adapter.safetensors"))
    return target


def build_tiny_depth_estimator(directory: str | Path, seed: int = 0) -> Path:
    """A tiny DPT depth model with its image processor (`AutoModelForDepthEstimation`)."""
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    torch.manual_seed(seed)
    config = DPTConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=4, backbone_out_indices=[0, 1, 2, 3],
        num_attention_heads=2, intermediate_size=32, neck_hidden_sizes=[8, 8, 16, 16], fusion_hidden_size=16,
        is_hybrid=False, head_in_index=-1,
    )
    DPTForDepthEstimation(config).save_pretrained(directory)
    DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(directory)
    return Path(directory)


def build_tiny_preview_decoder(directory: str | Path, seed: int = 0) -> Path:
    """A random-weight AutoencoderTiny (TAESD's architecture, a few channels wide) for the tiny
    model's 4-channel latents: live previews decoded by a model, as with TAESD."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                    num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1), latent_channels=4).save_pretrained(directory)
    return Path(directory)


def build_tiny_catalog(base_dir: str | Path, directory: str | Path, extra_bases: int = 0, broken: bool = False) -> Path:
    """Build the companions of the tiny base model in `directory` and write the catalog
    (`models.json`) listing them; returns the catalog's path. `extra_bases` more tiny base
    models (ids tiny-base-1, …) are built for LRU and switching benchmarks; `broken` lists a
    base model whose files do not exist (tests of a failed load)."""
    from .tiny_model import build_tiny_model

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    build_tiny_lora(base_dir, root / "tiny-lora", seed=1)
    build_tiny_lora(base_dir, root / "tiny-lora-b", seed=2)
    build_tiny_upscaler(root / "tiny-upscaler")
    build_tiny_segmenter(root / "tiny-segmenter")
    build_tiny_text_segmenter(root / "tiny-clipseg")
    build_tiny_instruct_pix2pix(base_dir, root / "tiny-pix2pix")
    for seed, control_type in enumerate(("lineart", "canny", "depth"), start=1):
        build_tiny_controlnet(base_dir, root / f"tiny-controlnet-{control_type}", seed=seed)
    build_tiny_ip_adapter(base_dir, root / "tiny-ip-adapter")
    build_tiny_depth_estimator(root / "tiny-depth")
    build_tiny_preview_decoder(root / "tiny-taesd")
    models = [
        {"id": "tiny-lora", "kind": "lora", "source": "./tiny-lora", "base": "default",
         "name": "Tiny LoRA", "description": "Random-weight rank-4 LoRA for tests."},
        {"id": "tiny-lora-b", "kind": "lora", "source": "./tiny-lora-b", "base": "default",
         "name": "Tiny LoRA B", "description": "A second random-weight LoRA, for switching."},
        {"id": "tiny-upscaler", "kind": "upscaler", "source": "./tiny-upscaler",
         "name": "Tiny Swin2SR ×2", "description": "Random-weight Swin2SR super-resolution model."},
        {"id": "tiny-segmenter", "kind": "background-removal", "source": "./tiny-segmenter",
         "name": "Tiny SegFormer", "description": "Random-weight two-label SegFormer (0 background, 1 foreground).",
         "options": {"background_label": 0, "input_size": 64}},
        {"id": "tiny-clipseg", "kind": "text-segmentation", "source": "./tiny-clipseg",
         "name": "Tiny CLIPSeg", "description": "Random-weight CLIPSeg: masks from words for search-replace/recolor."},
        {"id": "tiny-pix2pix", "kind": "instruct-pix2pix", "source": "./tiny-pix2pix",
         "name": "Tiny InstructPix2Pix", "description": "Random-weight InstructPix2Pix (8-channel UNet) for general-edit."},
        *({"id": f"tiny-controlnet-{control_type}", "kind": "controlnet", "source": f"./tiny-controlnet-{control_type}",
           "name": f"Tiny {control_type} ControlNet", "description": f"Random-weight ControlNet on {control_type} maps.",
           "options": {"control_type": control_type}} for control_type in ("lineart", "canny", "depth")),
        {"id": "tiny-ip-adapter", "kind": "ip-adapter", "source": "./tiny-ip-adapter", "base": "default",
         "name": "Tiny IP-Adapter", "description": "Random-weight IP-Adapter with a tiny CLIP image encoder.",
         "options": {"weight_name": "ip-adapter.safetensors"}},
        {"id": "tiny-depth", "kind": "depth-estimator", "source": "./tiny-depth",
         "name": "Tiny DPT", "description": "Random-weight DPT depth-estimation model."},
        {"id": "tiny-taesd", "kind": "preview-decoder", "source": "./tiny-taesd", "base": "default",
         "name": "Tiny TAESD", "description": "Random-weight AutoencoderTiny that decodes live previews."},
    ]
    if broken:
        models.append({"id": "broken-model", "kind": "base", "source": "/nonexistent/renderq-model",
                       "name": "Broken", "description": "Listed but not loadable: shows how a failed load ends."})
    for index in range(1, extra_bases + 1):
        build_tiny_model(root / f"tiny-base-{index}", seed=index)
        models.append({"id": f"tiny-base-{index}", "kind": "base", "source": f"./tiny-base-{index}",
                       "name": f"Tiny base {index}", "description": "Another random-weight base model."})
    path = root / CATALOG_FILE
    path.write_text(json.dumps({"models": models}, indent=2))
    return path
