"""Putting runs on the render queues; used by the API (submit) and the reaper (re-enqueue)."""

from __future__ import annotations

from functools import lru_cache

from celery import Celery
from kombu.serialization import dumps
from kombu.utils.uuid import uuid

from storage.logs import request_id_var

from .celery_app import RENDER_QUEUE, RENDER_QUEUES, RENDER_TASK

# Message header carrying the X-Request-ID of the submit into the worker's logs.
REQUEST_ID_HEADER = "renderq_request_id"


def enqueue_render(app: Celery, run_id: str, attempt: int, priority: str = "normal") -> None:
    """One message per delivery; `attempt` lets a stale redelivery recognise itself. Each
    priority has its own queue, which workers drain in order (worker/celery_app.py)."""
    headers = {REQUEST_ID_HEADER: request_id_var.get()}
    app.send_task(RENDER_TASK, args=[run_id, attempt], queue=RENDER_QUEUES.get(priority, RENDER_QUEUE), headers=headers)


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


def render_message(app: Celery, run_id: str, attempt: int, priority: str = "normal") -> tuple[str, str] | None:
    """(Redis list, payload) of the message `enqueue_render` would publish, or None when the
    broker is not Redis. Lets the API write the run record and its message in one Redis
    transaction (one round trip, and never one without the other) instead of a second
    round trip through Celery's producer, which costs more than the rest of a submit.
    Celery builds the task message and kombu encodes it, exactly as `send_task` would;
    it goes to the priority's render queue directly (the default exchange), where workers read it."""
    channel = _redis_channel(app)
    if channel is None:
        return None
    task_id = uuid()
    headers, properties, body, _ = app.amqp.as_task_v2(
        task_id, RENDER_TASK, args=[run_id, attempt], ignore_result=app.conf.task_ignore_result,
        argsrepr=repr([run_id, attempt]), kwargsrepr="{}",  # saferepr is generic and slow
    )
    headers[REQUEST_ID_HEADER] = request_id_var.get()  # as send_task(headers=...) would merge it
    content_type, content_encoding, data = dumps(body, serializer=app.conf.task_serializer)
    message = channel.prepare_message(data, None, content_type, content_encoding, headers, properties | {"delivery_mode": 2})
    collected = _Collected()
    queue = RENDER_QUEUES.get(priority, RENDER_QUEUE)
    channel.basic_publish(message, exchange="", routing_key=queue, _publish_batch=collected)
    [(command, (key, payload))] = collected.commands
    assert command == "lpush"
    return key, payload
