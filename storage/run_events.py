"""What happens whenever a run's status or progress is written: one place, in the storage layer.

- Published on the Redis channel `renderq:events:{run_id}` (Server-Sent Events read it).
- Kept in the queue indexes (storage/run_index.py).
- Filed as a webhook message when the run asked for that event (storage/webhooks.py).
- Counted towards its batch; the batch webhook is filed when the last run ends.

Once per status change, even when the process that made the change dies right after it. The
script that changes a run's status (storage/run_scripts.py) marks the change unannounced in the
same step (`MARK_UNANNOUNCED`: `renderq:events:unannounced`, member `run_id|status|attempt`, a
pair a run never returns to). Announcing it is one script (`ANNOUNCE`) that takes the mark and
does all of the above but the batch webhook in the same step, so exactly one announcer does it:
the process that made the change, right after, or, when that process died first, a reaper
(`announce_overdue`, a few seconds later). A change overtaken by a newer one before anyone
announced it is dropped: the newer one is announced (its webhook, as for a run taken back and
rendered again, is the one that counts).
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from .batches import BatchStore, batch_key
from .prices import credits
from .records import RunRecord, RunStatus, WebhookTarget
from .run_index import RunIndex
from .webhooks import WebhookStore

EVENTS_PREFIX = "renderq:events:"
UNANNOUNCED = "renderq:events:unannounced"
RUN_PREFIX = "renderq:run:"  # storage/runs.py's (which imports this module)

# mark_unannounced(run key): called by every status-changing script after its write.
MARK_UNANNOUNCED = """
local function mark_unannounced(key)
  local fields = redis.call('HMGET', key, 'run_id', 'status', 'attempt')
  local now = redis.call('TIME')
  redis.call('ZADD', '""" + UNANNOUNCED + """', now[1] + now[2] / 1000000,
    (fields[1] or '') .. '|' .. (fields[2] or '') .. '|' .. (fields[3] or ''))
end
"""

# Announce a status change once: if this call takes its mark (ARGV[1]), run the commands that
# follow (each: its number of words, then the words) and return their replies; else false.
ANNOUNCE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return false end
local replies = {}
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  table.insert(replies, redis.call(unpack(ARGV, i + 1, i + n)))
  i = i + n + 1
end
return replies
"""
# Webhook event for each status a run can move to (queued again after a dead worker: none).
WEBHOOK_EVENT_BY_STATUS = {
    RunStatus.running: "started",
    RunStatus.completed: "completed",
    RunStatus.failed: "failed",
    RunStatus.canceled: "canceled",
    RunStatus.expired: "expired",
}


def events_channel(run_id: str) -> str:
    return EVENTS_PREFIX + run_id


def transition(record: RunRecord) -> str:
    """The mark of the status change that left `record` as it is."""
    return f"{record.run_id}|{record.status.value}|{record.attempt}"


class Commands:
    """Stands in for a pipeline: keeps the commands a status event queues (the few it uses),
    for the announce script to run."""

    def __init__(self) -> None:
        self.words: list[list[str]] = []

    def _add(self, *words: Any) -> None:
        self.words.append([w if isinstance(w, str) else repr(w) if isinstance(w, float) else str(w) for w in words])

    def publish(self, channel: str, message: str) -> None:
        self._add("PUBLISH", channel, message)

    def zadd(self, key: str, mapping: dict[str, float]) -> None:
        self._add("ZADD", key, *[w for member, score in mapping.items() for w in (score, member)])

    def zrem(self, key: str, *members: str) -> None:
        self._add("ZREM", key, *members)

    def hset(self, key: str, field: str | None = None, value: Any = None, mapping: dict[str, Any] | None = None) -> None:
        pairs = ([(field, value)] if field is not None else []) + list((mapping or {}).items())
        self._add("HSET", key, *[w for pair in pairs for w in pair])

    def hdel(self, key: str, *fields: str) -> None:
        self._add("HDEL", key, *fields)

    def expire(self, key: str, seconds: int) -> None:
        self._add("EXPIRE", key, seconds)

    def hincrby(self, key: str, field: str, amount: int = 1) -> None:
        self._add("HINCRBY", key, field, amount)

    def hget(self, key: str, field: str) -> None:
        self._add("HGET", key, field)

    def flat(self) -> list[str]:
        return [w for command in self.words for w in (str(len(command)), *command)]


