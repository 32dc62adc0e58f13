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
from functools import cached_property

from storage.images import ImageStore, make_image_store
from storage.redis_client import make_redis
from storage.runs import RunStore
from storage.settings import Settings, get_settings

log = logging.getLogger(__name__)


class ModelUnavailable(Exception):
    """The model asked for could not be loaded."""


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self._pipelines: dict[str, object] = {}
        self._lock = threading.Lock()

    @cached_property
    def runs(self) -> RunStore:
        return RunStore(make_redis(self.settings), self.settings.retention_seconds)

    @cached_property
    def images(self) -> ImageStore:
        store = make_image_store(self.settings)
        store.prepare()
        return store

    @cached_property
    def placement(self):
        from pipelines.device import choose_placement

        return choose_placement(self.settings.device)

    def text_to_image(self, model_id: str):
        """The loaded pipeline for `model_id` (the default model when empty), loading it once."""
        model = model_id or self.settings.default_model
        with self._lock:
            pipeline = self._pipelines.get(model)
            if pipeline is None:
                from pipelines.text_to_image import TextToImagePipeline

                started = time.perf_counter()
                try:
                    pipeline = TextToImagePipeline(model, self.placement)
                except Exception as exc:
                    raise ModelUnavailable(f"model {model!r} could not be loaded: {exc}") from exc
                log.info("model %s loaded in %.2fs", model, time.perf_counter() - started)
                self._pipelines[model] = pipeline
            return pipeline

    def warm(self) -> None:
        """Load the default model and open the stores before the first job arrives."""
        self.runs.redis.ping()
        _ = self.images
        if self.settings.default_model:
            self.text_to_image("")


_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    global _runtime
    if _runtime is None or _runtime.worker_id.rsplit(":", 1)[1] != str(os.getpid()):
        _runtime = Runtime(get_settings())  # a forked child starts its own
    return _runtime
