"""`renderq worker --gpus 0,1|all`: one render worker process per GPU, each seeing only its own.

Each worker is `renderq worker` as without `--gpus` (one render at a time, prefork,
concurrency 1), started as its own process with `CUDA_VISIBLE_DEVICES` set to its GPU, so
`cuda:0` in it is that GPU, and its own Celery hostname (`gpu<N>@%h`, or the name given with
`--hostname` plus `-gpu<N>`). This process only supervises: it forwards SIGTERM and SIGINT
(Celery's warm shutdown: renders in progress finish) and, when one worker exits, stops the
others and exits with that worker's status, so a process manager (Docker's restart policy,
systemd) restarts the set.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from core.queue import is_render_queue, render_queues
from core.settings import POOL_NAME_RULE, valid_pool_name

log = logging.getLogger("renderq.cli")

# What CUDA_VISIBLE_DEVICES takes: an index as nvidia-smi numbers them, or a GPU/MIG UUID.
GPU_ID = re.compile(r"\d+|(GPU|MIG)-[\w/-]+")


class GpuListError(ValueError):
    """--gpus names no usable GPU list."""


@dataclass(frozen=True)
class WorkerCommand:
    gpu: str
    hostname: str
    argv: list[str]
    env: dict[str, str]


def count_visible_gpus() -> int:
    """GPUs on this machine: nvidia-smi's list where it is installed, else torch's count."""
    if shutil.which("nvidia-smi"):
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
        if listed.returncode == 0:
            return sum(1 for line in listed.stdout.splitlines() if line.startswith("GPU "))
    import torch

    return torch.cuda.device_count()


def parse_gpus(value: str, environ: Mapping[str, str], count_gpus: Callable[[], int]) -> list[str]:
    """The GPUs of `--gpus`: `all` is those CUDA_VISIBLE_DEVICES already lists, else every GPU
    found; otherwise a comma-separated list of indexes or UUIDs."""
    if value.strip() == "all":
        visible = environ.get("CUDA_VISIBLE_DEVICES")
        gpus = [g.strip() for g in visible.split(",") if g.strip()] if visible is not None else [str(i) for i in range(count_gpus())]
        if not gpus:
            raise GpuListError("--gpus all: no GPU found on this machine")
    else:
        gpus = [g.strip() for g in value.split(",") if g.strip()]
        if not gpus:
            raise GpuListError(f"--gpus {value!r}: no GPU listed")
    for gpu in gpus:
        if not GPU_ID.fullmatch(gpu):
            raise GpuListError(f"--gpus: {gpu!r} is not a GPU index or UUID")
    repeated = sorted({gpu for gpu in gpus if gpus.count(gpu) > 1})
    if repeated:
        raise GpuListError(f"--gpus: GPU {', '.join(repeated)} listed twice (one worker per GPU)")
    return gpus


def hostname_for(hostname: str, gpu: str, position: int) -> str:
    """`gpu0@%h` by default; `name-gpu0@host` from `--hostname=name@host`."""
    label = f"gpu{gpu if gpu.isdigit() else position}"
    if not hostname:
        return f"{label}@%h"
    name, at, host = hostname.partition("@")
    return f"{name}-{label}{at}{host}"


def worker_queues(args) -> tuple[str, bool]:
    """The queues `renderq worker` consumes (`--queues`, else its `--pool`'s render queues, high
    first) and whether any is a render queue (a render worker: one prefork process per GPU)."""
    pool = getattr(args, "pool", "") or ""
    if pool and not valid_pool_name(pool):
        raise GpuListError(f"--pool {pool!r} is not a pool name ({POOL_NAME_RULE})")
    queues = args.queues or ",".join(render_queues(pool).values())
    return queues, any(is_render_queue(queue) for queue in queues.split(","))


def worker_commands(args, environ: Mapping[str, str] | None = None,
                    count_gpus: Callable[[], int] = count_visible_gpus) -> list[WorkerCommand]:
    """One `renderq worker` command per GPU of `args.gpus`, with the rest of `args` as given."""
    environ = dict(os.environ if environ is None else environ)
    queues, render = worker_queues(args)
    if not render:
        raise GpuListError("--gpus is for render workers: --queues names none of the render queues")
    commands = []
    for position, gpu in enumerate(parse_gpus(args.gpus, environ, count_gpus)):
        hostname = hostname_for(args.hostname, gpu, position)
        argv = [sys.executable, "-m", "ops.cli", "worker", f"--queues={queues}", f"--loglevel={args.loglevel}",
                f"--hostname={hostname}", *([f"--pool={args.pool}"] if args.pool else [])]
        commands.append(WorkerCommand(gpu, hostname, argv, environ | {"CUDA_VISIBLE_DEVICES": gpu}))
    return commands


def run_workers(commands: list[WorkerCommand], poll_seconds: float = 0.5) -> int:
    """Start every worker, forward SIGTERM/SIGINT to them, and return once all have exited:
    when one exits, the others are asked to stop (warm shutdown) too."""
    procs: list[subprocess.Popen] = []

    def forward(signum, frame) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for command in commands:
            # A session of its own: a terminal's Ctrl-C reaches this process only, which forwards it once.
            procs.append(subprocess.Popen(command.argv, env=command.env, start_new_session=True))
            log.info("worker %s on GPU %s started (pid %d)", command.hostname, command.gpu, procs[-1].pid)
        first = _wait_for_first_exit(procs, poll_seconds)
        log.warning("worker %s on GPU %s exited with %s; stopping the others",
                    commands[first].hostname, commands[first].gpu, procs[first].returncode)
        forward(signal.SIGTERM, None)
        for proc in procs:
            proc.wait()
        status = procs[first].returncode
        return 128 - status if status < 0 else status  # killed by signal N: 128 + N, as a shell says
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_for_first_exit(procs: list[subprocess.Popen], poll_seconds: float) -> int:
    while True:
        for index, proc in enumerate(procs):
            if proc.poll() is not None:
                return index
        time.sleep(poll_seconds)
