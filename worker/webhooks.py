"""Webhook delivery: its own Celery queue and task, never run by render workers.

Messages are filed by the storage layer when a run changes status (storage/run_events.py)
with a due time. A scheduler thread in each webhook worker moves due messages onto
`renderq.webhooks`; the task makes ONE attempt and, on a timeout, connection error, 429 or 5xx,
files the next attempt by the retry schedule (with jitter, or later if the receiver sent
Retry-After). 2xx delivers; 410 stops; anything else (3xx included: redirects are not
followed) gives up. The webhook-id, timestamp-independent body and URL are fixed per message,
so every retry carries the same webhook-id and body.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx
from celery.signals import worker_ready, worker_shutdown
from standardwebhooks import Webhook

from core.metrics import count_webhook_delivery
from core.settings import Settings
from storage.redis_client import is_redis_outage
from storage.webhook_targets import UnsafeWebhookUrl, check_webhook_url
from storage.webhooks import WebhookStore

from core.queue import WEBHOOK_QUEUE, WEBHOOK_TASK

from .celery_app import app
from .runtime import get_runtime

log = logging.getLogger(__name__)

USER_AGENT = "renderq-webhooks/0.1"
JITTER = 0.2  # each wait is stretched or shrunk by up to 20 %, so retries of many receivers spread out
MAX_RETRY_AFTER = 86400.0


def sign(secret: str, message_id: str, timestamp: int, body: str) -> dict[str, str]:
    """Standard Webhooks headers: signature `v1,<base64 HMAC-SHA256 of id.timestamp.body>`."""
    signature = Webhook(secret).sign(message_id, datetime.fromtimestamp(timestamp, tz=timezone.utc), body)
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def retry_after_seconds(value: str | None, now: float) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, min(float(value), MAX_RETRY_AFTER))
    except ValueError:
        pass
    try:
        return max(0.0, min(parsedate_to_datetime(value).timestamp() - now, MAX_RETRY_AFTER))
    except (TypeError, ValueError):
        return None


def next_delay(schedule: list[float], attempts_made: int, retry_after: float | None) -> float | None:
    """Seconds until the next attempt, or None when the schedule is used up."""
    if attempts_made >= len(schedule):
        return None
    delay = schedule[attempts_made] * random.uniform(1 - JITTER, 1 + JITTER)
    return max(delay, retry_after or 0.0)


def retryable(status_code: int) -> bool:
    """0 is a timeout or a refused/failed connection."""
    return status_code == 0 or status_code in (408, 429) or status_code >= 500


def deliver_once(store: WebhookStore, settings: Settings, message_id: str) -> str:
    """One attempt at a message; returns what happened."""
    message = store.get(message_id)
    if not message or message.get("state") != "pending":
        store.forget(message_id)
        return "gone"
    url, body, owner = message["url"], message["body"], message["owner"]
    now = time.time()
    created = float(message["created_at"])
    if now - created > settings.webhook_max_age:  # e.g. due while every webhook worker was down
        store.finish(message_id, "gave-up")
        return "exhausted"
    try:
        check_webhook_url(url, settings.webhook_allow_private)  # again: DNS may point elsewhere now
    except UnsafeWebhookUrl as exc:
        log.warning("webhook %s to %s refused: %s", message_id, url, exc)
        store.finish(message_id, "gave-up")
        return "unsafe"
    headers = sign(settings.webhook_secret.get_secret_value(), message_id, int(now), body)
    headers |= {"content-type": "application/json", "user-agent": USER_AGENT}
    retry_after = None
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=settings.webhook_timeout, follow_redirects=False)
        status_code = response.status_code
        retry_after = retry_after_seconds(response.headers.get("retry-after"), now)
    except httpx.HTTPError as exc:
        log.info("webhook %s to %s: no answer (%s)", message_id, url, type(exc).__name__)
        status_code = 0
    attempts = store.record_attempt(message_id, owner, status_code)
    if 200 <= status_code < 300:
        store.finish(message_id, "delivered")
        return "delivered"
    if not retryable(status_code):  # 410 Gone included: the receiver asked us to stop
        store.finish(message_id, "gave-up")
        return f"gave-up:{status_code}"
    delay = next_delay(settings.webhook_retry_schedule, attempts, retry_after)
    if delay is None or now + delay - created > settings.webhook_max_age:
        store.finish(message_id, "gave-up")
        return "exhausted"
    store.schedule(message_id, now + delay)
    return f"retry-in:{delay:.1f}"


@app.task(name=WEBHOOK_TASK, ignore_result=True)
def deliver(message_id: str) -> str:
    runtime = get_runtime()
    outcome = deliver_once(runtime.runs.webhooks, runtime.settings, message_id)
    if outcome != "gone":  # /metrics: delivered, gave-up, retry-in, exhausted, unsafe
        try:
            count_webhook_delivery(runtime.runs.redis, outcome.split(":", 1)[0])
        except Exception:
            log.warning("could not count the webhook delivery", exc_info=True)
    return outcome


class WebhookScheduler(threading.Thread):
    """Moves due messages from Redis onto the webhook queue. Any number may run: the Lua
    script hands each message to one of them."""

    def __init__(self, celery, store: WebhookStore, interval: float = 0.2, lease: float = 60.0) -> None:
        super().__init__(name="renderq-webhook-scheduler", daemon=True)
        self.celery, self.store, self.interval, self.lease = celery, store, interval, lease
        self.stopped = threading.Event()

    def tick(self) -> int:
        due = self.store.take_due(lease=self.lease)
        for index, message_id in enumerate(due):
            try:
                self.celery.send_task(WEBHOOK_TASK, args=[message_id], queue=WEBHOOK_QUEUE)
            except Exception:
                for rest in due[index:]:  # not lost: due again on the next tick
                    self.store.schedule(rest, time.time())
                raise
        return len(due)

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.tick()
            except Exception as exc:
                if not is_redis_outage(exc):
                    log.exception("webhook scheduler tick failed; trying again")
                else:  # Redis restarting, or failing over: what is due stays due
                    log.warning("webhook scheduler tick skipped, Redis unreachable: %s: %s", type(exc).__name__, exc)

    def stop(self) -> None:
        self.stopped.set()


_scheduler: WebhookScheduler | None = None


def consumes_webhooks(consumer) -> bool:
    try:
        return WEBHOOK_QUEUE in consumer.app.amqp.queues.consume_from
    except Exception:
        return False


@worker_ready.connect
def _start_scheduler(sender=None, **_):
    global _scheduler
    if sender is not None and consumes_webhooks(sender):
        # A message taken whose attempt is never recorded is due again after the lease (storage/webhooks.py).
        lease = max(get_runtime().settings.webhook_lease, get_runtime().settings.webhook_timeout * 2)
        _scheduler = WebhookScheduler(sender.app, get_runtime().runs.webhooks, lease=lease)
        _scheduler.start()


@worker_shutdown.connect
def _stop_scheduler(**_):
    if _scheduler is not None:
        _scheduler.stop()
