"""What the middleware and the app-wide guard add to every /v1 operation, written into
/openapi.json so that clients (and the fuzzer) see it: the API-key security schemes, the
Idempotency-Key and X-Request-ID headers, and the 401/413/429 problem answers."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .auth import PROTECTED_PREFIX
from .compat.errors import ErrorShape

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_EXTRA_RESPONSES = {
    "401": {"description": "No API key, or an unknown or revoked one", "content": _PROBLEM},
    "413": {"description": "Request body over its size limit", "content": _PROBLEM},
    "429": {"description": "Over the key's request rate or its cap on active runs", "content": _PROBLEM},
    "503": {"description": "A dependency is unreachable; retry after Retry-After", "content": _PROBLEM},
}
_REQUEST_ID = {
    "name": "X-Request-ID", "in": "header", "required": False,
    "description": "Your id for this request (returned, and carried into worker logs); one is made up if absent.",
    "schema": {"type": "string", "maxLength": 128},
}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Retry-safe POST: the same key and body return the first answer (kept 24 h); "
    "the same key with another body is a 422 problem.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}


def _problem_media_type(response: dict) -> None:
    """FastAPI files a `model` under application/json; problems are application/problem+json."""
    content = response.get("content", {})
    plain = content.get("application/json", {}).get("schema", {})
    if "application/problem+json" in content and plain.get("$ref", "").endswith("/Problem"):
        content["application/problem+json"] = {"schema": plain}
        del content["application/json"]


def _dialect_errors(paths: dict, shapes: list[ErrorShape]) -> None:
    """Every error answer (4xx/5xx) under a dialect's prefix is declared in its error shape."""
    for path, operations in paths.items():
        shape = next((s for s in shapes if path.startswith(s.prefix)), None)
        if shape is None:
            continue
        for operation in operations.values():
            responses = operation.get("responses", {})
            for status, response in responses.items():
                if status[:1] in ("4", "5"):  # a copy: the extra answers are one dict shared by every path
                    responses[status] = {**response, "content": {shape.media_type: {"schema": shape.schema or {"type": "object"}}}}


def install_openapi_extras(app: FastAPI, shapes: list[ErrorShape] | None = None) -> None:
    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {}).update(
            {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
        )
        if "Problem" not in components.get("schemas", {}):
            from core.problems import Problem

            components.setdefault("schemas", {})["Problem"] = Problem.model_json_schema()
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith(PROTECTED_PREFIX):
                continue
            for method, operation in operations.items():
                operation["security"] = [{"bearer": []}, {"apiKey": []}]
                parameters = operation.setdefault("parameters", [])
                parameters.append(_REQUEST_ID)
                if method == "post":
                    parameters.append(_IDEMPOTENCY_KEY)
                for status, response in _EXTRA_RESPONSES.items():
                    operation.setdefault("responses", {}).setdefault(status, response)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for response in operation.get("responses", {}).values():
                    _problem_media_type(response)
        _dialect_errors(schema.get("paths", {}), shapes or [])
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
