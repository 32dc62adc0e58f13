"""Where one worker's time goes while it drains a backlog: `python -m bench.profile_drain
[--jobs 600] [--max-batch 8] [--out DIR]`.

Starts the stack (bench/stack.py), queues the tiny jobs with no worker running, starts one
worker and records both of its processes with py-spy (`--idle`: waiting counts, so the shares
are of wall time) until the backlog is drained; then prints the render process's main thread by
what it was doing, the busy samples of its other threads by their first frame of ours, and
those of its finisher process (worker/finishers.py: stores and completes rendered runs while the
next render runs). The raw
collapsed stacks stay in DIR for flame graphs. Needs py-spy (the `bench` extra) and the right
to attach to processes. Not part of BENCHMARKS.md: a tool for finding where the time goes.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from .batching import drain_figures
from .stack import TINY_JOB, Infra, finisher_processes, numbered, render_children, submit_batch, wait_drained

# The render process's main thread: the first of these found in a sample's stack names it.
MAIN_THREAD = (
    ("model call (pipelines/diffusion.py)", ("pipelines/diffusion.py",)),
    ("claiming a run with its render group's queued runs (one script)", ("claim_group",)),
    ("claiming its group's next runs (the group next in line: no Celery round trip)", ("claim_next",)),
    ("handing rendered runs to the finisher process", ("ProcessFinisher.submit",)),
    ("waiting for the next task from the Celery parent", ("workloop",)),
)
_WAITING = re.compile(r"^(Condition\.wait|Event\.wait|Queue\.get|_epoll\.poll|select|poll|sleep|_recv|_recv_bytes|recv)\b")
_OURS = re.compile(r"\((worker|storage|pipelines|core)/")


def classify(raw: str) -> tuple[Counter, Counter, int]:
    """(main thread by activity, other threads' busy samples by first frame of ours, main
    thread's samples) from py-spy's raw output (`frame;frame;… count` a line, outermost first)."""
    main, others, total = Counter(), Counter(), 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        if not frames[0].startswith("Thread._bootstrap"):
            total += int(count)
            name = next((label for label, needles in MAIN_THREAD if any(n in stack for n in needles)), None)
            main[name or _first_ours(frames) or "other (Celery, billiard)"] += int(count)
        elif not _WAITING.match(frames[-1]):
            others[_first_ours(frames) or "other"] += int(count)
    return main, others, total


def _first_ours(frames: list[str]) -> str | None:
    """The innermost frame in our packages with the one below it, e.g. `store_images → S3ImageStore.put`."""
    ours = [i for i, frame in enumerate(frames) if _OURS.search(frame)]
    if not ours:
        return None
    i = ours[-1]
    name = frames[i].split(" (")[0]
    return name + (f" → {frames[i + 1].split(' (')[0]}" if i + 1 < len(frames) else "")


def profile(infra: Infra, jobs: int, max_batch: int, out: Path) -> dict:
    stack = infra.stack(f"profile-{max_batch}", RENDERQ_MAX_BATCH=max_batch)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    try:
        stack.api()
        work = numbered(TINY_JOB, jobs)
        with stack.client() as client:
            run_ids = submit_batch(client, work)
        worker = stack.worker("profile", wait=False)
        redis = stack.redis()
        while redis.hget(f"renderq:run:{run_ids[0]}", "status") not in ("running", "completed"):
            time.sleep(0.05)
        targets = {"render": render_children(worker)[0].pid, "parent": worker.pid}
        targets |= {"finisher": process.pid for process in finisher_processes(worker)[:1]}
        spies = [subprocess.Popen([py_spy, "record", "-p", str(pid), "-r", "250", "-f", "raw", "--idle", "-o", str(out / f"{name}.txt")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name, pid in targets.items()]
        runs = wait_drained(stack, run_ids, 120 + jobs)
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
    finally:
        stack.stop()
    return drain_figures(work, runs, [(0.0, 0.0), (float("inf"), 0.0)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_drain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--max-batch", type=int, default=8, help="the worker's RENDERQ_MAX_BATCH (and the API's)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "renderq-profile", help="where py-spy's raw stacks go")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="renderq-profile-") as tmp:
        from devkit.tiny_model import build_tiny_model

        infra = Infra(workdir=Path(tmp), tiny_model=str(build_tiny_model(Path(tmp) / "tiny-model"))).start()
        try:
            figures = profile(infra, args.jobs, args.max_batch, args.out)
        finally:
            infra.stop()
    print(f"{args.jobs} jobs, RENDERQ_MAX_BATCH={args.max_batch}: {figures['images_per_second']:.1f} images/s, "
          f"{figures['mean_batch']:.2f} runs per model call")
    main_thread, others, total = classify((args.out / "render.txt").read_text())
    print(f"render process, main thread ({total} samples, shares of wall time):")
    for name, count in main_thread.most_common(12):
        print(f"  {100 * count / total:5.1f} %  {name}")
    print("render process, other threads, samples not idle (working or waiting on Redis/S3), as a share of the main thread's:")
    for name, count in others.most_common(12):
        print(f"  {100 * count / total:5.1f} %  {name}")
    finisher = args.out / "finisher.txt"
    if finisher.exists():
        busy, _, samples = classify(finisher.read_text())
        print(f"finisher process, main thread ({samples} samples, shares of wall time, by first frame of ours):")
        for name, count in busy.most_common(12):
            print(f"  {100 * count / samples:5.1f} %  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
