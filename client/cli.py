"""The `renderq` command: run the service's processes and build the tiny test model."""

from __future__ import annotations

import argparse
import logging
import os
import sys


def _cmd_dev(args: argparse.Namespace) -> int:
    from .embedded import run_dev

    run_dev(args.host, args.port)
    return 0


def _cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    # uvloop and httptools when installed (they are dependencies); no per-request access log
    # unless asked for: at a thousand requests a second it costs more than the Redis calls.
    uvicorn.run(
        "api.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
        log_level="info", access_log=args.access_log, loop="auto", http="auto",
    )
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from worker.celery_app import DEFAULT_WORKER_QUEUES, RENDER_QUEUES, app

    queues = args.queues or DEFAULT_WORKER_QUEUES
    if set(queues.split(",")) & set(RENDER_QUEUES.values()):
        # One render process per GPU: concurrency 1, prefork so that time limits can kill a stuck
        # render, and the model loads in the child after the fork (worker_process_init).
        pool = ["--pool=prefork", "--concurrency=1"]
    else:
        # Webhook deliveries only: I/O bound, no model; threads wait on receivers side by side.
        pool = ["--pool=threads", f"--concurrency={args.concurrency}"]
    # Queue order matters: kombu takes from the first non-empty queue (high → normal → low).
    argv = ["worker", *pool, "--without-mingle", "--without-gossip", f"--loglevel={args.loglevel}", f"--queues={queues}"]
    if args.hostname:
        argv.append(f"--hostname={args.hostname}")
    app.worker_main(argv)
    return 0


def _cmd_tiny_model(args: argparse.Namespace) -> int:
    from pipelines.tiny_model import build_tiny_model

    path = build_tiny_model(args.directory, seed=args.seed)
    print(path)
    if args.catalog:
        from pipelines.tiny_catalog import build_tiny_catalog

        print(build_tiny_catalog(path, args.catalog))  # point RENDERQ_MODELS_FILE at it
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="renderq", description="Self-hosted asynchronous image rendering.")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="API + worker + storage in one process, nothing to install")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.set_defaults(func=_cmd_dev)

    api = sub.add_parser("api", help="the HTTP API (needs Redis and S3 settings)")
    api.add_argument("--host", default="0.0.0.0")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=1)
    api.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=False, help="log every request")
    api.set_defaults(func=_cmd_api)

    worker = sub.add_parser("worker", help="a render worker (one per GPU)")
    worker.add_argument(
        "--queues",
        default="",
        help="comma-separated, in priority order; default renderq.render.high,renderq.render,renderq.render.low. "
        "A webhook worker: --queues=renderq.webhooks",
    )
    worker.add_argument("--concurrency", type=int, default=8, help="threads of a webhook-only worker")
    worker.add_argument("--hostname", default="")
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(func=_cmd_worker)

    from .commands import add_commands

    add_commands(sub)

    tiny = sub.add_parser("tiny-model", help="build a tiny random-weight Stable Diffusion pipeline")
    tiny.add_argument("directory")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--catalog", default="", help="also build tiny LoRAs, upscaler and segmenter here, with models.json")
    tiny.set_defaults(func=_cmd_tiny_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("RENDERQ_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
