"""Redis Sentinel without a Redis: the redis+sentinel:// URL read in one place (core/sentinel.py),
what the redis-py clients and Celery are made of from it, and the problems a failover's errors
become (the failover itself, on real processes: tests/test_failover.py)."""

from __future__ import annotations

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from kombu.exceptions import OperationalError
from pydantic import ValidationError
from redis.sentinel import MasterNotFoundError

from api.problems import install_problem_handlers
from core.sentinel import SentinelUrl, kombu_broker, parse_sentinel_url
from core.settings import Settings

URL = "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2,[fd00::3]:26380/mymaster/4?sentinel_password=watch"


def test_a_sentinel_url_names_its_sentinels_group_database_and_passwords():
    assert parse_sentinel_url(URL) == SentinelUrl(
        sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26379), ("fd00::3", 26380)),
        master_name="mymaster", db=4, username=None, password="s3cret", sentinel_password="watch",
    )
    plain = parse_sentinel_url("redis+sentinel://a:1,b:2,c:3/renderq")
    assert (plain.sentinels, plain.master_name, plain.db, plain.password) == ((("a", 1), ("b", 2), ("c", 3)), "renderq", 0, None)


@pytest.mark.parametrize("url, complaint", [
    ("redis+sentinel:///mymaster", "no sentinel"),
    ("redis+sentinel://a:26379", "master_name"),
    ("redis+sentinel://a:26379/mymaster/zero", "not a number"),
    ("redis+sentinel://a:port/mymaster", "host[:port]"),
    ("redis+sentinel://a/mymaster?master=x", "unknown query"),
])
def test_a_mistyped_sentinel_url_stops_the_process_at_start_up(url, complaint):
    with pytest.raises(ValidationError) as refused:
        Settings(redis_url=url)
    assert "redis_url" in str(refused.value) and complaint in str(refused.value)
    with pytest.raises(ValidationError, match="broker_url"):
        Settings(broker_url=url)


def test_celery_reaches_the_broker_through_kombus_sentinel_transport():
    from core.queue import make_celery

    assert kombu_broker("redis://h:6379/0") == ("redis://h:6379/0", {})
    url, options = kombu_broker(URL)
    assert url == ("sentinel://:s3cret@10.0.0.1:26379/4;sentinel://:s3cret@10.0.0.2:26379/4;"
                   "sentinel://:s3cret@[fd00::3]:26380/4")
    assert options == {"master_name": "mymaster", "sentinel_kwargs": {"password": "watch"}}
    settings = Settings(redis_url=URL)
    app = make_celery(settings)
    connection = app.connection_for_write()  # not connected: nothing listens there
    assert type(connection.transport).__name__ == "SentinelTransport"
    assert connection.alt == url.split(";") and connection.virtual_host == "4"
    transport_options = app.conf.broker_transport_options
    assert transport_options["master_name"] == "mymaster"
    assert transport_options["visibility_timeout"] == settings.visibility_timeout
    assert transport_options["queue_order_strategy"] == "priority"


def test_every_redis_client_follows_the_primary_the_sentinels_elect():
    from api.rate_limits import make_limiter
    from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelPool
    from redis.sentinel import SentinelConnectionPool

    from storage.redis_client import async_twin, make_async_redis, make_redis

    settings = Settings(redis_url=URL)
    sync = make_redis(settings)
    limiter_pool = make_limiter(settings).storage.storage.connection_pool
    for pool in (sync.connection_pool, limiter_pool):
        assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "mymaster"
        assert pool.connection_kwargs["db"] == 4 and pool.connection_kwargs["password"] == "s3cret"
        sentinels = [s.connection_pool.connection_kwargs for s in pool.sentinel_manager.sentinels]
        assert [(s["host"], s["port"], s["password"]) for s in sentinels] == [
            ("10.0.0.1", 26379, "watch"), ("10.0.0.2", 26379, "watch"), ("fd00::3", 26380, "watch")]
        assert pool.connection_kwargs["retry"].get_retries() == 3
    assert sync.connection_pool.connection_kwargs["decode_responses"] is True
    for client in (async_twin(sync), make_async_redis(settings)):
        pool = client.connection_pool
        assert isinstance(pool, AsyncSentinelPool) and pool.service_name == "mymaster"
        assert pool.connection_kwargs["db"] == 4 and pool.connection_kwargs["decode_responses"] is True
        assert [s.connection_pool.connection_kwargs["port"] for s in pool.sentinel_manager.sentinels] == [26379, 26379, 26380]


OUTAGES = {
    "no-primary": MasterNotFoundError("No master found for 'renderq'"),
    "refused": redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
    "timeout": redis.TimeoutError("Timeout reading from socket"),
    "demoted": redis.ReadOnlyError("You can't write against a read only replica."),
    "loading": redis.BusyLoadingError("Redis is loading the dataset in memory"),
    "no-replicas": redis.ResponseError("NOREPLICAS Not enough good replicas to write."),
    "broker": OperationalError("Error 111 connecting to 127.0.0.1:26379."),
}


def failing_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/outage/{name}")
    def outage(name: str):
        raise OUTAGES[name]

    @app.get("/wrapped")
    def wrapped():
        try:
            raise OUTAGES["no-primary"]
        except redis.RedisError as exc:
            raise RuntimeError("could not look the key up") from exc

    @app.get("/grouped")
    def grouped():
        raise ExceptionGroup("a task group", [OUTAGES["refused"]])

    @app.get("/bug")
    def bug():
        raise redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")

    @app.middleware("http")
    async def keys(request, call_next):  # a middleware meeting Redis (keys, rate limits)
        if request.url.path == "/in-middleware":
            raise OUTAGES["demoted"]
        return await call_next(request)

    return app


def test_a_failover_is_answered_503_with_retry_after_and_a_bug_still_500():
    with TestClient(failing_app(), raise_server_exceptions=False) as client:
        paths = [f"/outage/{name}" for name in OUTAGES] + ["/wrapped", "/grouped", "/in-middleware"]
        for path in paths:
            response = client.get(path)
            assert response.status_code == 503, (path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["retry-after"] == "2"
            assert response.json()["type"] == "/problems/service-unavailable"
        bug = client.get("/bug")
    assert bug.status_code == 500 and bug.json()["type"] == "/problems/internal-error"
    assert "WRONGTYPE" not in bug.text
