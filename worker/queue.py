"""Putting runs on the render queue; used by the API (submit) and the reaper (re-enqueue)."""

from __future__ import annotations

from celery import Celery

from .celery_app import RENDER_QUEUE, RENDER_TASK


def enqueue_render(app: Celery, run_id: str, attempt: int) -> None:
    """One message per delivery; `attempt` lets a stale redelivery recognise itself."""
    app.send_task(RENDER_TASK, args=[run_id, attempt], queue=RENDER_QUEUE)
