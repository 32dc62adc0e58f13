"""The FastAPI application: routes, problem handlers, and the services they share."""

from __future__ import annotations

import gc
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.middleware.cors import CORSMiddleware

from core.settings import get_settings

from .auth import guard
from .costs import install_admission
from .idempotency import IdempotencyMiddleware
from .openapi_extras import install_openapi_extras
from .problems import install_problem_handlers
from .rate_limits import RateLimitHeadersMiddleware
from .request_id import RequestIdMiddleware
from .dialects import DIALECTS
from .compat.errors import DialectErrorsMiddleware
from .request_limits import BodyLimitsMiddleware
from .routes.playground import install_playground
from .routes import (
    assets, batches, costs, destinations, events, files, generations, health, metrics, models, operations, platforms,
    previews, problem_types, run_actions, templates,
)
from .services import Services

API_DESCRIPTION = """Asynchronous image rendering. Submit a run, get a `run_id` at once, then poll
`GET /v1/generations/{run_id}` for status, progress and temporary image URLs (kept 24 hours).
Every error is an RFC 9457 problem document (`application/problem+json`).

Every `/v1` request needs an API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`
(`renderq keys create --tenant NAME`). Answers carry `X-RateLimit-Limit/-Remaining/-Reset`
and `X-Request-ID`; every POST takes an `Idempotency-Key` (kept 24 hours).

Runs cost credits (`POST /v1/estimate-cost` prices a request, `GET /v1/credits` shows the
caller's balance); a tenant short of credits is refused with `402 insufficient-credits`."""


# What a browser page on another origin may send and read (api/idempotency.py, api/rate_limits.py,
# api/request_id.py, api/prefer_wait.py set the headers exposed).
CORS_REQUEST_HEADERS = ["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key", "X-Request-ID", "Prefer"]
CORS_EXPOSED_HEADERS = [
    "Location", "X-Request-ID", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After",
    "Idempotency-Key", "Idempotent-Replayed", "Preference-Applied",
]


def install_cors(app: FastAPI, origins: list[str]) -> None:
    """Cross-origin access for the pages of RENDERQ_CORS_ORIGINS, none without it: outermost, so
    preflights are answered before any key is asked for, and every answer (a 401, a 429 too)
    carries the headers a browser needs to show it. No cookies: keys travel in headers."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "DELETE"],
        allow_headers=CORS_REQUEST_HEADERS, expose_headers=CORS_EXPOSED_HEADERS, max_age=600,
    )


def create_app(services: Services | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if getattr(app.state, "services", None) is None:  # a real server, not a test's app
            app.state.services = Services.from_settings(get_settings())
            install_admission(app.state.services)
            # Everything loaded so far lives as long as the process: out of the collector's
            # sight, a full collection scans only what requests create (was ~30 ms, a stall of
            # the event loop that showed in the p99 of every request in flight).
            gc.collect()
            gc.freeze()
        yield

    # guard: every /v1 route, including ones added later, is authenticated and rate-limited.
    app = FastAPI(
        title="renderq", version="0.1.0", description=API_DESCRIPTION, lifespan=lifespan, dependencies=[Depends(guard)]
    )
    app.state.services = services
    if services is not None:  # else the lifespan builds them, and installs it then
        install_admission(services)  # credits, then the key's cap on active runs, on every run created
    install_problem_handlers(app)
    # Added innermost first: CORS (outermost, when on) → request id → rate-limit headers → each compatible API's
    # error shape (/v1/images/, /compat/<service>/ only) → body size/type → idempotency.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(BodyLimitsMiddleware)
    app.add_middleware(DialectErrorsMiddleware, shapes=[shape for _, shape in DIALECTS])
    app.add_middleware(RateLimitHeadersMiddleware)
    settings = services.settings if services is not None else get_settings()
    app.add_middleware(RequestIdMiddleware, access_log=settings.access_log)
    install_cors(app, settings.cors_origins)
    for module in (
        generations, run_actions, events, batches, operations, assets, destinations, models, templates, platforms,
        health, files, previews, problem_types, metrics, costs,
    ):
        app.include_router(module.router)
    for router, _ in DIALECTS:
        app.include_router(router)
    if settings.playground:
        install_playground(app)
    install_openapi_extras(app, [shape for _, shape in DIALECTS])
    return app
