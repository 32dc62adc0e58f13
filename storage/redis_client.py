"""The Redis connection of a process: real Redis (one server, or the primary Redis Sentinel
elects), or fakeredis in the embedded mode."""

from __future__ import annotations

from functools import lru_cache

import redis
from redis.backoff import ExponentialWithJitterBackoff

from core.sentinel import SentinelUrl, is_sentinel_url, parse_sentinel_url
from core.settings import Settings

# A client of a Sentinel-elected primary tries a command again this many times after a
# connection error (waits 0.1-0.8 s), each time on a fresh connection to the address the
# sentinels name then: a command that meets the old primary's death is answered by the new one
# when the election is that quick, and otherwise fails fast (the API answers 503 with
# Retry-After; a worker tries on its next tick or the reaper takes the run back).
SENTINEL_RETRIES = 3
SENTINEL_BACKOFF = (0.1, 0.8)  # ExponentialWithJitterBackoff(base, cap)


@lru_cache(maxsize=4)
def _fake_server():
    import fakeredis

    return fakeredis.FakeServer()


def make_redis(settings: Settings) -> redis.Redis:
    """decode_responses: records are text; every room sees str, never bytes."""
    if settings.embedded:
        import fakeredis

        # One server per process, shared by the API and the in-process worker.
        return fakeredis.FakeRedis(server=_fake_server(), decode_responses=True)
    return redis_for(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
    )


def _master_for(address: SentinelUrl, options: dict, sentinel_class, retry_class):
    """The client of the primary the sentinels elect. A sentinel that does not answer is passed
    over at once (no retry of its own), the primary retried as SENTINEL_RETRIES says."""
    from redis.backoff import NoBackoff

    sentinel_options = {key: options[key] for key in ("socket_connect_timeout", "socket_timeout") if key in options}
    sentinel_options["retry"] = retry_class(NoBackoff(), 0)
    if address.sentinel_password:
        sentinel_options["password"] = address.sentinel_password
    node_options = options | {"db": address.db, "username": address.username, "password": address.password}
    node_options["retry"] = retry_class(ExponentialWithJitterBackoff(*SENTINEL_BACKOFF), SENTINEL_RETRIES)
    sentinel = sentinel_class(list(address.sentinels), sentinel_kwargs=sentinel_options, **node_options)
    return sentinel.master_for(address.master_name)


def redis_for(url: str, **options) -> redis.Redis:
    """A client of the Redis at `url` (redis://, rediss://, unix://), or of the primary the
    sentinels of a redis+sentinel:// URL elect (core/sentinel.py): it asks them for the
    primary's address on every new connection, so it follows a failover by itself."""
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **options)
    from redis.retry import Retry
    from redis.sentinel import Sentinel

    return _master_for(parse_sentinel_url(url), options, Sentinel, Retry)


def async_redis_for(url: str, **options):
    """The redis.asyncio twin of `redis_for`."""
    import redis.asyncio

    if not is_sentinel_url(url):
        return redis.asyncio.Redis.from_url(url, **options)
    from redis.asyncio.retry import Retry
    from redis.asyncio.sentinel import Sentinel

    return _master_for(parse_sentinel_url(url), options, Sentinel, Retry)


def make_async_redis(settings: Settings):
    """An asyncio client, for what waits on Redis inside the event loop (pub/sub for SSE)."""
    if settings.embedded:
        import fakeredis

        return fakeredis.FakeAsyncRedis(server=_fake_server(), decode_responses=True)
    return async_redis_for(settings.redis_url, decode_responses=True, socket_connect_timeout=2)


def async_twin(client):
    """A redis.asyncio client on the same server and database as the sync `client` (fakeredis:
    the same fake server), for the API's hot routes. Derived from the client rather than the
    settings, so that a store injected into the API (tests) is what both clients talk to."""
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    if "server_type" in kwargs:  # fakeredis: the same fake server (given, or found by host and port)
        import fakeredis

        fields = ("host", "port", "db", "server", "version", "server_type", "lua_modules", "decode_responses")
        return fakeredis.FakeAsyncRedis(**{name: kwargs[name] for name in fields if name in kwargs})
    import redis.asyncio
    from redis.sentinel import SentinelConnectionPool

    if isinstance(pool, SentinelConnectionPool):
        return _async_sentinel_twin(pool)
    if isinstance(pool.connection_class, type) and issubclass(pool.connection_class, redis.UnixDomainSocketConnection):
        kwargs["connection_class"] = redis.asyncio.UnixDomainSocketConnection
    elif issubclass(pool.connection_class, redis.SSLConnection):
        kwargs["connection_class"] = redis.asyncio.SSLConnection
    else:
        kwargs["connection_class"] = redis.asyncio.Connection
    return redis.asyncio.Redis(connection_pool=redis.asyncio.ConnectionPool(**kwargs))


def _async_sentinel_twin(pool):
    """The asyncio client of the primary a sync Sentinel pool follows: the same sentinels,
    group, database and connection options."""
    from redis.asyncio.retry import Retry
    from redis.asyncio.sentinel import Sentinel

    manager = pool.sentinel_manager
    sentinels = tuple((s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
                      for s in manager.sentinels)
    kwargs = pool.connection_kwargs
    address = SentinelUrl(sentinels, pool.service_name, kwargs.get("db", 0), kwargs.get("username"),
                          kwargs.get("password"), manager.sentinel_kwargs.get("password"))
    skip = {"connection_pool", "connection_class", "retry", "host", "port", "db", "username", "password"}
    return _master_for(address, {key: value for key, value in kwargs.items() if key not in skip}, Sentinel, Retry)


# ResponseError prefixes of a Redis that is there but cannot take writes now: a primary that
# lost its replicas under min-replicas-to-write, a replica cut off from its primary, a failed
# save with stop-writes-on-bgsave-error.
_UNAVAILABLE_REPLIES = ("NOREPLICAS", "MASTERDOWN", "MISCONF")


def is_redis_outage(exc: BaseException) -> bool:
    """Whether `exc` means Redis cannot be used now but will be again: unreachable (a primary
    lost; no primary elected yet, MasterNotFoundError), timing out, loading its data, or a
    demoted primary refusing writes (READONLY) while a failover is under way. Not a bug of ours
    (a wrong command, a wrong type), which stays an error."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)):
        return True
    return isinstance(exc, redis.ResponseError) and str(exc).startswith(_UNAVAILABLE_REPLIES)
