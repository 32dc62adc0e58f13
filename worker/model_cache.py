"""Warm diffusers pipelines of a worker process: an LRU of base models bounded by bytes.

One entry per base model holds its text-to-image pipeline; image-to-image and inpainting
pipelines are built from it with diffusers' `from_pipe`, which shares every component (UNet,
VAE, text encoder) by reference, so switching operation on a loaded base loads nothing.
LoRAs are loaded once per base as named peft adapters and switched per job with
`set_adapters` (or switched off), never by reloading the base. A diffusion model that is not a
base (InstructPix2Pix) is held in the same LRU and budget, as loaded (`held`).

ControlNet pipelines are derived the same way (`from_pipe(base, controlnet=…)`); each ControlNet
is loaded once per process, shared by the bases that use it, counted in the byte budget and
dropped with the last base using it. An IP-Adapter is loaded once per base (its weights count
in that base's bytes), but it rewires the shared UNet (attention processors,
`encoder_hid_proj`), after which any call without an image prompt raises. So it is switched like a LoRA: on for the jobs that ask for it, off (the UNet's
own processors back, no image projection) for every other job, without reloading either way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger(__name__)


def module_bytes(*modules) -> int:
    """Bytes of weights the torch modules among `modules` hold (parameters and buffers), each
    module counted once."""
    import torch

    unique = {id(m): m for m in modules if isinstance(m, torch.nn.Module)}.values()
    return sum(t.numel() * t.element_size() for m in unique for t in [*m.parameters(), *m.buffers()])


def pipeline_bytes(pipe) -> int:
    """Bytes of weights a diffusers pipeline holds (parameters and buffers of its modules)."""
    return module_bytes(*pipe.components.values())


def _release_memory() -> None:
    """Give an evicted model's memory back now (CUDA's caching allocator would keep it)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass
class IPAdapterState:
    """An IP-Adapter loaded into a base's UNet, and what switching it on and off swaps."""

    source: str
    plain_processors: dict  # the UNet's attention processors without the adapter
    adapter_processors: dict
    image_projection: object  # the UNet's encoder_hid_proj with the adapter
    hid_dim_type: str
    image_encoder: object
    feature_extractor: object
    bytes: int  # image encoder, image projection, adapter attention weights
    active: bool = True


@dataclass
class CachedBase:
    source: str
    base: object  # the text-to-image pipeline everything else is derived from
    bytes: int  # its own weights and its IP-Adapter's; ControlNets are counted once, in the cache
    derived: dict[str, object] = field(default_factory=dict)
    controlnets: set[str] = field(default_factory=set)  # sources of the ControlNets its pipelines use
    loras: set[str] = field(default_factory=set)
    active: tuple = ()
    ip_adapter: IPAdapterState | None = None


@dataclass
class CacheStats:
    loads: int = 0
    evictions: int = 0
    derived: int = 0
    lora_loads: int = 0
    controlnet_loads: int = 0
    ip_adapter_loads: int = 0
    load_seconds: float = 0.0


