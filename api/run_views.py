"""Turning a stored run record into what callers see: timestamps, estimates, signed URLs."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from fastapi import Response

from core.problems import ProblemError

from storage.images import url_lifetime
from storage.previews import preview_url
from storage.prices import credits
from storage.records import RunRecord, RunStatus
from storage.redis_ops import Op, run, run_async
from storage.render_stats import RenderStats

from .delivery_options import WebhookView
from .schemas import ImageView, RunView
from .services import Services


def _when(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, tz=timezone.utc) if epoch else None


def estimate_seconds(record: RunRecord, stats: RenderStats, seconds_ahead: float = 0.0, workers: int = 1) -> float | None:
    """Time until the run should be done, from what the workers measure (seconds per denoising
    step at this size, per-run overhead): a queued run waits for the work ahead of it (queued
    runs, and what the busy workers still hold) shared among the workers, then takes its own.
    None once the run has ended."""
    if record.status.is_final:
        return None
    remaining = stats.run_seconds(record.request, record.progress, record.operation)
    return round(max(remaining + seconds_ahead / max(workers, 1), 0.01), 3)


def run_view(record: RunRecord, services: Services, fresh_estimate: bool = False) -> RunView:
    """For sync routes: the Redis reads on the calling thread."""
    return run(services.runs.redis, run_view_op(record, services, fresh_estimate))


async def run_view_async(record: RunRecord, services: Services, fresh_estimate: bool = False) -> RunView:
    """For async routes: the Redis reads on the event loop (redis.asyncio)."""
    return await run_async(services.async_redis, run_view_op(record, services, fresh_estimate))


def run_view_op(record: RunRecord, services: Services, fresh_estimate: bool = False) -> Op[RunView]:
    """The view, as an operation (storage/redis_ops.py): a finished run needs no Redis at all;
    a queued or running one reads its estimate's inputs (`fresh_estimate`, a submit's answer:
    what the workers hold read now, not a cached view of it)."""
    images = _image_views(record, services)
    estimated, position = None, None
    if not record.status.is_final:  # a finished run has no estimate: no Redis reads for one
        estimated, position = yield from _estimate_op(record, services, fresh_estimate)
    return RunView(
        run_id=record.run_id,
        status=record.status,
        operation=record.operation,
        model_id=record.model_id,
        progress=record.progress,
        estimated_time=estimated,
        created_at=_when(record.created_at),
        started_at=_when(record.started_at),
        completed_at=_when(record.completed_at),
        expires_at=_when(record.expires_at),
        attempt=record.attempt,
        request=record.request | {"model_id": record.model_id} | ({"loras": record.loras} if record.loras else {}),
        image_url=images[0].url if images else None,
        **_preview_fields(record, services),
        images=images,
        timings=record.timings,
        error=record.error,
        priority=record.priority,
        queue_position=position[0] if position else None,
        batch_id=record.batch_id,
        start_deadline=_when(record.start_deadline),
        cancel_requested=record.cancel_requested,
        retry_of=record.retry_of,
        webhook=_webhook_view(record),
        output=record.output,
        template_id=record.template_id,
        style_preset=record.style_preset,
        input_prompt=record.input_prompt,
        credits_estimated=credits(record.credits_estimate),
        credits_used=credits(record.credits_used),
        credits_remaining=credits(record.credits_remaining),
    )


def _preview_fields(record: RunRecord, services: Services) -> dict:
    """preview_url and preview_step of a running run that has a preview (storage/previews.py)."""
    if record.status != RunStatus.running or record.preview_step is None:
        return {}
    settings = services.settings
    url, _ = preview_url(settings.public_base_url, settings.url_secret.get_secret_value(), record.run_id, record.preview_id)
    return {"preview_url": url, "preview_step": record.preview_step}


def _image_views(record: RunRecord, services: Services) -> list[ImageView]:
    """A completed run's images, each with a URL signed now (none once the run has expired);
    no Redis reads."""
    images: list[ImageView] = []
    if record.status == RunStatus.completed:
        now = time.time()
        lifetime = url_lifetime(services.settings, record.expires_at, now)
        for image in record.images:
            if image.object_uri:  # in the tenant's own bucket (`output`): nothing of ours to sign
                images.append(ImageView(object_key=image.key, **image.model_dump(exclude={"key", "thumbnail_key"})))
                continue
            url, url_expires = services.urls.sign(image.key, lifetime, now) if lifetime > 0 else (None, None)
            thumb = image.thumbnail_key
            images.append(
                ImageView(
                    url=url,
                    url_expires_at=_when(url_expires) if url else None,
                    thumbnail_url=services.urls.sign(thumb, lifetime, now)[0] if url and thumb else None,
                    **image.model_dump(exclude={"key", "thumbnail_key"}),
                )
            )
    return images


def _estimate_op(record: RunRecord, services: Services, fresh: bool = False) -> Op[tuple[float | None, tuple[int, float] | None]]:
    """(estimated seconds, queue position) of a run not finished yet: the render stats, then,
    for a queued run, its place in the queue, and the work the busy workers hold only when
    there is work ahead of it. All of its worker pool's: its queue, workers and render speed."""
    stats = yield from services.estimates.stats(record.pool)
    position = None
    if record.status == RunStatus.queued:
        position = yield from services.runs.index.queue_position_op(record, stats)
    seconds_ahead, workers = 0.0, 1
    if position:
        running_seconds, workers = yield from services.estimates.running(stats, record.pool, record.run_id if fresh else None)
        seconds_ahead = position[1] + running_seconds
    return estimate_seconds(record, stats, seconds_ahead, workers), position


def _webhook_view(record: RunRecord) -> WebhookView | None:
    if record.webhook is None:
        return None
    return WebhookView(
        url=record.webhook.url,
        events=record.webhook.events,
        attempts=record.webhook_attempts,
        last_status_code=record.webhook_last_status,
    )


def view_response(view: RunView, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """The view as JSON, serialized once: returned as a Response, FastAPI skips validating and
    serializing it again against the route's response_model (which still documents it)."""
    return Response(view.model_dump_json(), status_code=status_code, headers=headers, media_type="application/json")


def missing_run_op(services: Services, run_id: str) -> Op[ProblemError]:
    """The problem for a run id whose record is not there: 410 Gone for a run of the caller's
    that expired (its tombstone, storage/tombstones.py), 404 for an id that never existed (or
    is another tenant's, or expired longer ago than RENDERQ_TOMBSTONE_SECONDS)."""
    if (yield from services.runs.tombstones.gone_op(run_id)):
        return ProblemError("run-expired", 410, detail=f"run {run_id} has expired: its record and images are gone")
    return ProblemError("not-found", 404, detail=f"no run {run_id}")


def missing_run(services: Services, run_id: str) -> ProblemError:
    return run(services.runs.redis, missing_run_op(services, run_id))
