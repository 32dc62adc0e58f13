"""Putting runs on the render queues; used by the API (submit) and the reaper (re-enqueue)."""

from __future__ import annotations

from celery import Celery

from .celery_app import RENDER_QUEUE, RENDER_QUEUES, RENDER_TASK


def enqueue_render(app: Celery, run_id: str, attempt: int, priority: str = "normal") -> None:
    """One message per delivery; `attempt` lets a stale redelivery recognise itself. Each
    priority has its own queue, which workers drain in order (worker/celery_app.py)."""
    app.send_task(RENDER_TASK, args=[run_id, attempt], queue=RENDER_QUEUES.get(priority, RENDER_QUEUE))
