"""Turning a stored run record into what callers see: timestamps, estimates, signed URLs."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from storage.images import url_lifetime
from storage.records import RunRecord, RunStatus

from .schemas import ImageView, RunView
from .services import Services

# Seconds per (step × image × megapixel) assumed before any worker has measured one.
DEFAULT_RENDER_RATE = 1.0


def _when(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, tz=timezone.utc) if epoch else None


def estimate_seconds(record: RunRecord, rate: float) -> float | None:
    """Remaining render time from the workers' measured rate; None once the run has ended."""
    if record.status.is_final:
        return None
    request = record.request
    # Image operations may leave the size to the input image (None here): assume 512².
    units = (
        (request.get("num_inference_steps") or 1)
        * (request.get("num_images") or 1)
        * (request.get("width") or 512)
        * (request.get("height") or 512)
        / 1e6
    )
    remaining = units * rate * (1 - record.progress / 100)
    return round(max(remaining, 0.01), 3)


def run_view(record: RunRecord, services: Services) -> RunView:
    images: list[ImageView] = []
    if record.status == RunStatus.completed:
        now = time.time()
        lifetime = url_lifetime(services.settings, record.expires_at, now)
        for image in record.images:
            url = services.images.signed_url(image.key, lifetime) if lifetime > 0 else None
            images.append(
                ImageView(
                    url=url,
                    url_expires_at=_when(now + lifetime) if url else None,
                    **image.model_dump(exclude={"key"}),
                )
            )
    rate = services.runs.render_rate(DEFAULT_RENDER_RATE)
    return RunView(
        run_id=record.run_id,
        status=record.status,
        operation=record.operation,
        model_id=record.model_id,
        progress=record.progress,
        estimated_time=estimate_seconds(record, rate),
        created_at=_when(record.created_at),
        started_at=_when(record.started_at),
        completed_at=_when(record.completed_at),
        expires_at=_when(record.expires_at),
        attempt=record.attempt,
        request=record.request | {"model_id": record.model_id} | ({"loras": record.loras} if record.loras else {}),
        image_url=images[0].url if images else None,
        images=images,
        timings=record.timings,
        error=record.error,
    )
