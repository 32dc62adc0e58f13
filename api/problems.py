"""Every error the API answers is an RFC 9457 problem document (application/problem+json):
the HTTP side of core/problems.py."""

from __future__ import annotations

import logging

import redis
from kombu.exceptions import OperationalError as BrokerUnavailable
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.problems import Problem, ProblemError
from storage.redis_client import is_redis_outage

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

_SLUG_BY_STATUS = {
    400: "malformed-request",
    401: "unauthorized",
    402: "insufficient-credits",
    404: "not-found",
    405: "method-not-allowed",
    410: "run-expired",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "rate-limited",
    503: "service-unavailable",
}


def problem_response(problem: Problem, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _validation_errors(exc: RequestValidationError) -> list[dict]:
    return [
        {
            # "body" is the envelope, not a field name the caller wrote.
            "field": ".".join(str(part) for part in error.get("loc", ()) if part != "body") or None,
            "message": error.get("msg", ""),
            "type": error.get("type", ""),
        }
        for error in exc.errors()
    ]


def validation_problem(
    exc: RequestValidationError | ValidationError, prefix: str = "", whole: str = "body", **extra
) -> ProblemError:
    """The 422 problem of a validation error: every error in `errors`, the first five in `detail`
    (`prefix` first; `whole` names an error of the whole body rather than of one field)."""
    errors = _validation_errors(exc)
    summary = "; ".join(f"{e['field'] or whole}: {e['message']}" for e in errors[:5])
    return ProblemError("validation-error", 422, detail=prefix + summary, errors=errors, **extra)


def _outage_of(exc: BaseException) -> str | None:
    """What is unreachable when `exc`, or an exception it was raised from or grouped with, is an
    outage of Redis or the broker (a primary lost, a failover under way); None otherwise."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if is_redis_outage(current):
            return "run records are unreachable"
        if isinstance(current, BrokerUnavailable):
            return "the render queue is unreachable"
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending += [current.__cause__, current.__context__]
    return None


def unavailable(request: Request, exc: BaseException) -> JSONResponse | None:
    """The 503 problem (Retry-After: 2) of an outage, or None when `exc` is not one: Redis or
    the broker down, or a failover under way, is the caller's cue to try again, never a 500."""
    what = _outage_of(exc)
    if what is None:
        return None
    log.error("%s: %s: %s", what, type(exc).__name__, exc)
    problem = Problem.of("service-unavailable", 503, detail=f"{what}; try again shortly", instance=request.url.path)
    return problem_response(problem, {"Retry-After": "2"})


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: ProblemError) -> JSONResponse:
        problem = Problem.of(exc.slug, exc.status, detail=exc.detail, instance=request.url.path, **exc.extra)
        return problem_response(problem, exc.headers)

    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        if any(error["type"] == "json_invalid" for error in errors):
            problem = Problem.of(
                "malformed-request", 400, detail="the request body is not valid JSON", instance=request.url.path
            )
            return problem_response(problem)
        return await on_problem(request, validation_problem(exc))

    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = _SLUG_BY_STATUS.get(exc.status_code, "internal-error" if exc.status_code >= 500 else "malformed-request")
        detail = exc.detail if isinstance(exc.detail, str) else None
        problem = Problem.of(slug, exc.status_code, detail=detail, instance=request.url.path)
        return problem_response(problem, getattr(exc, "headers", None))

    async def on_redis_error(request: Request, exc: redis.RedisError) -> JSONResponse:
        return unavailable(request, exc) or await on_unexpected(request, exc)

    async def on_broker_down(request: Request, exc: BrokerUnavailable) -> JSONResponse:
        return unavailable(request, exc) or await on_unexpected(request, exc)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Also what a middleware raised (Starlette's last handler): a Redis outage met there
        # (keys, rate limits) is a 503 as well.
        outage = unavailable(request, exc)
        if outage is not None:
            return outage
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        # The cause goes to the log, never to the caller.
        problem = Problem.of("internal-error", 500, detail="an unexpected error occurred; it has been logged", instance=request.url.path)
        return problem_response(problem)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(redis.RedisError, on_redis_error)
    app.add_exception_handler(BrokerUnavailable, on_broker_down)
    app.add_exception_handler(Exception, on_unexpected)


PROBLEM_RESPONSES = {
    status: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": _SLUG_BY_STATUS[status].replace("-", " ")}
    for status in (400, 401, 402, 404, 410, 422, 429, 503)
}
