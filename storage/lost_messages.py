"""Queued runs whose message is nowhere: given a new one at the head of their queue.

A queued run's message is on its priority's list, or taken by a worker (kombu's `unacked` set,
storage/held_messages.py), or on its way between the two for a few milliseconds. Two moments
lose it: a worker's parent killed between `BRPOP` (Redis has popped the message) and kombu's
write of the `unacked` entry, and a reaper killed between taking a run back and sending its new
message. Nothing would ever deliver such a run.

The list is in submit order (the head, where `BRPOP` takes, is the oldest; runs given back or
taken back go to the head), so a run whose turn has come is near the head. On each reaper tick,
`LostMessages.resend` compares, per worker pool and priority, the oldest queued runs (storage/run_index.py) with
the run of the message at the head of the list: when the oldest is there, nothing more is read
(the common case: one command per priority). Otherwise it reads the messages nearest the head
and the held ones; a run among the oldest found in neither, still `queued` at its attempt, and
still missing `missing_after` seconds later (a message on its way is held within milliseconds),
gets a new message at the head of its queue. A guard key per run and attempt (`SET NX`, in the
same script as the push) lets one reaper resend it once per window; a run whose message was only
far out of order (a render process's message put back at the tail by Celery) gets a copy at
the head, and its late copy is a no-op for the claim script.

Under fair share (storage/fair_share.py) most of the oldest queued runs may be staged: they have
no message yet and are not missing. The runs that should have one are the admitted ones, kept
by when they were admitted (the order of the list), so the oldest admitted runs are looked for
the same way; a run taken back from a dead worker counts among them, oldest of all, until it is
claimed, so a reaper that dies before sending its message leaves it to be found here too.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any, Callable

import redis

from core.queue import render_queues

from .fair_share import STAGED_FLAG, admitted_key, member_run
from .held_messages import HeldMessages
from .run_index import PRIORITY_ORDER, RunIndex, queued_key
from .runs import run_key

GUARD_PREFIX = "renderq:resent:"
OLDEST = 5  # queued runs per priority looked for near the head
NEAR_HEAD = 50  # messages read from the head of a list when its oldest run is not first

# KEYS: the guard, the list. ARGV: the guard's life (s), the message. 1 if this call pushed it.
RESEND = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
"""

# (run id, attempt, priority, pool) → (list, payload)
MessageFor = Callable[[str, int, str, str], "tuple[str, str] | None"]


def message_run(raw: str | None) -> str | None:
    """The run id of a render message as it sits on a list, or None."""
    if raw is None:
        return None
    try:
        payload = json.loads(raw)
        body = payload["body"]
        if payload["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        return str(json.loads(body)[0][0])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None


class LostMessages:
    def __init__(self, held: HeldMessages) -> None:
        self.held, self.broker, self.store = held, held.broker, held.store
        self._resend = self.broker.register_script(RESEND)
        self.index = RunIndex(self.store, 0)  # only read: which pools have queues
        self._missing_since: dict[tuple[str, str], float] = {}  # this reaper's own sightings

    def resend(self, missing_after: float, message_for: MessageFor, now: float | None = None) -> list[tuple[str, int]]:
        """New messages for the queued runs whose message has been nowhere for `missing_after`
        seconds; returns (run id, attempt) of those this call sent."""
        now = time.time() if now is None else now
        missing = self.missing()
        seen = {(run_id, attempt): self._missing_since.get((run_id, attempt), now) for run_id, attempt, _, _ in missing}
        self._missing_since = seen
        sent = []
        for run_id, attempt, priority, pool in missing:
            if now - seen[(run_id, attempt)] < missing_after:
                continue
            message = message_for(run_id, int(attempt), priority, pool)
            if message is None:
                continue
            queue, payload = message
            guard = f"{GUARD_PREFIX}{run_id}:{attempt}"
            if self._resend(keys=[guard, self.held.prefix + queue], args=[max(1, int(missing_after * 3)), payload]):
                sent.append((run_id, int(attempt)))
        return sent

    def missing(self) -> list[tuple[str, str, str, str]]:
        """(run id, attempt, priority, pool) of the oldest queued runs whose message is neither
        near the head of their list nor held by a worker, now. The oldest are looked for twice:
        by submit time, and among the runs admitted by fair share by when they were admitted (a
        staged run has no message yet and is not missing; storage/fair_share.py)."""
        queues = [(pool, priority.value) for pool in self.index.pools() for priority in PRIORITY_ORDER]
        with self.store.pipeline(transaction=False) as pipe:
            for pool, priority in queues:
                pipe.zrange(queued_key(pool, priority), 0, OLDEST - 1)
                pipe.zrange(admitted_key(render_queues(pool)[priority]), 0, OLDEST - 1)
            replies = pipe.execute()
        heads = self._read(self.broker, lambda pipe, q: pipe.lindex(self._list(*q), -1), queues)
        suspects: dict[tuple[str, str], list[str]] = {}
        for i, queue in enumerate(queues):
            head = message_run(heads[queue])
            for runs in (replies[2 * i], [member_run(member) for member in replies[2 * i + 1]]):
                if runs and head != runs[0]:
                    found = suspects.setdefault(queue, [])
                    found += [run_id for run_id in runs if run_id not in found]
        if not suspects:
            return []
        near = self._read(self.broker, lambda pipe, q: pipe.lrange(self._list(*q), -NEAR_HEAD, -1), list(suspects))
        held = {message.run_id for message in self.held.held(float("inf"))}
        candidates = [
            (run_id, priority, pool)
            for (pool, priority), runs in suspects.items()
            for run_id in runs
            if run_id not in held and run_id not in {message_run(raw) for raw in near[(pool, priority)]}
        ]
        return self._still_queued(candidates)

    def _still_queued(self, candidates: list[tuple[str, str, str]]) -> list[tuple[str, str, str, str]]:
        if not candidates:
            return []
        with self.store.pipeline(transaction=False) as pipe:
            for run_id, _, _ in candidates:
                pipe.hmget(run_key(run_id), "status", "attempt", "fair")
            rows = pipe.execute()
        return [(run_id, attempt, priority, pool) for (run_id, priority, pool), (status, attempt, fair) in zip(candidates, rows)
                if status == "queued" and attempt and fair != STAGED_FLAG]

    def _list(self, pool: str, priority: str) -> str:
        return self.held.prefix + render_queues(pool)[priority]

    @staticmethod
    def _read(client: redis.Redis, command: Callable[[Any, Any], Any], queues: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                command(pipe, queue)
            replies = pipe.execute()
        return dict(zip(queues, replies))
