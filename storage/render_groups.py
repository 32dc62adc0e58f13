"""Runs that can render together. A run whose request can share a model call with others
(same operation, model, LoRAs and call settings: the request's `render_key`) joins a group at
submit; a worker that starts one run of a group takes the others queued in it, oldest first,
and renders them in one call. One sorted set per group and priority, so a batch never mixes
priorities. An entry is dropped when a worker draws it, whether it could still be claimed or
was already rendered through its own queue message."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import redis

from .records import RunRecord

GROUP_PREFIX = "renderq:render-group:"
MESSAGE_PREFIX = "renderq:queue-message:"


def message_key(run_id: str) -> str:
    """A copy of a render-group run's queue message ("{queue}\n{payload}"), kept until the run
    is claimed."""
    return MESSAGE_PREFIX + run_id


# Join a group: the run in its sorted set, and its queue message pushed with a copy kept beside it
# (the payload sent once). EVAL (not EVALSHA): the same call on the sync and asyncio pipelines of
# a submit; Redis keeps the compiled script cached by its hash.
_JOIN_WITH_MESSAGE = """
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[2])
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], KEYS[1] .. '\\n' .. ARGV[1], 'EX', ARGV[2])
"""


def group_id(operation: str, model_id: str, loras: dict[str, float], render_key: tuple, pool: str = "default") -> str:
    """The group of runs whose requests render in one call with each other: of one worker pool
    (a model's pool may change with the settings; runs queued before stay in their own)."""
    return _group_id(operation, model_id, tuple(sorted(loras.items())), render_key, pool)


@lru_cache(maxsize=1024)  # a submit's hot path; a deployment's groups are few
def _group_id(operation: str, model_id: str, loras: tuple, render_key: tuple, pool: str) -> str:
    parts = [operation, model_id, loras, list(render_key)] + ([pool] if pool != "default" else [])
    identity = json.dumps(parts, default=str)
    return hashlib.sha1(identity.encode()).hexdigest()[:20]


class RenderGroups:
    def __init__(self, client: redis.Redis, retention_seconds: int) -> None:
        self.redis = client
        self.retention_seconds = retention_seconds

    @staticmethod
    def key(record: RunRecord) -> str:
        return f"{GROUP_PREFIX}{record.priority.value}:{record.render_group}"

    def add(self, pipe, record: RunRecord) -> None:
        """In the transaction that creates the run, with its queue message when it is written
        there too."""
        key = self.key(record)
        if record.queue_message is None or record.queue:  # fair share: storage/fair_share.py pushes it
            pipe.zadd(key, {record.run_id: record.created_at})
            pipe.expire(key, self.retention_seconds)
            return
        queue, payload = record.queue_message
        pipe.eval(_JOIN_WITH_MESSAGE, 3, queue, message_key(record.run_id), key,
                  payload, self.retention_seconds, record.run_id, record.created_at)
