"""What the routes need, built once per API process and held on `app.state`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import cached_property

from celery import Celery
from fastapi import Request

from storage.assets import AssetStore
from storage.credits import CreditStore
from storage.destinations import DestinationClients, DestinationStore, Vault
from storage.images import ImageStore, RecentUrls, make_image_store
from storage.keys import KeyStore
from storage.models_catalog import ModelCatalog
from storage.prices import PriceTable
from storage.platforms import PlatformCatalog
from storage.quotas import ActiveRuns
from storage.redis_client import async_twin, make_redis
from storage.runs import RunStore
from core.settings import Settings
from storage.templates import TemplateCatalog

from .estimates import DEFAULT_RENDER_RATE, EstimateInputs


@dataclass
class Services:
    settings: Settings
    runs: RunStore
    images: ImageStore
    celery: Celery
    # Built from the above when not given (api/auth.py uses them on every /v1 request).
    keys: KeyStore = field(default=None)  # type: ignore[assignment]
    active_runs: ActiveRuns = field(default=None)  # type: ignore[assignment]
    limiter: object = None
    _async_clients: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.keys is None:
            self.keys = KeyStore(self.runs.redis)
        if self.active_runs is None:
            self.active_runs = ActiveRuns(self.runs.redis, self.settings.retention_seconds)
        if self.limiter is None:
            from .rate_limits import make_limiter

            self.limiter = make_limiter(self.settings)
        # The run store's admission hook (credits, then the key's cap on active runs) is not
        # installed here: the app does it when it starts (api/app.py → api/costs.py
        # install_admission), so this container imports none of the modules that use it.

    @property
    def async_redis(self):
        """The redis.asyncio twin of `runs.redis`, for the async routes."""
        return self.async_client(self.runs.redis)

    def async_client(self, client):
        """A redis.asyncio twin of a sync client (storage/redis_client.async_twin), made once
        per event loop (an asyncio connection belongs to its loop) and per client (tests swap
        stores)."""
        loop = asyncio.get_running_loop()
        cached = self._async_clients.get(id(client))
        if cached is None or cached[0] is not client or cached[1] is not loop:
            cached = self._async_clients[id(client)] = (client, loop, async_twin(client))
        return cached[2]

    @property
    def auth_disabled(self) -> bool:
        """`renderq dev` (embedded) runs without keys; production only with an explicit setting."""
        return self.settings.auth_disabled or self.settings.embedded

    @cached_property
    def prices(self) -> PriceTable:
        return PriceTable.from_settings(self.settings)

    @cached_property
    def credits(self) -> CreditStore:
        return CreditStore(self.runs.redis)

    @cached_property
    def urls(self) -> RecentUrls:
        return RecentUrls(self.images)

    @cached_property
    def estimates(self) -> EstimateInputs:
        return EstimateInputs(self.runs, DEFAULT_RENDER_RATE)

    @classmethod
    def from_settings(cls, settings: Settings, celery: Celery | None = None) -> "Services":
        ModelCatalog.from_settings(settings)  # a missing or malformed catalog stops start-up, not each request
        TemplateCatalog.from_settings(settings)  # so do the templates and style presets
        PriceTable.from_settings(settings)  # so does a malformed price table
        PlatformCatalog.from_settings(settings)  # and the social platforms
        if celery is None:
            from core.queue import make_celery

            celery = make_celery(settings)
        return cls(
            settings=settings,
            runs=RunStore(make_redis(settings), settings.retention_seconds, settings.tombstone_seconds,
                          fair_slots=settings.fair_share_slots),
            images=make_image_store(settings),
            celery=celery,
        )

    @cached_property
    def assets(self) -> AssetStore:
        # The API may take an upload before any worker has created the bucket.
        try:
            self.images.prepare()
        except Exception:  # unreachable storage: /readyz says so, and an upload answers 503
            pass
        return AssetStore(self.runs.redis, self.images, self.settings.retention_seconds)

    @cached_property
    def destinations(self) -> DestinationStore:
        return DestinationStore(self.runs.redis, Vault.from_settings(self.settings))

    @cached_property
    def destination_clients(self) -> DestinationClients:
        """For the registration check: one try, short timeouts, so a bad endpoint is a quick 422."""
        return DestinationClients(self.destinations, self.settings.destination_allow_private, max_attempts=1, timeout=5)

    @property
    def catalog(self) -> ModelCatalog:
        return ModelCatalog.from_settings(self.settings)

    @property
    def templates(self) -> TemplateCatalog:
        return TemplateCatalog.from_settings(self.settings)

    @property
    def platforms(self) -> PlatformCatalog:
        return PlatformCatalog.from_settings(self.settings)


def services_of(request: Request) -> Services:
    return request.app.state.services


async def get_services(request: Request) -> Services:
    # async: a plain `def` dependency would cost every request a hop through the thread pool.
    return request.app.state.services
