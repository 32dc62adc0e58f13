"""The finisher process of a render process (worker/finishers.py `ProcessFinisher`):
`python -m worker.finisher_process ORDERS_FD ANSWERS_FD`. Finishes each order's runs
(worker/finishing.py) and answers its token; exits when its render process closes the orders
pipe or dies. Imports no torch: it only encodes, uploads and writes records."""

from __future__ import annotations

import logging
import sys
from multiprocessing.connection import Connection

from core.logs import configure_logging
from core.settings import get_settings

from .finishing import finish_rendered
from .runtime import Runtime

log = logging.getLogger(__name__)


def serve(orders: Connection, answers: Connection) -> None:
    settings = get_settings()
    configure_logging(settings, "worker")
    runtime = Runtime(settings)
    _ = runtime.images  # opened (and the bucket checked) now, while the render process loads its model
    while True:
        try:
            token, rendered = orders.recv()
        except EOFError:  # the render process is done with us (or gone)
            return
        try:
            finish_rendered(runtime, rendered)
        except Exception:  # each run's own failures are recorded by finish_rendered; this is a bug
            log.exception("finishing rendered runs failed")
        try:
            answers.send(token)
        except OSError:
            return


def main(argv: list[str]) -> None:
    serve(Connection(int(argv[0]), writable=False), Connection(int(argv[1]), readable=False))


if __name__ == "__main__":
    main(sys.argv[1:])
