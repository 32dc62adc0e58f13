"""Who is calling: API keys (`Authorization: Bearer <key>` or `X-API-Key: <key>`), tenants,
and the per-key limits that come with a key.

`guard` is an application-wide dependency (api/app.py), so every route under /v1 and /compat, including
routes added later, is covered without opting in; paths outside /v1 (health, metrics,
problem pages, signed file URLs, docs) pass through. It sets the caller's tenant in the
context variable of core/tenancy.py, so the stores create every run, batch and asset for
that tenant and find nothing of another one: every route answers 404, not 403, for other
tenants' ids without code of its own. Async, so that the context variable it sets reaches
the route (a sync dependency would set it in a thread's copy); the key lookup runs on
redis.asyncio, the rate-limit count (the `limits` library is sync) on a thread.

The per-key cap on queued + running runs is part of the run store's admission hook (api/costs.py
`install_admission`, when the app starts), so every way of creating runs (submit, operations,
batches, retry) is capped.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from storage.keys import ApiKey
from storage.local import FILES_ROUTE
from storage.previews import PREVIEWS_ROUTE
from storage.records import RunRecord
from storage.redis_ops import Op, run_async
from core.tenancy import current_tenant

from core.problems import ProblemError
from .rate_limits import STATE_KEY, check_rate
from .services import Services

# /compat/<service>/: the reference APIs' dialects (api/compat/), under the same keys and limits.
PROTECTED_PREFIX = ("/v1/", "/compat/")
PUBLIC_HEALTH_PATH = "/v1/health"  # api/routes/health.py; keyless only with RENDERQ_HEALTH_PUBLIC
# Under /v1 but reached by signed URL, no key: local storage's files, live previews.
SIGNED_PREFIXES = (FILES_ROUTE, PREVIEWS_ROUTE)
ANONYMOUS_TENANT = ""  # the one tenant of a deployment with auth disabled


@dataclass(frozen=True)
class Principal:
    tenant: str
    key_id: str
    key: ApiKey | None = None  # None when auth is disabled and no key was sent


def presented_key(request: Request) -> str | None:
    """The key from `Authorization: Bearer …` or `X-API-Key`, if either is there."""
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    api_key = request.headers.get("x-api-key", "").strip()
    return api_key or None


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError("unauthorized", 401, detail=detail, headers={"WWW-Authenticate": 'Bearer realm="renderq"'})


_principal: ContextVar[Principal | None] = ContextVar("renderq_principal", default=None)


async def guard(request: Request) -> None:
    """Authenticate and rate-limit every /v1 request."""
    path = request.scope["path"]
    if not path.startswith(PROTECTED_PREFIX) or path.startswith(SIGNED_PREFIXES):
        return
    # Not a sub-dependency: each one FastAPI solves costs every request a few percent.
    services: Services = request.app.state.services
    if request.scope["path"] == PUBLIC_HEALTH_PATH and services.settings.health_public:
        return  # RENDERQ_HEALTH_PUBLIC: load balancers and autoscalers read it without a key
    presented = presented_key(request)
    key = await run_async(services.async_client(services.keys.redis), services.keys.lookup_op(presented)) if presented else None
    if presented and key is None:
        raise _unauthorized("this API key is unknown or revoked")
    if key is None:
        if not services.auth_disabled:
            raise _unauthorized("send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
        principal = Principal(tenant=ANONYMOUS_TENANT, key_id="anonymous")
    else:
        principal = Principal(tenant=key.tenant, key_id=key.key_id, key=key)
        limit = key.rate_limit or services.settings.rate_limit
        setattr(request.state, STATE_KEY, await run_in_threadpool(check_rate, services.limiter, limit, key.key_id))
    request.state.principal = principal
    request.state.tenant = principal.tenant
    # For the rest of this request (this task and the threads it hands work to).
    current_tenant.set(principal.tenant)
    _principal.set(principal)


def current_principal(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:  # a route outside /v1 asked for a caller: treat as unauthenticated
        raise _unauthorized("this route needs an API key")
    return principal


def admit_runs(services: Services, records: list[RunRecord]) -> Op[None]:
    """RunStore's admission hook: take slots for the runs against the calling key's cap on
    queued + running runs, or answer 429. Outside a request (no caller) nothing is capped."""
    principal = _principal.get()
    if principal is None or principal.key is None:  # auth disabled: one trusted caller
        return
    cap = principal.key.max_active_runs or services.settings.max_active_runs
    active = yield from services.active_runs.reserve_op(principal.key_id, [record.run_id for record in records], cap)
    if active is not None:
        raise ProblemError(
            "too-many-active-runs",
            429,
            detail=f"this API key has {active} runs queued or running (cap {cap}); wait for some to finish",
            headers={"Retry-After": "5"},
            active_runs=active,
            max_active_runs=cap,
        )


def release_runs(services: Services, run_ids: list[str]) -> None:
    """Give back the slots of runs that were refused after admission (enqueue failed)."""
    principal = _principal.get()
    if principal is not None and principal.key is not None:
        services.active_runs.release(principal.key_id, run_ids)
