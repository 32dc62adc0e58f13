"""The `renderq` command: run the service's processes and build the tiny test model."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

log = logging.getLogger("renderq.cli")


def _cmd_dev(args: argparse.Namespace) -> int:
    from .embedded import run_dev

    run_dev(args.host, args.port)
    return 0


def _auth_ready() -> bool:
    """The API serves /v1 only with keys, unless RENDERQ_AUTH_DISABLED=true says otherwise."""
    import redis

    from storage.keys import KeyStore
    from storage.redis_client import make_redis
    from core.settings import get_settings

    settings = get_settings()
    if settings.auth_disabled:
        log.warning("AUTH DISABLED (RENDERQ_AUTH_DISABLED=true): anyone who reaches this API can submit and read runs")
        return True
    try:
        keys = KeyStore(make_redis(settings)).count_active()
    except redis.RedisError as exc:
        # Auth stays enforced; an API must be able to start while Redis restarts.
        log.warning("could not count API keys (Redis unreachable: %s); starting with auth enforced", exc)
        return True
    if keys == 0:
        log.error(
            "refusing to start: no API keys exist, so nobody could call this API. Create one with "
            "`renderq keys create --tenant NAME`, or set RENDERQ_AUTH_DISABLED=true for a trusted network only."
        )
        return False
    log.info("auth enforced: %d active API keys", keys)
    return True


def _cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    if not _auth_ready():
        return 2
    if args.access_log:
        os.environ["RENDERQ_ACCESS_LOG"] = "true"  # read by the API processes uvicorn starts
    # uvloop and httptools when installed (they are dependencies); no per-request access log
    # unless asked for: at a thousand requests a second it costs more than the Redis calls.
    # log_config=None keeps the JSON logging set up in main(); api/request_id.py writes the
    # access lines (with request id and tenant) when RENDERQ_ACCESS_LOG is on.
    uvicorn.run(
        "api.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
        log_config=None, access_log=False, loop="auto", http="auto",
    )
    return 0


def _key_view(key) -> dict:
    return key.model_dump(exclude_none=True) | {"active": key.active}


def _cmd_keys(args: argparse.Namespace) -> int:
    from storage.keys import KeyStore
    from storage.redis_client import make_redis
    from core.settings import get_settings

    store = KeyStore(make_redis(get_settings()))
    if args.keys_command == "create":
        try:
            key, presented = store.create(args.tenant, args.name, args.rate_limit, args.max_active_runs)
        except ValueError as exc:
            print(f"renderq keys create: {exc}", file=sys.stderr)
            return 2
        # The key itself is printed once and never stored; only its SHA-256 is kept.
        print(json.dumps(_key_view(key) | {"key": presented}))
    elif args.keys_command == "list":
        for key in store.list():
            print(json.dumps(_key_view(key)))
    elif args.keys_command == "revoke":
        if not store.revoke(args.key_id):
            print(f"renderq keys revoke: no active key {args.key_id}", file=sys.stderr)
            return 1
        print(json.dumps({"key_id": args.key_id, "revoked": True}))
    return 0


def _cmd_credits(args: argparse.Namespace) -> int:
    from storage.credits import CreditStore
    from storage.keys import TENANT_PATTERN
    from storage.prices import credits, millicredits
    from storage.redis_client import make_redis
    from core.settings import get_settings

    store = CreditStore(make_redis(get_settings()))
    if not TENANT_PATTERN.match(args.tenant):
        print(f"renderq credits: {args.tenant!r} is not a tenant name", file=sys.stderr)
        return 2
    if args.credits_command == "grant":
        try:
            amount = millicredits(args.amount)
        except (ValueError, ArithmeticError):
            print(f"renderq credits grant: {args.amount!r}: give credits with at most three decimals", file=sys.stderr)
            return 2
        account = store.grant(args.tenant, amount)
    else:
        account = store.account(args.tenant)
        if account is None:
            print(json.dumps({"tenant": args.tenant, "metered": False}))
            return 0
    print(json.dumps({
        "tenant": account.tenant, "metered": True, "balance": credits(account.balance),
        "reserved": credits(account.reserved), "credits_remaining": credits(account.available),
    }))
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    if args.gpus:
        return _gpu_workers(args)
    from core.settings import get_settings
    from .gpu_workers import GpuListError, worker_queues

    try:
        queues, render = worker_queues(args)
    except GpuListError as exc:
        print(f"renderq worker: {exc}", file=sys.stderr)
        return 2
    if args.pool:
        os.environ["RENDERQ_WORKER_POOL"] = args.pool  # read by the render process: which models to warm
        get_settings.cache_clear()
    from worker.celery_app import app

    if render:
        # One render process per GPU: concurrency 1, prefork so that time limits can kill a stuck
        # render, and the model loads in the child after the fork (worker_process_init).
        pool = ["--pool=prefork", "--concurrency=1"]
    else:
        # Webhook deliveries only: I/O bound, no model; threads wait on receivers side by side.
        pool = ["--pool=threads", f"--concurrency={args.concurrency}"]
    # Queue order matters: kombu takes from the first non-empty queue (high → normal → low).
    argv = ["worker", *pool, "--without-mingle", "--without-gossip", f"--loglevel={args.loglevel}", f"--queues={queues}"]
    if get_settings().log_format == "json":
        argv.insert(0, "--quiet")  # no banner: the log stays one JSON object per line
    if args.hostname:
        argv.append(f"--hostname={args.hostname}")
    app.worker_main(argv)
    return 0


def _gpu_workers(args: argparse.Namespace) -> int:
    """`--gpus`: one `renderq worker` process per GPU (ops/gpu_workers.py), supervised here."""
    from .gpu_workers import GpuListError, run_workers, worker_commands

    try:
        commands = worker_commands(args)
    except GpuListError as exc:
        print(f"renderq worker: {exc}", file=sys.stderr)
        return 2
    return run_workers(commands)


def _cmd_tiny_model(args: argparse.Namespace) -> int:
    from devkit.tiny_model import build_tiny_model

    path = build_tiny_model(args.directory, seed=args.seed)
    print(path)
    if args.catalog:
        from devkit.tiny_catalog import build_tiny_catalog

        print(build_tiny_catalog(path, args.catalog))  # point RENDERQ_MODELS_FILE at it
    return 0


def _add_worker_parser(sub) -> None:
    """`renderq worker` and its options."""
    worker = sub.add_parser("worker", help="a render worker (one per GPU; --gpus starts one per listed GPU)")
    worker.add_argument(
        "--queues",
        default="",
        help="comma-separated, in priority order; default: the render queues of --pool (without it "
        "renderq.render.high,renderq.render,renderq.render.low). A webhook worker: --queues=renderq.webhooks",
    )
    worker.add_argument(
        "--pool",
        default="",
        help="consume only this worker pool's render queues (renderq.render.NAME.high, renderq.render.NAME, "
        "renderq.render.NAME.low) and warm only its models (RENDERQ_POOLS, the catalog's `pool`)",
    )
    worker.add_argument("--concurrency", type=int, default=8, help="threads of a webhook-only worker")
    worker.add_argument("--hostname", default="", help="Celery node name; with --gpus each worker's gets -gpu<N>")
    worker.add_argument(
        "--gpus",
        default="",
        help="one worker process per GPU, each with CUDA_VISIBLE_DEVICES set to its own: GPU indexes (0,1) or "
        "UUIDs, or `all`. Without it: one worker in this process, on what CUDA_VISIBLE_DEVICES lets it see",
    )
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(func=_cmd_worker)


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

    _add_worker_parser(sub)

    keys = sub.add_parser("keys", help="create, list and revoke API keys (stored hashed in Redis)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="a new key; printed once, only its hash is stored")
    create.add_argument("--tenant", required=True, help="owner of the runs made with this key")
    create.add_argument("--name", default="", help="a label, e.g. who holds the key")
    create.add_argument("--rate-limit", default=None, help="e.g. 10/second (default: RENDERQ_RATE_LIMIT)")
    create.add_argument("--max-active-runs", type=int, default=None, help="default: RENDERQ_MAX_ACTIVE_RUNS")
    keys_sub.add_parser("list", help="all keys (never the keys themselves)")
    revoke = keys_sub.add_parser("revoke", help="refuse a key from the next request on")
    revoke.add_argument("key_id")
    keys.set_defaults(func=_cmd_keys)

    credit = sub.add_parser("credits", help="grant and show tenants' credits (a tenant never granted any is unmetered)")
    credit_sub = credit.add_subparsers(dest="credits_command", required=True)
    grant = credit_sub.add_parser("grant", help="add credits to a tenant's balance (negative: take back)")
    grant.add_argument("tenant")
    grant.add_argument("amount", help="credits, up to three decimals, e.g. 100 or 2.5")
    show = credit_sub.add_parser("show", help="balance, reserved by runs in flight, and available")
    show.add_argument("tenant")
    credit.set_defaults(func=_cmd_credits)

    from client.commands import add_commands

    add_commands(sub)

    tiny = sub.add_parser("tiny-model", help="build a tiny random-weight Stable Diffusion pipeline")
    tiny.add_argument("directory")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--catalog", default="", help="also build tiny LoRAs, upscaler and segmenter here, with models.json")
    tiny.set_defaults(func=_cmd_tiny_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    from core.logs import configure_logging
    from core.settings import get_settings

    args = build_parser().parse_args(argv)
    if args.command == "dev":
        os.environ.setdefault("RENDERQ_LOG_FORMAT", "text")  # a person at a terminal reads these
    configure_logging(get_settings(), args.command)
    status = args.func(args)
    if args.command == "worker":
        # Stopped: runs stored, messages acknowledged, render processes gone, broker connection
        # closed. Exit now: tearing down an interpreter that imported torch and diffusers took a
        # stopping worker ~1 s more on a busy machine (tests/test_scale_down.py: idle, within 2 s).
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
