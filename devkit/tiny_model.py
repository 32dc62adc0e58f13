"""Build a tiny random-weight Stable Diffusion pipeline from configs alone.

No machine here reaches a model hub, so tests and the embedded default load a pipeline
that this module writes to disk in a few seconds. It has the real Stable Diffusion layout
(UNet, VAE, CLIP text encoder, CLIP tokenizer, scheduler) and loads through exactly the
same `from_pretrained` code path as a real model; only the weights are random, so the
images are noise.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY_MODEL_MARKER = "renderq-tiny-model.json"

# The CLIP tokenizer is byte-level BPE: with the 256 byte symbols (plus their end-of-word
# forms) as the vocabulary and no merges it tokenizes any text, one symbol per byte.
_SPECIAL_TOKENS = ["<|startoftext|>", "<|endoftext|>"]


def _bytes_to_unicode() -> list[str]:
    """The byte→symbol table GPT-2/CLIP tokenizers use (printable stand-ins for bytes)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return [chr(c) for c in chars]


def _write_tokenizer(directory: Path) -> int:
    symbols = _bytes_to_unicode()
    vocab_list = symbols + [s + "</w>" for s in symbols] + _SPECIAL_TOKENS
    vocab = {token: index for index, token in enumerate(vocab_list)}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    (directory / "special_tokens_map.json").write_text(
        json.dumps(
            {
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
            }
        )
    )
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"model_max_length": 77, "tokenizer_class": "CLIPTokenizer"})
    )
    return len(vocab)


def build_tiny_model(directory: str | Path, seed: int = 0) -> Path:
    """Write a tiny random-weight Stable Diffusion pipeline to `directory` and return it.

    Deterministic for a given seed; a few MB; a few seconds on a CPU.
    """
    import torch
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)

    vocab_size = _write_tokenizer(target / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(target / "tokenizer")
    # Built in this order after the seed: each draws its random weights from torch's generator,
    # so the order is part of what makes the model the same for the same seed.
    text_encoder = _tiny_text_encoder(vocab_size, tokenizer)
    unet = _tiny_unet()
    vae = _tiny_vae()
    scheduler = DPMSolverMultistepScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(target)
    (target / TINY_MODEL_MARKER).write_text(json.dumps({"seed": seed, "random_weights": True}))
    return target


def _tiny_text_encoder(vocab_size: int, tokenizer):
    """A two-layer CLIP text encoder, 32 wide, over the byte-level vocabulary."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            projection_dim=32,
        )
    )


def _tiny_unet():
    """A two-block UNet (one with cross-attention to the 32-wide text embeddings)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=16,
    )


def _tiny_vae():
    """A four-block VAE: 64×64 images to 8×8 latents, as in Stable Diffusion (÷8)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=64,
    )


def is_tiny_model(directory: str | Path) -> bool:
    """True when `directory` holds a pipeline this module built (random weights)."""
    return (Path(directory) / TINY_MODEL_MARKER).is_file()
