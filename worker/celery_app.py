"""The Celery app: broker, reliability settings and queues. Imports no model code, so the
API can import it to enqueue without loading torch."""

from __future__ import annotations

from celery import Celery
from celery.signals import setup_logging

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
        # A render process loads its model before it reports for work (worker_process_init);
        # Celery's default of 4 s kills any process still loading, again and again, so a
        # worker whose render process died (hard time limit, OOM kill) would never recover.
        worker_proc_alive_timeout=settings.render_process_start_timeout,
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


@setup_logging.connect
def _keep_renderq_logging(**_) -> None:
    """Logging is set up by the `renderq` command (storage/logs.py: JSON lines with request and
    run ids); a receiver here stops Celery from installing its own handlers over it."""


app = make_celery(get_settings())
