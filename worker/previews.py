"""Publishing live previews off the render thread.

The render loop hands each preview (a small picture decoded from the latents by the pipeline,
pipelines/previews.py) to this process's publisher and goes on at once: a thread encodes it
(JPEG) and publishes it (storage/previews.py: the run's SSE `preview` event, its preview_url,
and a `run.preview` webhook when the caller asked for one). Latest wins: a preview still waiting
when a newer one of the same run comes is dropped, so a slow Redis never holds up a render
or piles up work.
"""

from __future__ import annotations

import io
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable
from PIL import Image

from pipelines.base import ProgressCallback, StepReport
from storage.previews import Preview
from storage.records import RunRecord
from storage.runs import RunStore

from .process_local import ProcessLocal

log = logging.getLogger(__name__)
CONTENT_TYPE = "image/jpeg"
JPEG_QUALITY = 75


@dataclass
class Pending:
    record: RunRecord
    step: int
    total: int
    image: Image.Image


def encode_preview(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


class PreviewPublisher:
    """One per render process (a forked child starts its own: `publisher`)."""

    def __init__(self, runs: RunStore) -> None:
        self.runs = runs
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        threading.Thread(target=self._work, name="previews", daemon=True).start()

    def offer(self, record: RunRecord, step: int, total: int, image: Image.Image) -> None:
        """Hand over a preview of `record`'s run (called on the render thread: never blocks)."""
        with self._lock:
            self._pending[record.run_id] = Pending(record, step, total, image)
            self._idle.clear()
        self._wake.set()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every preview handed over so far is published (tests, benchmarks)."""
        return self._idle.wait(timeout)

    def _work(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while True:
                with self._lock:
                    if not self._pending:
                        self._idle.set()
                        break
                    pending = self._pending.pop(next(iter(self._pending)))
                try:
                    self._publish(pending)
                except Exception:  # a preview is never worth failing anything for
                    log.warning("could not publish a preview of run %s", pending.record.run_id, exc_info=True)

    def _publish(self, pending: Pending) -> None:
        record, image = pending.record, pending.image
        preview = Preview(run_id=record.run_id, id=0, step=pending.step, total_steps=pending.total,
                          width=image.width, height=image.height, content_type=CONTENT_TYPE, data=encode_preview(image))
        preview_id = self.runs.previews.publish(preview, record.attempt)
        webhook = record.webhook
        if preview_id is not None and webhook is not None and "preview" in webhook.events:
            data = preview.event() | {"id": preview_id, "progress": min(99, 100 * pending.step // max(pending.total, 1))}
            self.runs.webhooks.file(webhook.url, "run.preview", data, "renderq:run:" + record.run_id)


_publisher: ProcessLocal[PreviewPublisher] = ProcessLocal()


def publisher(runs: RunStore) -> PreviewPublisher:
    """This process's publisher (started on first use)."""
    return _publisher.get(lambda: PreviewPublisher(runs))


def step_report(runs: RunStore, record: RunRecord, on_progress: ProgressCallback, every: int,
                decoder: Callable[[], Any] | None = None) -> ProgressCallback:
    """A run's step callback: its progress, and a preview every `every` steps when it wants them,
    decoded by `decoder()` (a tiny autoencoder; None: the linear map), asked for only then."""
    if every <= 0 or not record.previews:
        return on_progress
    target = publisher(runs)
    return StepReport(on_progress, lambda step, total, image: target.offer(record, step, total, image), every,
                      decoder() if decoder is not None else None)
