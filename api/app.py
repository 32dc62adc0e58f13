"""The FastAPI application: routes, problem handlers, and the services they share."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from storage.settings import get_settings

from .problems import install_problem_handlers
from .routes import assets, batches, events, files, generations, health, models, operations, problem_types, run_actions
from .services import Services

API_DESCRIPTION = """Asynchronous image rendering. Submit a run, get a `run_id` at once, then poll
`GET /v1/generations/{run_id}` for status, progress and temporary image URLs (kept 24 hours).
Every error is an RFC 9457 problem document (`application/problem+json`)."""


def create_app(services: Services | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if getattr(app.state, "services", None) is None:
            app.state.services = Services.from_settings(get_settings())
        yield

    app = FastAPI(title="renderq", version="0.1.0", description=API_DESCRIPTION, lifespan=lifespan)
    app.state.services = services
    install_problem_handlers(app)
    for module in (generations, run_actions, events, batches, operations, assets, models, health, files, problem_types):
        app.include_router(module.router)
    return app
