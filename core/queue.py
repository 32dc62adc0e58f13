"""The queue contract between the API and the workers: queue and task names, the Celery app
that sends to them (it imports no task or model code), and putting runs on the render queues
(the API's submit, the reaper's re-enqueue)."""

from __future__ import annotations

from functools import lru_cache

from celery import Celery
from kombu.serialization import dumps
from kombu.utils.uuid import uuid

from core.logs import request_id_var
from core.sentinel import kombu_broker
from core.settings import Settings

RENDER_QUEUE = "renderq.render"
RENDER_TASK = "renderq.render"
DEFAULT_POOL = "default"
PRIORITIES = ("high", "normal", "low")  # the order a worker lists (and drains) its queues
# One queue per priority. A worker lists them high → normal → low and kombu's "priority" queue
# order makes every fetch (BRPOP over the three lists, in that order) take the first non-empty
# one; with no prefetch, a worker asks again only when it is free, so a high run submitted
# behind a thousand low ones is the next one any free worker starts.
RENDER_QUEUES = {"high": RENDER_QUEUE + ".high", "normal": RENDER_QUEUE, "low": RENDER_QUEUE + ".low"}
WEBHOOK_QUEUE = "renderq.webhooks"
WEBHOOK_TASK = "renderq.webhook.deliver"
DEFAULT_WORKER_QUEUES = ",".join(RENDER_QUEUES.values())


def render_queues(pool: str | None = None) -> dict[str, str]:
    """The render queues (priority → Redis list, high first) of worker pool `pool`: the default
    pool (None, "" or "default") keeps the names above; a pool NAME has renderq.render.NAME.high,
    renderq.render.NAME and renderq.render.NAME.low. These are the lists kombu pushes to and a
    pool's workers (and its autoscaler) watch."""
    if not pool or pool == DEFAULT_POOL:
        return dict(RENDER_QUEUES)
    base = f"{RENDER_QUEUE}.{pool}"
    return {"high": base + ".high", "normal": base, "low": base + ".low"}


def is_render_queue(name: str) -> bool:
    """Whether `name` is a render queue (of any pool and priority): renderq.render[.…]."""
    return name == RENDER_QUEUE or name.startswith(RENDER_QUEUE + ".")


def make_celery(settings: Settings) -> Celery:
    # A redis+sentinel:// broker is kombu's sentinel transport with its `master_name` option.
    broker_url, sentinel_options = kombu_broker(settings.effective_broker_url)
    app = Celery("renderq", broker=broker_url, include=["worker.tasks", "worker.webhooks"])
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
        # polling_interval: how long each BRPOP of an idle worker blocks (kombu's default 1 s). A
        # stopping worker waits for its BRPOP in flight to return (a message taken then is not
        # lost), so this bounds how long an idle worker takes to stop (tests/test_scale_down.py).
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout, "queue_order_strategy": "priority",
            "polling_interval": 0.5, **sentinel_options
        },
        broker_connection_retry_on_startup=True,
        # A broker connection lost (Redis restarting, Sentinel electing a new primary) leaves
        # the render in progress alone: it finishes and records itself in the run records, and
        # the reapers handle its message (Celery 6 would cancel it by default).
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_default_queue=RENDER_QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


# Message header carrying the X-Request-ID of the submit into the worker's logs.
REQUEST_ID_HEADER = "renderq_request_id"
# The run and attempt a render message is for, readable inside Redis (storage/claims.py takes a
# queue's next run without its delivery).
RUN_HEADER, ATTEMPT_HEADER = "renderq_run", "renderq_attempt"


def render_queue(pool: str | None, priority: str) -> str:
    """The list a run of `pool` and `priority` is pushed to (an unknown priority: normal)."""
    queues = render_queues(pool)
    return queues.get(priority, queues["normal"])


def enqueue_render(app: Celery, run_id: str, attempt: int, priority: str = "normal", pool: str | None = None) -> None:
    """One message per delivery; `attempt` lets a stale redelivery recognise itself. Each
    pool and priority has its own queue, which the pool's workers drain in order (make_celery above)."""
    headers = {REQUEST_ID_HEADER: request_id_var.get(), RUN_HEADER: run_id, ATTEMPT_HEADER: attempt}
    app.send_task(RENDER_TASK, args=[run_id, attempt], queue=render_queue(pool, priority), headers=headers)


class _Collected:
    """Stands in for kombu's Redis publish batch: keeps the commands instead of sending them."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, tuple]] = []

    def add(self, name: str, *args) -> None:
        self.commands.append((name, args))


@lru_cache(maxsize=4)
def _redis_channel(app: Celery):
    """A kombu channel of the app's Redis broker, used only to format messages."""
    connection = app.connection_for_write()
    if connection.transport.driver_type != "redis":
        return None
    return connection.default_channel


def render_message(app: Celery, run_id: str, attempt: int, priority: str = "normal",
                   pool: str | None = None) -> tuple[str, str] | None:
    """(Redis list, payload) of the message `enqueue_render` would publish, or None when the
    broker is not Redis. Lets the API write the run record and its message in one Redis
    transaction (one round trip, and never one without the other) instead of a second
    round trip through Celery's producer, which costs more than the rest of a submit.
    Celery builds the task message and kombu encodes it, exactly as `send_task` would;
    it goes to the pool's and priority's render queue directly (the default exchange), where workers read it."""
    channel = _redis_channel(app)
    if channel is None:
        return None
    task_id = uuid()
    headers, properties, body, _ = app.amqp.as_task_v2(
        task_id, RENDER_TASK, args=[run_id, attempt], ignore_result=app.conf.task_ignore_result,
        argsrepr=repr([run_id, attempt]), kwargsrepr="{}",  # saferepr is generic and slow
    )
    # As send_task(headers=...) would merge them.
    headers |= {REQUEST_ID_HEADER: request_id_var.get(), RUN_HEADER: run_id, ATTEMPT_HEADER: attempt}
    content_type, content_encoding, data = dumps(body, serializer=app.conf.task_serializer)
    message = channel.prepare_message(data, None, content_type, content_encoding, headers, properties | {"delivery_mode": 2})
    collected = _Collected()
    queue = render_queue(pool, priority)
    channel.basic_publish(message, exchange="", routing_key=queue, _publish_batch=collected)
    [(command, (key, payload))] = collected.commands
    assert command == "lpush"
    return key, payload
