"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ..services import Services, get_services

router = APIRouter(tags=["health"])


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
