"""Fixtures: the tiny model, and a real stack (redis-server, SeaweedFS, Celery workers, API).

Two tiers. A test that starts a process (redis-server, `weed mini`, `renderq worker|api|dev`,
a `renderq` CLI run, any subprocess) is an `integration` test; every other test is in the
fast tier, which runs in-process only (fakeredis, in-memory broker, local storage):

    pytest -m "not integration"   # fast tier (`make test-fast`), no subprocess at all
    pytest                        # both tiers (`make test`, CI)

Held by mechanism, not by care: pytest_collection_modifyitems below marks `integration` every
test whose fixtures include one of PROCESS_FIXTURES (the fixtures of the real stack; a test
module's own stack fixtures build on them); a test that starts processes some other way
says so with `pytestmark = pytest.mark.integration`. In every test not so marked, starting a
process fails the test ("this fast test starts a process: mark it integration"), during its
fixtures' setup and teardown too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from devkit.procs import Proc, start_api, start_redis, start_seaweedfs, start_worker

S3_ACCESS_KEY = "renderq-test"
S3_SECRET_KEY = "renderq-test-secret"

# One intra-op thread for the torch of the in-process tests (set before any test module imports
# torch; the stack's processes get the same from make_stack). The tiny models gain nothing from
# two, and on a 2-core machine shared with other processes torch's OpenMP threads spin waiting
# for each other: the in-process pipeline tests took 51-81 s so instead of 16-22 s.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# The fixtures that start processes (through devkit/procs.py). pytest's `fixturenames` is the
# transitive closure, so a fixture built on any of these (make_stack needs redis_url and
# s3_endpoint) marks its tests too.
PROCESS_FIXTURES = frozenset({"redis_url", "s3_endpoint", "stack", "api"})

INTEGRATION_REASON = "this fast test starts a process: mark it integration"

# Whether this run is the fast tier: its -m leaves the integration tests out. Set before any
# test module is imported; tests/test_fuzz.py takes its default depth from it.
FAST_TIER = False


def pytest_configure(config):
    global FAST_TIER
    FAST_TIER = _leaves_out_integration(config.getoption("markexpr") or "")


def _leaves_out_integration(markexpr: str) -> bool:
    """Whether `-m markexpr` deselects a test marked `integration`, by pytest's own -m evaluation."""
    if not markexpr.strip():
        return False
    from _pytest.mark.expression import Expression

    return not Expression.compile(markexpr).evaluate(lambda name, **kwargs: name == "integration")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def _refuse_processes(item):
    """Every way this interpreter can start a process, made to fail the test: pytest.fail
    raises an OutcomeException (a BaseException), which no `except Exception` swallows."""

    def refuse(what):
        def refused(*args, **kwargs):
            pytest.fail(f"{INTEGRATION_REASON} ({item.nodeid} called {what})", pytrace=True)

        return refused

    import multiprocessing.util

    patch = pytest.MonkeyPatch()
    # Popen.__init__ starts the child in _execute_child: subprocess.run/call/check_output,
    # asyncio subprocesses, devkit.procs.Proc and `from subprocess import Popen` all go there.
    patch.setattr(subprocess.Popen, "_execute_child", refuse("subprocess.Popen"))
    for name in ("system", "fork", "forkpty", "posix_spawn", "posix_spawnp"):  # os.spawn*, popen: fork/posix_spawn
        if hasattr(os, name):
            patch.setattr(os, name, refuse(f"os.{name}"))
    patch.setattr(multiprocessing.util, "spawnv_passfds", refuse("multiprocessing (spawn)"))
    return patch


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _fast_only(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _fast_only(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    return (yield from _fast_only(item))


def _fast_only(item):
    """Around each phase of a test (setup includes session and module fixtures it is the first
    to need): processes refused unless the test is marked integration."""
    if item.get_closest_marker("integration") is not None:
        return (yield)
    patch = _refuse_processes(item)
    try:
        return (yield)
    finally:
        patch.undo()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    from devkit.tiny_model import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-model")))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    """Our own redis-server on a free port; the machine's 6379 only when there is no binary."""
    if shutil.which("redis-server") is None:
        yield os.environ.get("RENDERQ_TEST_REDIS_URL", "redis://127.0.0.1:6379")
        return
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> str:
    proc, endpoint = start_seaweedfs(tmp_path_factory.mktemp("weed"), S3_ACCESS_KEY, S3_SECRET_KEY)
    yield endpoint
    proc.stop()


def tiny_catalog_for(tiny_model: str) -> str:
    """The catalog of tiny companions (LoRAs, upscaler, segmenter) of the tiny model, built
    next to it once per session."""
    from devkit.tiny_catalog import CATALOG_FILE, build_tiny_catalog

    path = Path(tiny_model).parent / "tiny-catalog" / CATALOG_FILE
    if not path.exists():
        build_tiny_catalog(tiny_model, path.parent, broken=True)
    return str(path)


_next_db = iter(range(1, 16))


@dataclass
class Stack:
    """Environment for renderq processes sharing one Redis database and one bucket."""

    env: dict
    workdir: Path
    api_url: str = ""
    procs: list[Proc] = field(default_factory=list)
    key: str = ""  # an API key of tenant "tests", created before the API starts

    def redis(self):
        import redis

        return redis.Redis.from_url(self.env["RENDERQ_REDIS_URL"], decode_responses=True)

    def create_key(self, tenant: str = "tests", **limits) -> str:
        from storage.keys import KeyStore

        return KeyStore(self.redis()).create(tenant, "pytest", **limits)[1]

    def worker(self, name: str) -> Proc:
        proc = start_worker(self.env, self.workdir, name)
        self.procs.append(proc)
        return proc

    def worker_with(self, name: str, **env) -> Proc:
        """A worker of this stack with some settings of its own."""
        proc = start_worker(self.env | {key: str(value) for key, value in env.items()}, self.workdir, name)
        self.procs.append(proc)
        return proc

    def api(self) -> str:
        # `renderq api` refuses to start with no API keys (unless RENDERQ_AUTH_DISABLED=true).
        if not self.key and self.env.get("RENDERQ_AUTH_DISABLED") != "true":
            self.key = self.create_key()
            self.env["RENDERQ_API_KEY"] = self.key  # for `renderq submit|batch` run with this env
        proc, self.api_url = start_api(self.env, self.workdir)
        self.procs.append(proc)
        return self.api_url

    def client(self, key: str | None = None) -> httpx.Client:
        """A client sending the stack's API key (or `key`; "" sends none)."""
        key = self.key if key is None else key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.api_url, timeout=10, headers=headers)

    def s3(self):
        """A boto3 client on the stack's SeaweedFS, to look at buckets and objects directly."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.env["RENDERQ_S3_ENDPOINT"],
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def make_stack(tmp_path_factory, tiny_model: str, redis_url: str, s3_endpoint: str, **overrides) -> Stack:
    db = next(_next_db)
    workdir = tmp_path_factory.mktemp(f"stack-db{db}")
    env = os.environ | {
        "RENDERQ_REDIS_URL": f"{redis_url}/{db}",
        "RENDERQ_STORAGE": "s3",
        "RENDERQ_S3_ENDPOINT": s3_endpoint,
        "RENDERQ_S3_BUCKET": f"renderq-test-{db}",
        "RENDERQ_S3_ACCESS_KEY": S3_ACCESS_KEY,
        "RENDERQ_S3_SECRET_KEY": S3_SECRET_KEY,
        "RENDERQ_DEFAULT_MODEL": tiny_model,
        "RENDERQ_MODELS_FILE": tiny_catalog_for(tiny_model),
        "RENDERQ_DEVICE": "cpu",
        "RENDERQ_HEARTBEAT_INTERVAL": "0.5",
        "RENDERQ_HEARTBEAT_STALE_AFTER": "3",
        # Every step written: tests reason about the exact step a render is at (cancel within
        # one step, progress rising); the throttle itself is unit-tested in test_run_records.py.
        "RENDERQ_PROGRESS_MIN_INTERVAL": "0",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        # Tests poll fast; the rate-limit tests give their own keys a small limit.
        "RENDERQ_RATE_LIMIT": "100000/minute",
        "RENDERQ_ACCESS_LOG": "true",
    }
    env.update({key: str(value) for key, value in overrides.items()})
    return Stack(env=env, workdir=workdir)


@pytest.fixture(scope="session")
def stack(tmp_path_factory, tiny_model, redis_url, s3_endpoint) -> Stack:
    """One API and one worker for the tests that only need a running service; its worker makes
    a live preview every 2 steps (tests/test_previews.py)."""
    stack = make_stack(tmp_path_factory, tiny_model, redis_url, s3_endpoint, RENDERQ_PREVIEW_EVERY_STEPS=2)
    try:
        stack.worker("main")
        stack.api()
        yield stack
    finally:
        stack.stop()  # also when start-up failed half way: no process outlives the session


@pytest.fixture
def api(stack) -> httpx.Client:
    with stack.client() as client:
        yield client


def wait_for_run(client: httpx.Client, run_id: str, timeout: float = 60, statuses=("completed", "failed")) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/v1/generations/{run_id}").json()
        if run["status"] in statuses:
            return run
        time.sleep(0.05)
    raise TimeoutError(f"run {run_id} still {run['status']} after {timeout}s")
