"""Structured logs: one JSON object per line, carrying the request id and run id of the work
being logged.

It lives in `storage/` for the reason settings do: the API and the worker both import this
room and nothing of ours sits lower. The ids travel in context variables: the API sets the
request id per request (api/request_id.py), the worker sets both per task (worker/tasks.py),
and every log record picks them up through `ContextFilter`.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

from .settings import Settings

request_id_var: ContextVar[str | None] = ContextVar("renderq_request_id", default=None)
run_id_var: ContextVar[str | None] = ContextVar("renderq_run_id", default=None)

# A caller's X-Request-ID is kept only when it is short and plain, so it cannot smuggle
# newlines or markup into logs and headers.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


def accept_request_id(value: str | None) -> str:
    """The caller's request id when acceptable, else a fresh one."""
    if value and _REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.run_id = run_id_var.get()
        return True


def configure_logging(settings: Settings, process: str) -> None:
    """Root logging for a renderq process (`process` names it in every line: api, worker, dev)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if settings.log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}{request_id}{run_id}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"process": process},
                timestamp=False,
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    logging.captureWarnings(True)
    # Libraries that would otherwise print their own formats or flood the log.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "kombu"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # api/request_id.py logs each request
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
