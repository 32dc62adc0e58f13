"""What a worker process holds between jobs: stores and the warm pipeline(s).

Created once per process. In the Celery parent (reaper, hard-timeout hook) only the stores
are touched; models load in the render process, after the fork.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property

from storage.assets import AssetStore
from storage.destinations import DestinationClients, DestinationStore, OutputTarget, Vault
from storage.image_codec import load_image
from storage.image_store import ImageStore
from storage.images import make_image_store
from core.queue import DEFAULT_POOL
from storage.models_catalog import DEFAULT_MODEL_ID, ModelCatalog
from storage.prices import PriceTable
from storage.redis_client import make_redis
from storage.runs import RunStore
from core.settings import Settings, get_settings

log = logging.getLogger(__name__)


class ModelUnavailable(Exception):
    """The model asked for could not be loaded."""


class InputMissing(Exception):
    """An input asset of the run is gone (expired between submit and render)."""


# Kinds as big as a base (pipelines/loading.py LOADERS): they share the base models' LRU and
# byte budget; the other kinds are small and kept once loaded.
LRU_KINDS = {"instruct-pix2pix"}


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        # Upscalers, segmenters, depth estimators (small, kept); InstructPix2Pix is big: `models`
        # holds it (LRU). See LOADERS.
        self._models: dict[str, object] = {}
        self._lock = threading.RLock()

    @cached_property
    def runs(self) -> RunStore:
        store = RunStore(make_redis(self.settings), self.settings.retention_seconds, self.settings.tombstone_seconds,
                         fair_slots=self.settings.fair_share_slots)
        store.prices = PriceTable.from_settings(self.settings)  # charges completed runs for what they rendered
        return store

    @cached_property
    def images(self) -> ImageStore:
        store = make_image_store(self.settings)
        store.prepare()
        return store

    @cached_property
    def uploads(self) -> ThreadPoolExecutor:
        """Threads for uploads that run beside another (a run's thumbnail beside its image)."""
        return ThreadPoolExecutor(max_workers=2, thread_name_prefix="upload")

    @cached_property
    def destinations(self) -> DestinationClients:
        """Tenants' own buckets (`output`), one S3 client each, kept in this process."""
        store = DestinationStore(self.runs.redis, Vault.from_settings(self.settings))
        return DestinationClients(store, self.settings.destination_allow_private, self.settings.s3_max_attempts)

    def output_target(self, record) -> OutputTarget | None:
        """Where the run's images go when its request named an `output`; None: our own store."""
        return self.destinations.target(record.tenant, record.output) if record.output else None

    @cached_property
    def placement(self):
        """Device, dtype and tuning (RENDERQ_DTYPE, VAE tiling, compile, …) of every model loaded here."""
        from .placement import placement_for

        return placement_for(self.settings)

    @cached_property
    def assets(self) -> AssetStore:
        return AssetStore(self.runs.redis, self.images, self.settings.retention_seconds)

    @cached_property
    def catalog(self) -> ModelCatalog:
        return ModelCatalog.from_settings(self.settings)

    @cached_property
    def models(self):
        """The LRU of warm base models (see worker/model_cache.py)."""
        from pipelines.loading import load_controlnet, load_text_to_image

        from .model_cache import ModelCache

        return ModelCache(lambda source: self._counted(source, load_text_to_image(source, self.placement)),
                          self.settings.model_cache_bytes,
                          controlnet_loader=lambda source: self._counted(source, load_controlnet(source, self.placement)))

    def _counted(self, source: str, model):
        """`model`, just loaded from `source`, counted in /metrics per pool, worker and model (a
        pool's workers load only its models: docs/deployment.md#worker-pools)."""
        from core.metrics import count_model_load

        model_id = next((entry.id for entry in self.catalog.entries.values() if entry.source == source), source)
        try:
            count_model_load(self.runs.redis, self.pool, self.worker_id, model_id)
        except Exception:  # a count lost to a Redis outage is not a reason to fail the render
            log.warning("could not count the load of model %s", model_id)
        log.info("model %s loaded by worker %s of pool %s", model_id, self.worker_id, self.pool,
                 extra={"model_id": model_id, "pool": self.pool})
        return model

    @property
    def pool(self) -> str:
        """The worker pool this process serves (`renderq worker --pool`)."""
        return self.settings.worker_pool or DEFAULT_POOL

    def _entry(self, model_id: str, kind: str):
        entry = self.catalog.get(model_id or DEFAULT_MODEL_ID, kind) if model_id or kind == "base" else self.catalog.first(kind)
        if entry is None:
            raise ModelUnavailable(f"no {kind} model {model_id or '(default)'!r} is configured")
        return entry

    def pipeline_for(self, operation, model_id: str, request=None, loras: dict[str, float] | None = None):
        """The runnable pipeline of `operation` on `model_id` (a catalog id; the default when
        empty) with `loras` ({lora id: weight}) active, and the companion models `request` (its
        defaults when None) asks for: a search edit's text-segmentation model (`mask_model()`,
        the first served when empty), the ControlNet, IP-Adapter and depth model of its
        `control_needs()`. Loads only what is not warm yet, and nothing for a request that needs
        no model (a fast upscale)."""
        from pipelines.registry import pipeline_class

        build = pipeline_class(operation)
        request = request if request is not None else operation.request.model_construct()
        if operation.model_kind == "base":
            entry = self._entry(model_id, "base")
            if self.settings.test_pipelines and operation.name == "text-to-image":
                from devkit.sleep import SleepPipeline, is_sleep_model

                if is_sleep_model(entry.source):  # benchmarks: the service around a fixed-cost render
                    return SleepPipeline(None, entry.source)
            adapters = {name: (self._entry(name, "lora").source, weight) for name, weight in (loras or {}).items()}
            controlnet, ip_adapter, options = self._control_models(request.control_needs(), model_id)
            started = time.perf_counter()
            try:
                pipe = self.models.pipe(entry.source, operation.diffusers_task, adapters, controlnet, ip_adapter)
            except Exception as exc:
                raise ModelUnavailable(f"model {model_id or entry.source!r} could not be loaded: {exc}") from exc
            log.debug("pipeline %s/%s ready in %.3fs", entry.id, operation.name, time.perf_counter() - started)
            if operation.mask_model_kind:
                options["segmenter"] = self._model(self._entry(request.mask_model(), operation.mask_model_kind))
            return build(pipe, entry.source if entry.id == DEFAULT_MODEL_ID else entry.id, **options)
        if operation.model_kind is None:  # model-free image code (social formats)
            return build()
        no_upscaler = not model_id and self.catalog.first("upscaler") is None
        if operation.model_kind == "upscaler" and (not request.uses_model or no_upscaler):
            return build()  # fast (Lanczos) mode needs no model
        entry = self._entry(model_id, operation.model_kind)
        return build(self._model(entry), entry.id, **self._options(operation, entry))

    def _control_models(self, needs, base_id: str) -> tuple[str | None, tuple[str, dict] | None, dict]:
        """(ControlNet source, (IP-Adapter source, load options), pipeline options) for `needs`
        on the base model `base_id`."""
        if needs is None:
            return None, None, {}
        controlnet, ip_adapter, options = None, None, {}
        if needs.control_types:
            entry = self.catalog.companion("controlnet", base_id, needs.control_types, needs.controlnet_id)
            if entry is None:
                wanted = repr(needs.controlnet_id) if needs.controlnet_id else " or ".join(needs.control_types)
                raise ModelUnavailable(f"no {wanted} ControlNet for base {base_id or DEFAULT_MODEL_ID!r} is configured")
            controlnet, options["control_type"] = entry.source, entry.options["control_type"]
        if needs.ip_adapter:
            entry = self.catalog.companion("ip-adapter", base_id, model_id=needs.ip_adapter_id)
            if entry is None:
                wanted = f"{needs.ip_adapter_id!r} " if needs.ip_adapter_id else ""
                raise ModelUnavailable(f"no {wanted}IP-Adapter for base {base_id or DEFAULT_MODEL_ID!r} is configured")
            load_options = {k: v for k, v in entry.options.items() if k in ("subfolder", "weight_name", "image_encoder_folder")}
            ip_adapter = (entry.source, load_options)
        if needs.depth_estimator:
            options["depth_estimator"] = self._model(self._entry("", "depth-estimator"))
        return controlnet, ip_adapter, options

    @staticmethod
    def _options(operation, entry) -> dict:
        if operation.model_kind == "background-removal":
            return {k: v for k, v in entry.options.items() if k in ("background_label", "input_size")}
        return {}

    def _model(self, entry):
        """The loaded model of a catalog entry that is not a base (pipelines/loading.py LOADERS),
        loaded once."""
        from pipelines.loading import LOADERS

        def load(source: str):
            loader = LOADERS[entry.kind]
            try:
                return self._counted(source, loader(source, self.placement))
            except Exception as exc:
                raise ModelUnavailable(f"model {entry.id!r} could not be loaded: {exc}") from exc

        if entry.kind in LRU_KINDS:
            return self.models.held(entry.source, load)
        with self._lock:
            if entry.id not in self._models:
                self._models[entry.id] = load(entry.source)
            return self._models[entry.id]

    def preview_decoder(self, base_id: str):
        """The catalog's tiny autoencoder for live previews of renders on `base_id` (the first
        preview-decoder that fits it), loaded once; None without one, or when it cannot be loaded
        (previews then use the linear map: never a failed run for a preview)."""
        entry = self.catalog.companion("preview-decoder", base_id)
        if entry is None:
            return None
        try:
            return self._model(entry)
        except ModelUnavailable:
            log.warning("preview decoder %s unavailable; previews use the linear map", entry.id, exc_info=True)
            return None

    def load_inputs(self, request) -> dict:
        """Decoded input images of a request ({"image": …, "mask": …}), from their assets."""
        images = {}
        for slot, asset_id in request.input_assets().items():
            asset = self.assets.get(asset_id)
            if asset is None:
                raise InputMissing(f"input asset {asset_id} ({slot}) has expired or never existed")
            images[slot] = load_image(self.assets.read(asset))
        return images

    def text_to_image(self, model_id: str):
        """The text-to-image pipeline of `model_id` (the default model when empty)."""
        from pipelines.registry import OPERATIONS

        return self.pipeline_for(OPERATIONS["text-to-image"], model_id)

    def record_gpu_memory(self) -> None:
        """GPU memory of this render process, for /metrics; nothing on CPU-only workers."""
        if "placement" not in self.__dict__:  # no model loaded here yet: nothing on any GPU
            return
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            from core.metrics import record_gpu_memory

            record_gpu_memory(self.runs.redis, self.worker_id, torch.cuda.memory_allocated(), torch.cuda.memory_reserved())

    def warm(self) -> None:
        """Open the stores and load the models before the first job arrives: a named pool's
        every base model, the default pool's default model (it takes the rest of the catalog,
        loaded when first asked for)."""
        self.runs.redis.ping()
        _ = self.images, self.catalog
        if self.pool != DEFAULT_POOL:
            for entry in self.catalog.in_pool(self.pool):
                if entry.kind == "base":
                    self.text_to_image(entry.id)
        elif self.settings.default_model and self.catalog.pool_of("") == DEFAULT_POOL:
            self.text_to_image("")


_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    global _runtime
    if _runtime is None or _runtime.worker_id.rsplit(":", 1)[1] != str(os.getpid()):
        _runtime = Runtime(get_settings())  # a forked child starts its own
    return _runtime
