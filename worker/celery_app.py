"""The Celery app: broker, reliability settings and queues. Imports no model code, so the
API can import it to enqueue without loading torch."""

from __future__ import annotations

from celery import Celery

from storage.settings import Settings, get_settings

RENDER_QUEUE = "renderq.render"
RENDER_TASK = "renderq.render"
# One queue per priority. A worker lists them high → normal → low and kombu's "priority" queue
# order makes every fetch (BRPOP over the three lists, in that order) take the first non-empty
# one; with no prefetch, a worker asks again only when it is free, so a high run submitted
# behind a thousand low ones is the next one any free worker starts.
RENDER_QUEUES = {"high": RENDER_QUEUE + ".high", "normal": RENDER_QUEUE, "low": RENDER_QUEUE + ".low"}
WEBHOOK_QUEUE = "renderq.webhooks"
WEBHOOK_TASK = "renderq.webhook.deliver"
DEFAULT_WORKER_QUEUES = ",".join(RENDER_QUEUES.values())


def make_celery(settings: Settings) -> Celery:
    app = Celery("renderq", broker=settings.effective_broker_url, include=["worker.tasks", "worker.webhooks"])
    app.conf.update(
        # A render is acknowledged only when it has finished, and a worker that dies mid-render
        # hands its message back instead of swallowing it.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # Take one render at a time: a prefetched message would wait behind the current render
        # while another worker sits idle.
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,
        task_soft_time_limit=settings.soft_time_limit,
        task_time_limit=settings.hard_time_limit,
        # kombu redelivers unacked messages after this; above the hard limit, so a render still
        # in progress is never handed to a second worker. Dead workers are detected sooner by
        # the heartbeat reaper (worker/reaper.py).
        broker_transport_options={"visibility_timeout": settings.visibility_timeout, "queue_order_strategy": "priority"},
        broker_connection_retry_on_startup=True,
        task_default_queue=RENDER_QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


app = make_celery(get_settings())