def run_summary(record: RunRecord) -> dict[str, Any]:
    """What events and webhooks say about a run; GET /v1/generations/{id} has the rest (image URLs)."""
    return {
        "run_id": record.run_id,
        "status": record.status.value,
        "progress": record.progress,
        "attempt": record.attempt,
        "priority": record.priority.value,
        "batch_id": record.batch_id,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "completed_at": record.completed_at,
        "error": record.error.model_dump(mode="json", exclude_none=True) if record.error else None,
        "url": f"/v1/generations/{record.run_id}",
        "credits_used": credits(record.credits_used),
        "credits_remaining": credits(record.credits_remaining),
    }


class RunEvents:
    def __init__(self, client: redis.Redis, index: RunIndex, webhooks: WebhookStore, batches: BatchStore) -> None:
        self.redis = client
        self.index = index
        self.webhooks = webhooks
        self.batches = batches
        self._announce = client.register_script(ANNOUNCE)

    def status_event(self, pipe, record: RunRecord) -> None:
        """Queue, inside `pipe`, everything that follows a status write of `record`."""
        pipe.publish(events_channel(record.run_id), json.dumps({"type": "status"} | run_summary(record)))
        self.index.on_status(pipe, record)
        event = WEBHOOK_EVENT_BY_STATUS.get(record.status)
        if record.webhook is not None and event in record.webhook.events:
            self.webhooks.file(record.webhook.url, f"run.{event}", run_summary(record), "renderq:run:" + record.run_id, pipe=pipe)

    def status_changed(self, record: RunRecord) -> bool:
        """Announce the status change that left `record` as it is (its mark set by the script
        that made it): events, queue indexes, webhook and batch count in one step, if no one
        has yet; then the batch webhook when it was the batch's last run. False when it was
        announced already, or overtaken by a newer change."""
        return self.status_changed_many([record])[0]

    def status_changed_many(self, records: list[RunRecord]) -> list[bool]:
        """`status_changed` of several runs (a worker's claim of a batch) in one round trip."""
        if not records:
            return []
        counted = [bool(record.status.is_final and record.batch_id) for record in records]
        with self.redis.pipeline(transaction=False) as pipe:
            for record, count in zip(records, counted):
                commands = Commands()
                self.status_event(commands, record)
                if count:
                    commands.hincrby(batch_key(record.batch_id), "ended", 1)
                    commands.hget(batch_key(record.batch_id), "total")
                self._announce(keys=[UNANNOUNCED], args=[transition(record), *commands.flat()], client=pipe)
            replies = pipe.execute()
        for record, count, reply in zip(records, counted, replies):
            if reply and count and int(reply[-2]) == int(reply[-1] or 0):
                batch = self.batches.get(record.batch_id)
                if batch and batch.get("webhook"):
                    target = WebhookTarget.model_validate(batch["webhook"])
                    self.webhooks.file(target.url, "batch.completed", self.batches.summary(record.batch_id), batch_key(record.batch_id))
        return [bool(reply) for reply in replies]

    def announce_overdue(self, older_than: float, now: float | None = None, limit: int = 200) -> list[str]:
        """Announce the status changes nobody announced within `older_than` seconds (the
        process that made them died first); drop those a newer change overtook. The reaper
        calls this every tick; returns the marks it announced."""
        now = time.time() if now is None else now
        marks = self.redis.zrangebyscore(UNANNOUNCED, "-inf", now - older_than, start=0, num=limit)
        announced = []
        for mark in marks:
            raw = self.redis.hgetall(RUN_PREFIX + mark.split("|", 1)[0])
            record = RunRecord.from_hash(raw) if raw else None
            if record is None or transition(record) != mark:
                self.redis.zrem(UNANNOUNCED, mark)  # gone, or overtaken: the newer change is announced
            elif self.status_changed(record):
                announced.append(mark)
        return announced

    @staticmethod
    def progress(pipe, run_id: str, progress: int) -> None:
        """Added to the pipeline that writes the progress (storage/runs.py `report_progress`)."""
        pipe.publish(events_channel(run_id), json.dumps({"type": "progress", "run_id": run_id, "progress": progress}))
