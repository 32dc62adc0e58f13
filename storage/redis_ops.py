"""Storage operations written once, run on either Redis client.

Workers and most routes use the synchronous client; the API's hot routes (submit, status)
use redis.asyncio so that a request waiting on Redis costs no thread-pool hop. Rather than a
second copy of each operation, an operation is a generator: it yields `Batch`es (a function
that queues commands on a pipeline — sync and asyncio pipelines have the same command
methods), is sent back each batch's replies, and returns its result. Key names, hash
encoding, scripts and decoding live in the operation; only the two drivers here do I/O.

    record = run(client, store.get_op(run_id))                # sync client
    record = await run_async(aclient, store.get_op(run_id))   # redis.asyncio client
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Batch:
    """Commands sent in one round trip; `transaction`: inside MULTI/EXEC."""

    fill: Callable[[Any], None]
    transaction: bool = False


Op = Generator[Batch, list, T]


def run(client, op: Op[T]) -> T:
    """Drive `op` on a synchronous redis-py (or fakeredis) client."""
    try:
        batch = next(op)
        while True:
            with client.pipeline(transaction=batch.transaction) as pipe:
                batch.fill(pipe)
                replies = pipe.execute()
            batch = op.send(replies)
    except StopIteration as done:
        return done.value


async def run_async(client, op: Op[T]) -> T:
    """Drive `op` on a redis.asyncio (or fakeredis async) client."""
    try:
        batch = next(op)
        while True:
            async with client.pipeline(transaction=batch.transaction) as pipe:
                batch.fill(pipe)
                replies = await pipe.execute()
            batch = op.send(replies)
    except StopIteration as done:
        return done.value


def done(value: T) -> Op[T]:
    """An operation that needs no Redis (a cached answer)."""
    return value
    yield  # noqa: unreachable: makes this a generator
