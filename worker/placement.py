"""The worker's settings as a placement: device, dtype and the tuning options that
pipelines/device.py applies to every diffusion model the worker loads (docs/deployment.md#on-gpus).

pipelines/ reads no settings; this is where the worker hands them over. Call it in the render
process (after the fork): it asks CUDA whether a device is there.
"""

from __future__ import annotations

from core.settings import Settings


def optimisations_for(settings: Settings):
    from pipelines.device import Optimisations

    return Optimisations(
        channels_last=settings.channels_last,
        vae_tiling=settings.vae_tiling,
        vae_tiling_pixels=settings.vae_tiling_pixels,
        vae_slicing=settings.vae_slicing,
        torch_compile=settings.torch_compile,
        compile_mode=settings.compile_mode,
        compile_shapes=settings.compile_sizes,
    )


def placement_for(settings: Settings):
    """`choose_placement` with the settings' device, dtype and optimisations."""
    from pipelines.device import choose_placement

    return choose_placement(settings.device, settings.dtype, optimisations_for(settings))
