"""The API in this process over fakeredis, Celery's in-memory broker and local storage: for
fast tests of HTTP behaviour (fuzzing, bad input) that need no worker."""

from __future__ import annotations

import fakeredis
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from api.app import create_app
from api.services import Services
from storage.images import make_image_store
from storage.runs import RunStore
from core.settings import Settings
from core.queue import make_celery


def inprocess_app(local_dir: str, **overrides):
    """(app, services, API key of tenant "inprocess")."""
    config = Settings(
        storage="local", local_dir=local_dir, redis_url="redis://inprocess.invalid",
        rate_limit="1000000/minute", max_active_runs=1_000_000, **overrides,
    )
    services = Services(
        settings=config,
        runs=RunStore(fakeredis.FakeRedis(decode_responses=True), config.retention_seconds),
        images=make_image_store(config),
        celery=make_celery(Settings(embedded=True)),
        limiter=SlidingWindowCounterRateLimiter(MemoryStorage()),
    )
    services.images.prepare()
    _, key = services.keys.create("inprocess")
    return create_app(services), services, key