class ModelCache:
    def __init__(self, loader: Callable[[str], object], max_bytes: int,
                 controlnet_loader: Callable[[str], object] | None = None) -> None:
        self.loader, self.max_bytes, self.controlnet_loader = loader, max_bytes, controlnet_loader
        self.entries: OrderedDict[str, CachedBase] = OrderedDict()
        self.controlnets: dict[str, tuple[object, int]] = {}  # source: (ControlNetModel, bytes)
        self.stats = CacheStats()
        self._lock = threading.RLock()

    def pipe(self, source: str, task: str, loras: dict[str, tuple[str, float]] | None = None,
             controlnet: str | None = None, ip_adapter: tuple[str, dict] | None = None):
        """The pipeline for `task` ("text-to-image", "image-to-image", "inpaint") on base
        `source`, through the ControlNet `controlnet` (a source) when given, with exactly `loras`
        ({adapter id: (path, weight)}) active and the IP-Adapter `ip_adapter` ((source,
        `load_ip_adapter` options)) on, or every IP-Adapter off when None."""
        with self._lock:
            entry = self._entry(source)
            plain = task == "text-to-image" and controlnet is None
            pipe = entry.base if plain else self._derived(entry, task, controlnet)
            self._set_loras(entry, loras or {})
            self._set_ip_adapter(entry, pipe, ip_adapter)
            return pipe

    def held(self, source: str, loader: Callable[[str], object]):
        """A diffusers pipeline that is not a base (InstructPix2Pix: its UNet takes 8 channels),
        loaded by `loader` and held in the same LRU and byte budget; nothing is derived from it."""
        with self._lock:
            return self._entry(source, loader).base

    def _entry(self, source: str, loader: Callable[[str], object] | None = None) -> CachedBase:
        entry = self.entries.get(source)
        if entry is not None:
            self.entries.move_to_end(source)
            return entry
        started = time.perf_counter()
        base = (loader or self.loader)(source)
        size = pipeline_bytes(base)
        self.stats.loads += 1
        self.stats.load_seconds += time.perf_counter() - started
        # A load is rare and slow: say so (bench/ reads this line to time cold starts).
        log.info("model %s loaded in %.2fs (%.0f MB of weights)", source, time.perf_counter() - started, size / 1e6)
        # Its size is known only once loaded, so during a load the old ones are still held.
        self._make_room(size)
        entry = self.entries[source] = CachedBase(source=source, base=base, bytes=size)
        return entry

    def held_bytes(self) -> int:
        """Bytes of weights held: every base with its IP-Adapter, every ControlNet once."""
        return sum(e.bytes for e in self.entries.values()) + sum(size for _, size in self.controlnets.values())

    def _make_room(self, size: int, keep: str | None = None) -> None:
        """Evict least recently used bases (never `keep`, the base in use) until `size` more
        bytes fit; a ControlNet goes with the last base whose pipelines used it."""
        while self.entries and self.held_bytes() + size > self.max_bytes:
            evicted_source = next(iter(self.entries))
            if evicted_source == keep:
                break
            del self.entries[evicted_source]
            used = set().union(*(e.controlnets for e in self.entries.values()))
            for unused in self.controlnets.keys() - used:
                del self.controlnets[unused]
            self.stats.evictions += 1
            _release_memory()
            log.info("evicted model %s to stay within %d bytes", evicted_source, self.max_bytes)

    def _derived(self, entry: CachedBase, task: str, controlnet: str | None = None):
        key = f"{task}+{controlnet}" if controlnet else task
        pipe = entry.derived.get(key)
        if pipe is None:
            from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, AutoPipelineForText2Image

            auto = {"text-to-image": AutoPipelineForText2Image, "image-to-image": AutoPipelineForImage2Image,
                    "inpaint": AutoPipelineForInpainting}[task]
            extra = {"controlnet": self._controlnet(entry, controlnet)} if controlnet else {}
            pipe = auto.from_pipe(entry.base, **extra)  # AutoPipeline picks the ControlNet variant
            pipe.set_progress_bar_config(disable=True)
            entry.derived[key] = pipe
            self.stats.derived += 1
        return pipe

    def _controlnet(self, entry: CachedBase, source: str):
        if source not in self.controlnets:
            model = self.controlnet_loader(source)
            self.stats.controlnet_loads += 1
            size = module_bytes(model)
            self._make_room(size, keep=entry.source)
            self.controlnets[source] = (model, size)
        entry.controlnets.add(source)
        return self.controlnets[source][0]

    def _set_ip_adapter(self, entry: CachedBase, pipe, wanted: tuple[str, dict] | None) -> None:
        state = entry.ip_adapter
        if state is not None and (wanted is None or wanted[0] != state.source):
            self._switch_ip_adapter(entry.base.unet, state, on=False)
            if wanted is not None:  # another adapter: load it in place of this one
                entry.base.image_encoder, entry.ip_adapter = None, None
                entry.bytes -= state.bytes
                state = None
        if wanted is None:
            return
        if state is None:
            state = entry.ip_adapter = self._load_ip_adapter(entry.base, *wanted)
            entry.bytes += state.bytes
            self._make_room(0, keep=entry.source)
        self._switch_ip_adapter(entry.base.unet, state, on=True)
        if pipe is not entry.base and getattr(pipe, "image_encoder", None) is not state.image_encoder:
            # Derived before the adapter was loaded: hand it the image encoder too.
            pipe.register_modules(image_encoder=state.image_encoder, feature_extractor=state.feature_extractor)

    def _load_ip_adapter(self, base, source: str, options: dict) -> IPAdapterState:
        unet = base.unet
        plain = dict(unet.attn_processors)
        base.load_ip_adapter(source, **({"subfolder": "", "image_encoder_folder": "image_encoder"} | options))
        self.stats.ip_adapter_loads += 1
        log.info("IP-Adapter %s loaded", source)
        adapter = dict(unet.attn_processors)
        return IPAdapterState(
            source=source, plain_processors=plain, adapter_processors=adapter,
            image_projection=unet.encoder_hid_proj, hid_dim_type=unet.config.encoder_hid_dim_type,
            image_encoder=base.image_encoder, feature_extractor=base.feature_extractor,
            bytes=module_bytes(base.image_encoder, unet.encoder_hid_proj, *adapter.values()),
        )

    @staticmethod
    def _switch_ip_adapter(unet, state: IPAdapterState, on: bool) -> None:
        if state.active == on:
            return
        unet.set_attn_processor(dict(state.adapter_processors if on else state.plain_processors))
        unet.encoder_hid_proj = state.image_projection if on else None
        unet.config.encoder_hid_dim_type = state.hid_dim_type if on else None  # as unload_ip_adapter does
        state.active = on

    def _set_loras(self, entry: CachedBase, loras: dict[str, tuple[str, float]]) -> None:
        wanted = tuple(sorted((name, weight) for name, (_, weight) in loras.items()))
        if wanted == entry.active:
            return
        for name, (path, _) in loras.items():
            if name not in entry.loras:
                entry.base.load_lora_weights(path, adapter_name=name)
                entry.loras.add(name)
                self.stats.lora_loads += 1
        if wanted:
            entry.base.enable_lora()
            entry.base.set_adapters([name for name, _ in wanted], adapter_weights=[w for _, w in wanted])
        elif entry.loras:
            entry.base.disable_lora()
        entry.active = wanted
