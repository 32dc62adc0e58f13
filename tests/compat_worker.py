"""A worker without a model, for fast-tier tests of the synchronous routes (the dialects,
api/compat/): a thread of this process that claims each queued run, makes plain images of the
sizes and count its typed request says it renders (the request's own `output_sizes`, exact
crop and social-format labels), and stores and completes them with the worker's own
`store_images` and `RunStore.complete` (charged, assets, the caller's `output` destination).
What is checked is everything but the pixels; the real pipelines have their own tests."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from PIL import Image

from api.services import Services
from pipelines.base import GeneratedImage
from pipelines.registry import OPERATIONS
from core.problems import Problem
from storage.destinations import OutputTarget, parse_output
from storage.records import RunRecord
from storage.runs import RUN_PREFIX
from worker.finishing import store_images


class MemoryBucket:
    """An S3 client's put_object, kept in memory: what a run wrote to the caller's destination."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str) -> None:
        self.objects[(Bucket, Key)] = Body


class FakeWorker:
    def __init__(self, services: Services, fails: str = "FAIL") -> None:
        self.services = services
        self.fails = fails  # a run whose prompt contains it fails, as a render that raised
        self.bucket = MemoryBucket()
        self.rendered: list[RunRecord] = []
        self._stop = threading.Event()
        self._uploads = ThreadPoolExecutor(1)  # the finisher's upload threads (thumbnails)
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "FakeWorker":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self._uploads.shutdown(wait=False)

    def _loop(self) -> None:
        runs = self.services.runs
        while not self._stop.wait(0.01):
            for key in runs.redis.scan_iter(f"{RUN_PREFIX}*", _type="hash"):
                record = runs.get(key.removeprefix(RUN_PREFIX))
                if record is not None and record.status.value == "queued":
                    try:
                        self.render(record)
                    except Exception as exc:  # a broken stand-in fails the run at once, never leaves it queued
                        self.services.runs.fail(record.run_id, record.attempt, Problem.of(
                            "internal-error", 500, detail=f"the fake worker raised {type(exc).__name__}: {exc}"))

    def render(self, record: RunRecord) -> None:
        runs = self.services.runs
        if runs.claim(record.run_id, record.attempt, "fake-worker", 30) != "claimed":
            return
        request = OPERATIONS[record.operation].request.model_validate(record.request)
        if self.fails in str(record.request.get("prompt", "")):
            runs.fail(record.run_id, record.attempt, Problem.of("internal-error", 500, detail="the render raised"))
            return
        inputs = {slot: self._size(asset_id) for slot, asset_id in request.input_assets().items()}
        sizes, _ = request.output_sizes(inputs)
        formats = getattr(request, "formats", None)
        generated = []
        for index, size in enumerate(sizes):
            image = Image.new("RGB", size, (40 * index % 256, 90, 160))
            if hasattr(request, "exact_crop"):
                image = request.exact_crop(image)
            item = GeneratedImage(image=image, seed=(getattr(request, "seed", None) or 0) + index)
            if formats:
                fmt = formats[index]
                item.labels = {"platform": fmt.platform, "format_id": fmt.format_id, "format_name": fmt.name}
                if request.output_format == "jpg":
                    out = io.BytesIO()
                    image.save(out, format="JPEG")
                    item.encoded, item.content_type = out.getvalue(), "image/jpeg"
            generated.append(item)
        runtime = SimpleNamespace(images=self.services.images, assets=self.services.assets, uploads=self._uploads)
        stored = store_images(runtime, record, generated, self._target(record))
        runs.complete(record.run_id, record.attempt, stored, {"total_seconds": 0.01})
        self.rendered.append(record)

    def _size(self, asset_id: str) -> tuple[int, int]:
        asset = self.services.assets.get(asset_id)
        return asset.width, asset.height

    def _target(self, record: RunRecord) -> OutputTarget | None:
        if not record.output:
            return None
        name, folder = parse_output(record.output)
        return OutputTarget(self.services.destinations.get(record.tenant, name), folder, self.bucket)


def wait_until(condition, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
