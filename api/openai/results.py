"""A finished run as OpenAI's answer: `created`, `data[]` with `url` or `b64_json`, and the
settings the images were made with. jpeg/webp are converted from the stored PNGs (storage/image_codec.py)."""

from __future__ import annotations

import base64
import time

from core.problems import ProblemError
from storage.image_codec import MEDIA_TYPES, converted
from storage.images import url_lifetime
from storage.records import RunRecord, RunStatus

from ..compat.common import not_finished as compat_not_finished
from ..services import Services
from .fields import ImagesFields



def not_finished(record: RunRecord, waited: float) -> ProblemError:
    """The run is still going: an error naming it, so it can be polled natively. 504, and
    `x-should-retry: false`: OpenAI's SDKs retry a 5xx, which would start another run."""
    return compat_not_finished(record, waited, headers={"x-should-retry": "false"}, openai_code="timeout")


def failed(record: RunRecord) -> ProblemError:
    error = record.error or {}
    detail = error.get("detail") if isinstance(error, dict) else None
    return ProblemError("internal-error", 500, detail=f"the run ended {record.status.value}: {detail or 'no detail'}",
                        run_id=record.run_id, openai_code=f"run_{record.status.value}")


def image_items(services: Services, record: RunRecord, fields: ImagesFields) -> list[dict]:
    """data[] of a completed run (blocking: object storage reads and writes, a thread's work)."""
    output_format = fields.output_format or "png"
    as_b64 = fields.response_format == "b64_json"
    now = time.time()
    lifetime = url_lifetime(services.settings, record.expires_at, now)
    items = []
    for image in record.images:
        key = image.key
        if output_format != "png" or as_b64:
            data = services.images.get(key)
            if output_format != "png":
                data = converted(data, output_format, fields.output_compression)
                if not as_b64:  # stored beside the PNG, under the run's prefix: it expires with the run
                    key = f"{key.rsplit('.', 1)[0]}.{output_format}"
                    services.images.put(key, data, MEDIA_TYPES[output_format])
            if as_b64:
                items.append({"b64_json": base64.b64encode(data).decode()})
                continue
        items.append({"url": services.urls.sign(key, lifetime, now)[0]})
    return items


def background(record: RunRecord) -> str:
    return "transparent" if record.request.get("background") == "transparent" else "opaque"


def answer(services: Services, record: RunRecord, fields: ImagesFields) -> dict:
    if record.status != RunStatus.completed:
        raise failed(record)
    first = record.images[0] if record.images else None
    return {
        "created": int(record.created_at),
        "data": image_items(services, record, fields),
        "background": background(record),
        "output_format": fields.output_format or "png",
        "quality": fields.quality if fields.quality in ("low", "medium", "high") else None,
        "size": f"{first.width}x{first.height}" if first is not None else None,
        "run_id": record.run_id,
    }
