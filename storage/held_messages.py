"""Render messages a worker took off its queue and never started: given back within seconds.

kombu's Redis transport keeps every message a consumer has taken and not yet acknowledged in
the broker (kombu/transport/redis.py `QoS.append`): the hash `unacked` (delivery tag →
[payload, exchange, routing key]) and the sorted set `unacked_index` (delivery tag → when it
was taken). It hands such a message back only once it is older than the visibility timeout
(RENDERQ_HARD_TIME_LIMIT × 2 + 60 s) and a consumer's restore sweep runs. A worker that dies
holding one leaves its run `queued` that long, and the heartbeat reaper cannot see it: the
run was never claimed, so it never beat.

A worker that is alive and able claims the run of a message it took within milliseconds (the
render task claims before anything else). So a render message taken more than `held_after`
seconds ago (the heartbeat's stale window) whose run is still `queued` at the message's
attempt was taken by a worker that is gone, whose render process died before claiming, or
that cannot start it now (a render process still loading its model). Whichever, another
worker should have it; `HeldMessages.give_back` does, on every reaper tick:

- such a message goes back to the head of its queue (RPUSH: the next one any worker takes, as
  kombu's own restore does; its run is the oldest of its queue, where `queue_position` counts
  it), as it was, with a fresh delivery tag (so that a late acknowledgement by the original
  holder cannot remove the entry of the worker that takes it next);
- a render message whose run was claimed at its attempt, or moved past it (ended, superseded
  by a later attempt, gone), can never do anything again: its entry is dropped. From its claim
  on, a run's recovery belongs to the heartbeat (storage/runs.py `reap_stale`); kombu would
  only have handed the message back at the timeout for the claim script to skip it.

Exactly once with any number of reapers: one Lua script takes each entry (HDEL decides which
reaper gets it), checks its age again and pushes the message back in the same step. The
message keeps its attempt number: if its holder was only slow and claims later, the claim
script answers `busy` (a live worker holds the run) or the run's final status, so the run
renders once. Other messages (webhook deliveries) are left to kombu. The broker may be
another Redis than the run records: the records are read first, and a run claimed between
that read and the give-back costs only a skipped message.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from bisect import bisect
from dataclasses import dataclass
from typing import Any, Iterable

import redis
from kombu.transport.redis import Channel as KombuChannel

from core.queue import RENDER_TASK, is_render_queue

from .records import RunStatus
from .runs import run_key

# KEYS: unacked hash, unacked index. ARGV[1]: the cutoff (taken at or before it), then for
# each entry: delivery tag, the list to push the message to ('' drops it), the message.
# Returns the tags this call took.
GIVE_BACK = """
local out = {}
local cutoff = tonumber(ARGV[1])
for i = 2, #ARGV, 3 do
  local tag = ARGV[i]
  local taken = redis.call('ZSCORE', KEYS[2], tag)
  if taken and tonumber(taken) <= cutoff then
    local held = redis.call('HDEL', KEYS[1], tag)
    redis.call('ZREM', KEYS[2], tag)
    if held == 1 then
      if ARGV[i + 1] ~= '' then redis.call('RPUSH', ARGV[i + 1], ARGV[i + 2]) end
      table.insert(out, tag)
    end
  end
end
return out
"""


@dataclass
class HeldMessage:
    """A render message in kombu's unacknowledged set."""

    tag: str
    taken_at: float
    run_id: str
    attempt: int
    queue_key: str  # the Redis list it came from
    payload: dict[str, Any]


@dataclass
class GivenBack:
    run_id: str
    attempt: int
    held_seconds: float  # how long the message was held by a worker that never started it
    restored: bool  # True: back on its queue; False: dropped (its run was claimed or is past it)


def queue_key(channel: type, queue: str, payload: dict[str, Any]) -> str:
    """The Redis list kombu keeps `queue`'s messages of this priority in (its
    `_q_for_pri`/`priority`: the nearest priority step at or below, 0 → the queue's own name)."""
    try:
        priority = int(payload["properties"].get("priority") or 0)
    except (TypeError, ValueError):
        priority = 0
    steps = channel.priority_steps
    step = steps[max(bisect(steps, priority) - 1, 0)]
    return f"{queue}{channel.sep}{step}" if step else queue


