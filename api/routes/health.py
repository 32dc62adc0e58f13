"""Liveness and readiness of the process; the queues and workers of each worker pool (/v1/health)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from core.metrics import RUNS
from storage.pool_health import read_pools

from ..auth import PUBLIC_HEALTH_PATH
from ..problems import PROBLEM_RESPONSES
from ..services import Services, get_services

router = APIRouter(tags=["health"])
HEALTH_PATH = PUBLIC_HEALTH_PATH


@router.get("/healthz", summary="The API process is up")
def healthz() -> dict:
    return {"status": "ok"}


def _broker_probe(services: Services):
    """The Celery broker, when it is not the records' Redis (embedded: the in-memory queue)."""
    settings = services.settings
    if settings.embedded or settings.effective_broker_url == settings.redis_url:
        return None

    def probe() -> None:
        with services.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.5, timeout=2)

    return probe


@router.get("/readyz", summary="Redis, image storage and the broker are reachable; names the ones that are not")
def readyz(services: Services = Depends(get_services)) -> JSONResponse:
    checks: dict[str, str] = {}
    probes = [("redis", services.runs.redis.ping), ("storage", services.images.check)]
    broker = _broker_probe(services)
    if broker is not None:
        probes.append(("broker", broker))
    for name, probe in probes:
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:  # the point is to report it, whatever it is
            checks[name] = f"down: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ready" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503)


class PoolJobs(BaseModel):
    in_queue: int = Field(..., description="Runs queued for this pool's workers.")
    in_progress: int = Field(..., description="Runs being rendered now (with a live heartbeat).")


class PoolWorkers(BaseModel):
    idle: int = Field(..., description="Live workers of the pool rendering nothing.")
    busy: int = Field(..., description="Live workers of the pool rendering a run (or a batch of runs).")


class PoolView(BaseModel):
    pool: str = Field(..., description="The pool's name; `default` takes every model no other pool names.")
    models: list[str] = Field(..., description="Catalog model ids this pool's workers serve.")
    queues: dict[str, str] = Field(..., description="Priority → the Redis list its runs wait in.")
    jobs: PoolJobs
    workers: PoolWorkers
    oldest_queued_seconds: float | None = Field(None, description="Age of the pool's oldest queued run; null: none queued.")
    has_workers: bool = Field(..., description="False: no live worker serves this pool; its runs wait (queued) until one starts.")


class HealthView(BaseModel):
    status: str = Field(..., description="`ok`, or `degraded` when a pool with queued runs has no live worker.")
    pools: list[PoolView]
    jobs: dict[str, int] = Field(..., description="Runs that ever entered each status (completed, failed, …), all pools.")


def health_view(services: Services) -> HealthView:
    from core.queue import render_queues

    settings, catalog = services.settings, services.catalog
    pools = list(dict.fromkeys([*catalog.pools(), *services.runs.index.pools()]))
    window = max(30.0, settings.heartbeat_stale_after * 3)  # as /metrics counts workers
    views = [
        PoolView(
            pool=pool.pool, models=[entry.id for entry in catalog.in_pool(pool.pool)], queues=render_queues(pool.pool),
            jobs=PoolJobs(in_queue=pool.queued, in_progress=pool.running),
            workers=PoolWorkers(idle=pool.idle, busy=pool.busy), oldest_queued_seconds=pool.oldest_queued_seconds,
            has_workers=pool.workers > 0,
        )
        for pool in read_pools(services.runs.redis, pools, window)
    ]
    counts = services.runs.redis.hgetall(RUNS)
    degraded = any(view.jobs.in_queue and not view.has_workers for view in views)
    return HealthView(status="degraded" if degraded else "ok", pools=views,
                      jobs={status: int(count) for status, count in sorted(counts.items())})


@router.get(
    HEALTH_PATH, response_model=HealthView, responses={k: v for k, v in PROBLEM_RESPONSES.items() if k in (401, 503)},
    summary="Runs queued and running, workers idle and busy, and the oldest queued run's age, per worker pool",
)
async def pool_health(services: Services = Depends(get_services)) -> HealthView:
    """Per worker pool (docs/deployment.md#worker-pools). Needs an API key unless
    RENDERQ_HEALTH_PUBLIC is on. A pool without a live worker says so (`has_workers` false);
    its runs are accepted and wait."""
    return await run_in_threadpool(health_view, services)
