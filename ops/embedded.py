"""`renderq dev`: the whole service in one process, nothing to install.

fakeredis stands in for Redis, Celery's in-memory transport for the broker, and the local
disk for S3. The API serves on a thread; the Celery worker (solo pool) runs on the main
thread, so that Ctrl+C stops it cleanly. Good for trying the API; not for production.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from devkit.tiny_model import is_tiny_model

log = logging.getLogger("renderq.dev")

DEV_HOME = Path(".renderq")


def _ensure_model(default_model: str) -> str:
    if default_model:
        return default_model
    from devkit.tiny_model import build_tiny_model, is_tiny_model

    directory = DEV_HOME / "tiny-model"
    if not is_tiny_model(directory):
        log.info("building the tiny random-weight model in %s (first run only)", directory)
        build_tiny_model(directory)
    log.warning(
        "RENDERQ_DEFAULT_MODEL is not set: serving a tiny RANDOM-WEIGHT model, so every image is noise. "
        "Point RENDERQ_DEFAULT_MODEL at a diffusers model (a hub id such as "
        "stable-diffusion-v1-5/stable-diffusion-v1-5, or a local directory) for real images."
    )
    return str(directory)


def _ensure_catalog(tiny_model: str) -> str:
    """With the tiny model, also tiny companions (LoRAs, upscaler, background remover), so that
    every operation can be tried in dev mode."""
    from devkit.tiny_catalog import CATALOG_FILE, build_tiny_catalog

    path = DEV_HOME / "tiny-catalog" / CATALOG_FILE
    if not path.exists():
        log.info("building tiny LoRAs, upscaler and segmenter in %s (first run only)", path.parent)
        build_tiny_catalog(tiny_model, path.parent)
    return str(path)


def _ensure_secrets_key() -> str:
    """A Fernet key for destination credentials, generated once into the dev state directory."""
    path = DEV_HOME / "secrets.key"
    if not path.exists():
        from cryptography.fernet import Fernet

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    return path.read_text().strip()


def run_dev(host: str, port: int) -> None:
    import uvicorn

    # Settings are read from the environment once; dev mode fills in its embedded defaults.
    os.environ["RENDERQ_EMBEDDED"] = "true"
    os.environ.setdefault("RENDERQ_STORAGE", "local")
    os.environ.setdefault("RENDERQ_LOCAL_DIR", str(DEV_HOME / "images"))
    os.environ.setdefault("RENDERQ_PUBLIC_BASE_URL", f"http://{host}:{port}")
    if not os.environ.get("RENDERQ_SECRETS_KEY"):
        os.environ["RENDERQ_SECRETS_KEY"] = _ensure_secrets_key()
    os.environ["RENDERQ_DEFAULT_MODEL"] = _ensure_model(os.environ.get("RENDERQ_DEFAULT_MODEL", ""))
    if not os.environ.get("RENDERQ_MODELS_FILE") and is_tiny_model(os.environ["RENDERQ_DEFAULT_MODEL"]):
        os.environ["RENDERQ_MODELS_FILE"] = _ensure_catalog(os.environ["RENDERQ_DEFAULT_MODEL"])

    from core.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()

    from api.app import create_app
    from api.services import Services
    from worker.celery_app import app as celery_app
    from worker.reaper import Reaper
    from worker.runtime import get_runtime

    runtime = get_runtime()
    runtime.warm()
    services = Services(settings=settings, runs=runtime.runs, images=runtime.images, celery=celery_app)
    server = uvicorn.Server(uvicorn.Config(create_app(services), host=host, port=port, log_level="info"))
    server.install_signal_handlers = lambda: None  # the worker on the main thread owns signals
    threading.Thread(target=server.run, name="api", daemon=True).start()
    reaper = Reaper(celery_app, runtime)
    reaper.start()
    log.info("renderq dev: API on http://%s:%d (docs at /docs); worker and storage embedded", host, port)
    log.warning(
        "renderq dev serves /v1 WITHOUT API KEYS: anyone who can reach http://%s:%d can use it. "
        "Production (`renderq api`) requires keys (`renderq keys create --tenant NAME`).",
        host, port,
    )
    from core.queue import DEFAULT_WORKER_QUEUES, WEBHOOK_QUEUE

    # Render queues in priority order, then webhooks (in dev mode one solo worker does both).
    queues = f"{DEFAULT_WORKER_QUEUES},{WEBHOOK_QUEUE}"
    worker = celery_app.Worker(pool="solo", concurrency=1, loglevel="INFO", without_mingle=True, without_gossip=True, queues=queues)
    try:
        worker.start()
    finally:
        reaper.stop()
        server.should_exit = True