def decode(tag: str, taken_at: float, raw: str | None, prefix: str = "") -> HeldMessage | None:
    """The held render message, or None for anything else (another task, a message already
    acknowledged, one we cannot read)."""
    if raw is None:
        return None
    try:
        payload, exchange, routing_key = json.loads(raw)
        if payload["headers"].get("task") != RENDER_TASK or not is_render_queue(routing_key):
            return None
        if exchange not in ("", routing_key):
            return None
        body = payload["body"]
        if payload["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        run_id, attempt = str(args[0]), int(args[1])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return HeldMessage(tag, taken_at, run_id, attempt, prefix + queue_key(KombuChannel, routing_key, payload), payload)


def restorable(message: HeldMessage) -> str:
    """The message as kombu's restore writes it back (`redelivered`), under a fresh delivery tag."""
    payload = json.loads(json.dumps(message.payload))
    payload.setdefault("headers", {})["redelivered"] = True
    properties = payload["properties"]
    properties.setdefault("delivery_info", {})["redelivered"] = True
    properties["delivery_tag"] = str(uuid.uuid4())
    return json.dumps(payload)


class HeldMessages:
    """`broker`: the Celery broker's Redis; `store`: the run records' (often the same client).
    `options`: the app's broker transport options (kombu's key names and prefix, if changed)."""

    def __init__(self, broker: redis.Redis, store: redis.Redis, options: dict[str, Any] | None = None) -> None:
        options = options or {}
        self.prefix = options.get("global_keyprefix", "") or ""
        self.unacked = self.prefix + options.get("unacked_key", KombuChannel.unacked_key)
        self.index = self.prefix + options.get("unacked_index_key", KombuChannel.unacked_index_key)
        self.broker, self.store = broker, store
        self._give_back = broker.register_script(GIVE_BACK)

    def held(self, cutoff: float, limit: int = 1000) -> list[HeldMessage]:
        """Render messages taken at or before `cutoff` and not acknowledged, oldest first. The
        set holds one message per busy consumer, so one read covers it."""
        rows = self.broker.zrangebyscore(self.index, "-inf", cutoff, start=0, num=limit, withscores=True)
        if not rows:
            return []
        raws = self.broker.hmget(self.unacked, [tag for tag, _ in rows])
        found = (decode(tag, taken_at, raw, self.prefix) for (tag, taken_at), raw in zip(rows, raws))
        return [message for message in found if message is not None]

    def give_back(self, held_after: float, now: float | None = None) -> list[GivenBack]:
        """Put back on their queues the render messages held for more than `held_after`
        seconds whose runs were never claimed at their attempt; drop those whose runs were."""
        now = time.time() if now is None else now
        cutoff = now - held_after
        messages = self.held(cutoff)
        if not messages:
            return []
        waiting = self._waiting(messages)
        args: list[Any] = [cutoff]
        for message, wait in zip(messages, waiting):
            args += [message.tag, message.queue_key, restorable(message)] if wait else [message.tag, "", ""]
        taken = set(self._give_back(keys=[self.unacked, self.index], args=args))
        return [
            GivenBack(message.run_id, message.attempt, round(now - message.taken_at, 3), wait)
            for message, wait in zip(messages, waiting)
            if message.tag in taken
        ]

    def _waiting(self, messages: Iterable[HeldMessage]) -> list[bool]:
        """Whether each message's run is still queued at the message's attempt (never claimed
        by it): one round trip to the run records."""
        messages = list(messages)
        with self.store.pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.hmget(run_key(message.run_id), "status", "attempt")
            rows = pipe.execute()
        return [
            status == RunStatus.queued.value and attempt == str(message.attempt)
            for message, (status, attempt) in zip(messages, rows)
        ]
