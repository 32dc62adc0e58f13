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


def quiet_libraries() -> None:
    """A person reads this terminal: the libraries' notices (torchvision fallbacks, safety
    checker, Celery's banner) and progress bars (model loading, shard writing) stay out of it;
    renderq's own lines say what is being built and when the service is ready."""
    import warnings

    for name, value in (("TRANSFORMERS_VERBOSITY", "error"), ("DIFFUSERS_VERBOSITY", "error"),
                        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TQDM_DISABLE", "1")):
        os.environ.setdefault(name, value)
    warnings.filterwarnings("ignore")
    from diffusers.utils import logging as diffusers_logging
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()
    disable_progress_bars()
    # The in-memory broker's notices (no hostname, prefetch unsupported) are not the user's concern.
    for name, level in (("uvicorn.error", logging.WARNING), ("uvicorn.access", logging.WARNING),
                        ("celery", logging.ERROR), ("kombu", logging.ERROR)):
        logging.getLogger(name).setLevel(level)


def banner(host: str, port: int, tiny: bool, playground: bool = True) -> str:
    base = f"http://{host}:{port}"
    body = '{"prompt":"a blue ceramic mug","width":64,"height":64,"num_inference_steps":4}'
    lines = [
        "",
        f"  renderq dev is ready: {base}",
        *([f"  open       {base}/          the playground: try renderq in your browser"] if playground else []),
        f"  API docs   {base}/docs      (reference: docs/ in the repository)",
        f"  try        curl -s -XPOST {base}/v1/generations -H 'content-type: application/json' -d '{body}'",
        "  then poll  the run_id it answers at /v1/generations/{run_id}",
        "  no API keys in dev mode; Ctrl+C stops" + ("; images are noise (tiny random-weight model)" if tiny else ""),
        "",
    ]
    return "\n".join(lines)


def run_dev(host: str, port: int) -> None:
    quiet_libraries()
    import uvicorn

    # Settings are read from the environment once; dev mode fills in its embedded defaults.
    os.environ["RENDERQ_EMBEDDED"] = "true"
    os.environ.setdefault("RENDERQ_STORAGE", "local")
    os.environ.setdefault("RENDERQ_LOCAL_DIR", str(DEV_HOME / "images"))
    os.environ.setdefault("RENDERQ_PUBLIC_BASE_URL", f"http://{host}:{port}")
    # Watch it render: a preview every 2 steps (a tiny model's render has a handful).
    os.environ.setdefault("RENDERQ_PREVIEW_EVERY_STEPS", "2")
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
    server = uvicorn.Server(uvicorn.Config(create_app(services), host=host, port=port, log_level="warning"))
    server.install_signal_handlers = lambda: None  # the worker on the main thread owns signals
    threading.Thread(target=server.run, name="api", daemon=True).start()
    reaper = Reaper(celery_app, runtime)
    reaper.start()
    log.warning(
        "renderq dev serves /v1 WITHOUT API KEYS: anyone who can reach http://%s:%d can use it. "
        "Production (`renderq api`) requires keys (`renderq keys create --tenant NAME`).",
        host, port,
    )
    print(banner(host, port, is_tiny_model(settings.default_model), settings.playground), flush=True)
    from core.queue import PRIORITIES, WEBHOOK_QUEUE, render_queues

    # Every pool's render queues in priority order, then webhooks (in dev mode one solo worker does all).
    pools = runtime.catalog.pools()
    queues = ",".join([*(render_queues(pool)[p] for p in PRIORITIES for pool in pools), WEBHOOK_QUEUE])
    worker = celery_app.Worker(pool="solo", concurrency=1, loglevel="WARNING", quiet=True, without_mingle=True,
                               without_gossip=True, queues=queues)
    try:
        worker.start()
    finally:
        reaper.stop()
        server.should_exit = True
