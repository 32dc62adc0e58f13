"""The workers' Celery app: the queue contract's app (core/queue.py) over this process's settings.
`celery -A worker.celery_app` and the tasks bind to it."""

from __future__ import annotations

from celery.signals import setup_logging

from core.queue import make_celery
from core.settings import get_settings


@setup_logging.connect
def _keep_renderq_logging(**_) -> None:
    """Logging is set up by the `renderq` command (core/logs.py: JSON lines with request and
    run ids); a receiver here stops Celery from installing its own handlers over it."""


app = make_celery(get_settings())
