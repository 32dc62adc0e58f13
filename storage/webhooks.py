"""Webhook deliveries waiting to be made: one hash per message, a sorted set of when each is due.

The storage layer files a delivery when a run's status changes (storage/run_events.py); the
webhook worker's scheduler thread takes due ones and hands them to the webhook Celery queue
(worker/webhooks.py), which makes one attempt and, on a retryable failure, files the next
attempt here. Taking a message leases it rather than removing it: it stays in the set, due
again `lease` seconds later, until its attempt is recorded (`schedule`, `finish`). So an
attempt that never happened (its task failed on a Redis outage, or a webhook worker died
holding it) is made again once the lease ends, under the same webhook-id. Retries wait in Redis rather than as Celery countdown messages, because
kombu's Redis transport would redeliver a message held for hours past its visibility timeout.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import redis

DELIVERY_PREFIX = "renderq:webhook:"
DUE = "renderq:webhooks:due"

# Take up to ARGV[2] deliveries due by ARGV[1], each leased until ARGV[3] (due again then,
# unless its attempt is recorded first); one script, so each goes to one scheduler.
_TAKE_DUE = """
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))) do
  redis.call('ZADD', KEYS[1], ARGV[3], id)
  table.insert(out, id)
end
return out
"""


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


class WebhookStore:
    def __init__(self, client: redis.Redis, retention_seconds: int) -> None:
        self.redis = client
        self.retention_seconds = retention_seconds
        self._take_due = client.register_script(_TAKE_DUE)

    def file(self, url: str, event_type: str, data: dict[str, Any], owner_key: str, pipe=None) -> str:
        """File a new message, due now. The body is fixed here, so every retry sends the same
        bytes under the same webhook-id and receivers can de-duplicate."""
        message_id = new_message_id()
        now = time.time()
        body = json.dumps({"type": event_type, "timestamp": now, "data": data}, separators=(",", ":"))
        key = DELIVERY_PREFIX + message_id
        target = pipe if pipe is not None else self.redis.pipeline(transaction=True)
        target.hset(key, mapping={"url": url, "body": body, "created_at": now, "attempts": 0, "owner": owner_key, "state": "pending"})
        target.expire(key, self.retention_seconds)
        target.zadd(DUE, {message_id: now})
        if pipe is None:
            target.execute()
        return message_id

    def take_due(self, now: float | None = None, limit: int = 100, lease: float = 60.0) -> list[str]:
        now = now if now is not None else time.time()
        return self._take_due(keys=[DUE], args=[now, limit, now + lease])

    def get(self, message_id: str) -> dict[str, str]:
        return self.redis.hgetall(DELIVERY_PREFIX + message_id)

    def record_attempt(self, message_id: str, owner_key: str, status_code: int) -> int:
        """Count an attempt on the message and on its run (or batch), which shows it to callers."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(DELIVERY_PREFIX + message_id, "attempts", 1)
            pipe.hset(DELIVERY_PREFIX + message_id, "last_status", status_code)
            if self.redis.exists(owner_key):
                pipe.hincrby(owner_key, "webhook_attempts", 1)
                pipe.hset(owner_key, "webhook_last_status", status_code)
            return int(pipe.execute()[0])

    def schedule(self, message_id: str, due: float) -> None:
        self.redis.zadd(DUE, {message_id: due})

    def finish(self, message_id: str, state: str) -> None:
        """`delivered` or `gave-up`; the hash stays until it expires, for inspection."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(DELIVERY_PREFIX + message_id, "state", state)
            pipe.zrem(DUE, message_id)
            pipe.execute()

    def forget(self, message_id: str) -> None:
        """A message gone (expired) or no longer pending: nothing more to attempt."""
        self.redis.zrem(DUE, message_id)
