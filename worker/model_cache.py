"""Warm diffusers pipelines of a worker process: an LRU of base models bounded by bytes.

One entry per base model holds its text-to-image pipeline; image-to-image and inpainting
pipelines are built from it with diffusers' `from_pipe`, which shares every component (UNet,
VAE, text encoder) by reference, so switching operation on a loaded base loads nothing.
LoRAs are loaded once per base as named peft adapters and switched per job with
`set_adapters` (or switched off), never by reloading the base. A diffusion model that is not a
base (InstructPix2Pix) is held in the same LRU and budget, as loaded (`held`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger(__name__)


def pipeline_bytes(pipe) -> int:
    """Bytes of weights a diffusers pipeline holds (parameters and buffers of its modules)."""
    import torch

    total = 0
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            total += sum(t.numel() * t.element_size() for t in component.parameters())
            total += sum(t.numel() * t.element_size() for t in component.buffers())
    return total


def _release_memory() -> None:
    """Give an evicted model's memory back now (CUDA's caching allocator would keep it)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass
class CachedBase:
    source: str
    base: object  # the text-to-image pipeline everything else is derived from
    bytes: int
    derived: dict[str, object] = field(default_factory=dict)
    loras: set[str] = field(default_factory=set)
    active: tuple = ()


@dataclass
class CacheStats:
    loads: int = 0
    evictions: int = 0
    derived: int = 0
    lora_loads: int = 0
    load_seconds: float = 0.0


class ModelCache:
    def __init__(self, loader: Callable[[str], object], max_bytes: int) -> None:
        self.loader, self.max_bytes = loader, max_bytes
        self.entries: OrderedDict[str, CachedBase] = OrderedDict()
        self.stats = CacheStats()
        self._lock = threading.RLock()

    def pipe(self, source: str, task: str, loras: dict[str, tuple[str, float]] | None = None):
        """The pipeline for `task` ("text-to-image", "image-to-image", "inpaint") on base
        `source`, with exactly `loras` ({adapter id: (path, weight)}) active."""
        with self._lock:
            entry = self._entry(source)
            pipe = entry.base if task == "text-to-image" else self._derived(entry, task)
            self._set_loras(entry, loras or {})
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
        # Evict least recently used bases until the new one fits (the new one always stays).
        # Its size is known only once loaded, so during a load the old ones are still held.
        while self.entries and sum(e.bytes for e in self.entries.values()) + size > self.max_bytes:
            evicted_source, _ = self.entries.popitem(last=False)
            self.stats.evictions += 1
            _release_memory()
            log.info("evicted model %s to stay within %d bytes", evicted_source, self.max_bytes)
        entry = self.entries[source] = CachedBase(source=source, base=base, bytes=size)
        return entry

    def _derived(self, entry: CachedBase, task: str):
        pipe = entry.derived.get(task)
        if pipe is None:
            from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

            auto = {"image-to-image": AutoPipelineForImage2Image, "inpaint": AutoPipelineForInpainting}[task]
            pipe = auto.from_pipe(entry.base)
            pipe.set_progress_bar_config(disable=True)
            entry.derived[task] = pipe
            self.stats.derived += 1
        return pipe

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
