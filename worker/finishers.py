"""The render process's second hand: it stores and finishes rendered runs (encode, upload, asset
and run records, webhooks: worker/finishing.py) while the main thread renders the next ones.

Two kinds, one contract (`submit(rendered, done)`, `drain()`):

- `ProcessFinisher` (the default): a child process. Not a thread, because a thread of Python
  work (botocore signing an upload, redis-py, pydantic) in the render process holds the GIL
  that the model call needs between its many small torch ops: a busy second thread slowed a
  batched tiny-model call by 40 % (60 → 84 ms), and its CPU counted as the render's.
- `ThreadFinisher`: the same work on a thread of the render process; the embedded mode (one
  process, fakeredis that a child cannot share) and RENDERQ_FINISHER=thread use it.

Either way the hand-off is bounded (a render that ends while two model calls' runs are still
unfinished waits), and a handed-over run keeps the heartbeat of the render process until its
finisher says it is finished (`done`); if either process dies first, the heartbeat stops and
the reaper re-enqueues the run, so no run is lost (an upload of a run already taken back is a
superseded attempt: its result is dropped, its object overwritten by the re-render).
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from typing import Callable, Protocol

from .finishing import Rendered, finish_rendered
from .runtime import Runtime

log = logging.getLogger(__name__)
MAX_PENDING = 2  # model calls' runs handed over and not finished yet


class Finisher(Protocol):
    def submit(self, rendered: list[Rendered], done: Callable[[], None]) -> None: ...

    def drain(self) -> None: ...


class ThreadFinisher:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._queue: queue.Queue = queue.Queue(maxsize=MAX_PENDING - 1)  # plus the one being finished
        threading.Thread(target=self._work, name="finisher", daemon=True).start()

    def submit(self, rendered: list[Rendered], done: Callable[[], None]) -> None:
        self._queue.put((rendered, done))

    def drain(self) -> None:
        self._queue.join()

    def _work(self) -> None:
        while True:
            rendered, done = self._queue.get()
            try:
                finish_rendered(self.runtime, rendered)
            except Exception:  # each run's own failures are recorded by finish_rendered; this is a bug
                log.exception("finishing rendered runs failed")
            finally:
                done()
                self._queue.task_done()


class ProcessFinisher:
    """`python -m worker.finisher_process` on a pair of pipes: orders (a token and the runs of
    one model call) go down, tokens of finished orders come back to a reader thread that calls
    each order's `done`. Started with the render process (`start`), restarted on the next
    order if it died."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._pending: dict[int, Callable[[], None]] = {}
        self._tokens = 0
        self._process: subprocess.Popen | None = None
        self._orders: Connection | None = None

    def start(self) -> None:
        down_read, down_write = os.pipe()
        up_read, up_write = os.pipe()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "worker.finisher_process", str(down_read), str(up_write)],
            pass_fds=(down_read, up_write), stdin=subprocess.DEVNULL,
        )
        os.close(down_read)
        os.close(up_write)
        self._orders = Connection(down_write, readable=False)
        answers = Connection(up_read, writable=False)
        threading.Thread(target=self._read_answers, args=(answers, self._process), name="finisher-answers", daemon=True).start()

    def submit(self, rendered: list[Rendered], done: Callable[[], None]) -> None:
        with self._changed:
            self._changed.wait_for(lambda: len(self._pending) < MAX_PENDING)
            if self._process is None or self._process.poll() is not None:
                self.start()
            self._tokens += 1
            token, orders = self._tokens, self._orders
            self._pending[token] = done
        try:
            orders.send((token, rendered))
        except OSError:  # the finisher died: the reader thread ends this order (and restarts nothing)
            log.error("the finisher process is gone; its runs go back to the queue")

    def drain(self) -> None:
        with self._changed:
            self._changed.wait_for(lambda: not self._pending)
        if self._orders is not None:
            self._orders.close()  # the finisher exits on end of input

    def _read_answers(self, answers: Connection, process: subprocess.Popen) -> None:
        try:
            while True:
                self._done(answers.recv())
        except (EOFError, OSError):
            pass
        answers.close()
        process.wait()
        with self._changed:
            lost, self._pending = self._pending, {}
            if self._process is process:
                self._process = None
            self._changed.notify_all()
        if lost:
            log.error("the finisher process exited (%s) with %d model calls' runs unfinished; their heartbeats stop "
                      "and the reaper re-enqueues them", process.returncode, len(lost))
        for done in lost.values():
            done()

    def _done(self, token: int) -> None:
        with self._changed:
            done = self._pending.pop(token, None)
            self._changed.notify_all()
        if done is not None:
            done()


def make_finisher(runtime: Runtime) -> Finisher:
    """The finisher RENDERQ_FINISHER asks for; a thread in the embedded mode."""
    if runtime.settings.embedded or runtime.settings.finisher == "thread":
        return ThreadFinisher(runtime)
    finisher = ProcessFinisher()
    finisher.start()
    return finisher
