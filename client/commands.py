"""`renderq submit` and `renderq batch`: the caller's commands, on the Python client, with rich progress bars."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .client import FINAL, RenderqClient, RenderqError

MANIFEST = "manifest.jsonl"
STATE = ".renderq-batch.json"
CHUNK = 1000  # the API's batch limit


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        transient=False, disable=not sys.stderr.isatty() and os.environ.get("RENDERQ_PROGRESS") != "1",
    )


def cmd_submit(args: argparse.Namespace) -> int:
    fields = {"width": args.width, "height": args.height, "num_inference_steps": args.steps, "seed": args.seed,
              "priority": args.priority, "negative_prompt": args.negative_prompt, "num_images": args.num_images}
    with RenderqClient(args.api, api_key=args.api_key) as rq:
        try:
            run = rq.submit(args.prompt, **fields)
        except RenderqError as exc:
            print(json.dumps(exc.problem, indent=2), file=sys.stderr)
            return 2
        if not args.wait:
            print(json.dumps(run, indent=2))
            return 0
        with _progress() as bar:
            task = bar.add_task(run["run_id"], total=100)
            run = rq.wait(run["run_id"], on_update=lambda r: bar.update(task, completed=r["progress"], description=f"{r['run_id']} {r['status']}"))
        if run["status"] != "completed":
            print(json.dumps(run, indent=2), file=sys.stderr)
            return 1
        paths = rq.download(run, args.out) if args.out else []
        print(json.dumps({"run_id": run["run_id"], "status": run["status"], "files": [str(p) for p in paths]}))
    return 0


def read_requests(path: Path) -> list[dict[str, Any]]:
    """One request per line: a JSON object (any submit field) or a JSON string (the prompt)."""
    requests = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        item = json.loads(line)
        requests.append({"prompt": item} if isinstance(item, str) else item)
    return requests


class BatchJob:
    """What a `renderq batch` run has done so far in DIR, so that a rerun goes on from there:
    the manifest (one line per downloaded image) and which run renders each input line."""

    def __init__(self, out: Path, requests: list[dict[str, Any]]) -> None:
        self.out = out
        self.requests = requests
        self.digest = hashlib.sha256(json.dumps(requests, sort_keys=True).encode()).hexdigest()
        out.mkdir(parents=True, exist_ok=True)
        self.done: set[int] = set()
        manifest = out / MANIFEST
        if manifest.exists():
            for line in manifest.read_text().splitlines():
                entry = json.loads(line)
                if (out / entry["file"]).exists():
                    self.done.add(entry["index"])
        state = json.loads((out / STATE).read_text()) if (out / STATE).exists() else {}
        same = state.get("digest") == self.digest
        self.runs: dict[int, str] = {int(k): v for k, v in state.get("runs", {}).items()} if same else {}
        self.batches: list[str] = state.get("batches", []) if same else []

    def save(self) -> None:
        (self.out / STATE).write_text(json.dumps({"digest": self.digest, "runs": self.runs, "batches": self.batches}))

    def record(self, index: int, run: dict[str, Any], paths: list[Path]) -> None:
        with open(self.out / MANIFEST, "a") as manifest:
            for image, path in zip(run["images"], paths):
                entry = {"index": index, "prompt": run["request"]["prompt"], "seed": image["seed"], "run_id": run["run_id"], "file": path.name}
                manifest.write(json.dumps(entry) + "\n")
        self.done.add(index)


def cmd_batch(args: argparse.Namespace) -> int:
    requests = read_requests(Path(args.file))
    job = BatchJob(Path(args.out), requests)
    failed: dict[int, dict] = {}
    with RenderqClient(args.api, api_key=args.api_key) as rq, _progress() as bar:
        task = bar.add_task("batch", total=len(requests), completed=len(job.done))
        # Runs from an earlier attempt that are still there are waited for, not submitted again.
        for index, run_id in list(job.runs.items()):
            if index in job.done:
                continue
            try:
                if rq.get(run_id)["status"] in ("failed", "canceled", "expired"):
                    del job.runs[index]
            except RenderqError:
                del job.runs[index]
        todo = [i for i in range(len(requests)) if i not in job.done and i not in job.runs]
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start:start + CHUNK]
            created = rq.batch([requests[i] | ({"priority": args.priority} if args.priority else {}) for i in chunk])
            job.runs.update(zip(chunk, created["run_ids"]))
            job.batches.append(created["batch_id"])
            job.save()
        pending = {run_id: index for index, run_id in job.runs.items() if index not in job.done}
        delay = 0.2
        while pending:
            progressed = False
            ended = set()
            for batch_id in job.batches:  # one call per batch says which runs have ended
                try:
                    ended |= {r["run_id"] for r in rq.get_batch(batch_id)["runs"] if r["status"] in FINAL}
                except RenderqError:  # expired batch: ask its runs one by one
                    ended |= set(pending)
            for run_id in [r for r in pending if r in ended]:
                index = pending[run_id]
                try:
                    run = rq.get(run_id)
                except RenderqError as exc:
                    run = {"run_id": run_id, "status": "gone", "error": exc.problem}
                if run["status"] not in FINAL and run["status"] != "gone":
                    continue
                del pending[run_id]
                progressed = True
                if run["status"] == "completed":
                    job.record(index, run, rq.download(run, job.out))  # as soon as it is done
                else:
                    failed[index] = run
                bar.update(task, advance=1)
            delay = 0.2 if progressed else min(delay * 1.5, 2.0)
            if pending:
                time.sleep(delay)
    summary = {"total": len(requests), "downloaded": len(job.done), "failed": sorted(failed), "manifest": str(job.out / MANIFEST)}
    print(json.dumps(summary))
    return 1 if failed else 0


def add_commands(sub) -> None:
    default_api = os.environ.get("RENDERQ_API", "http://127.0.0.1:8000")
    submit = sub.add_parser("submit", help="submit one text-to-image run (optionally wait and download)")
    submit.add_argument("prompt")
    submit.add_argument("--api", default=default_api, help="API base URL (env RENDERQ_API)")
    submit.add_argument("--api-key", default=None, help="API key (env RENDERQ_API_KEY)")
    submit.add_argument("--wait", action="store_true", help="show a progress bar until the run ends")
    submit.add_argument("--out", default=None, help="download the PNGs here (with --wait)")
    submit.add_argument("--width", type=int)
    submit.add_argument("--height", type=int)
    submit.add_argument("--steps", type=int)
    submit.add_argument("--seed", type=int)
    submit.add_argument("--num-images", type=int)
    submit.add_argument("--negative-prompt")
    submit.add_argument("--priority", choices=["high", "normal", "low"])
    submit.set_defaults(func=cmd_submit)

    batch = sub.add_parser("batch", help="render every line of a JSONL file, downloading each PNG as it completes (resumable)")
    batch.add_argument("file", help="JSONL: one request object (or prompt string) per line")
    batch.add_argument("--out", required=True, help="directory for the PNGs and manifest.jsonl; a rerun skips what is there")
    batch.add_argument("--api", default=default_api, help="API base URL (env RENDERQ_API)")
    batch.add_argument("--api-key", default=None, help="API key (env RENDERQ_API_KEY)")
    batch.add_argument("--priority", choices=["high", "normal", "low"], default="low")
    batch.set_defaults(func=cmd_batch)
