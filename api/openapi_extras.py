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
    "description": "Your id for this request (returned, and carried into worker logs) when it is 1-128 plain "
    "characters (letters, digits and `._:@/+=-`); any other value, like none, is replaced by one made up "
    "and the request goes on (the id answered in the header is the one used).",
    "schema": {"type": "string"},
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


def _validation_problems(response: dict, status: str) -> None:
    """FastAPI adds a 422 in its own HTTPValidationError shape to every route with parameters;
    the API answers that 422 as a problem like every other error."""
    plain = response.get("content", {}).get("application/json", {}).get("schema", {})
    if status == "422" and plain.get("$ref", "").endswith("/HTTPValidationError"):
        response["content"] = dict(_PROBLEM)


def _hoist_defs(paths: dict, schemas: dict) -> None:
    """Request bodies written by hand (pydantic's model_json_schema) carry their nested models in
    `$defs`: move them into components.schemas, and point their refs (`#/$defs/X`, or already
    templated into components) there."""
    for operations in paths.values():
        for operation in operations.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                definitions = media.get("schema", {}).pop("$defs", {})
                _point_refs(media)
                for name, definition in definitions.items():
                    _point_refs(definition)
                    schemas.setdefault(name, definition)


def _point_refs(node: object) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node["$ref"] = "#/components/schemas/" + ref.removeprefix("#/$defs/")
        for value in node.values():
            _point_refs(value)
    elif isinstance(node, list):
        for value in node:
            _point_refs(value)


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
                for status, response in operation.get("responses", {}).items():
                    _validation_problems(response, status)
                    _problem_media_type(response)
        _hoist_defs(schema.get("paths", {}), components.setdefault("schemas", {}))
        _dialect_errors(schema.get("paths", {}), shapes or [])
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
