"""Starting and stopping the real processes the integration tests run against."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import httpx

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def port_open(port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Proc:
    """A child process in its own session, so that stopping it stops its children too."""

    def __init__(self, argv: list[str], log_path: Path, env: dict | None = None, cwd: str | None = None) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a Celery worker and its pool children)."""
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 10) -> None:
        if self.alive():
            self.kill(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.popen.wait(5)
        self.kill(signal.SIGKILL)  # stragglers in the group
        self._log.close()


def start_redis(
    workdir: Path, persistent: bool = False, port: int | None = None, replica_of: int | None = None
) -> tuple[Proc, str]:
    """`port` and `workdir` of an earlier one restart it (its append-only file is reloaded);
    `replica_of` makes it a replica of the Redis on that port (give it a workdir of its own)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server")
    port = port or free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir), "--save", ""]
    argv += ["--appendonly", "yes" if persistent else "no"]
    if replica_of is not None:
        argv += ["--replicaof", "127.0.0.1", str(replica_of)]
    proc = Proc(argv, workdir / f"redis-{port}.log")
    wait_until(lambda: port_open(port), 10, what="redis-server")
    wait_until(lambda: "Ready to accept connections" in proc.log().rsplit("Server initialized", 1)[-1], 10, what="redis-server loading")
    return proc, f"redis://127.0.0.1:{port}"


def start_sentinels(
    workdir: Path, primary_port: int, master_name: str = "renderq", count: int = 3,
    down_after_ms: int = 1000, failover_timeout_ms: int = 3000,
) -> tuple[list[Proc], str]:
    """`count` sentinels (quorum: a majority) watching the Redis primary on `primary_port`,
    and the redis+sentinel:// URL (core/sentinel.py) that names them, without a database."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server")
    procs, ports = [], []
    for _ in range(count):
        port = free_port()
        config = workdir / f"sentinel-{port}.conf"  # a sentinel rewrites its file: one each
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
            f"sentinel monitor {master_name} 127.0.0.1 {primary_port} {count // 2 + 1}\n"
            f"sentinel down-after-milliseconds {master_name} {down_after_ms}\n"
            f"sentinel failover-timeout {master_name} {failover_timeout_ms}\n"
            f"sentinel parallel-syncs {master_name} 1\n"
        )
        procs.append(Proc([binary, str(config), "--sentinel"], workdir / f"sentinel-{port}.log"))
        ports.append(port)
    for port in ports:
        wait_until(lambda: port_open(port), 10, what="redis sentinel")
    hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
    return procs, f"redis+sentinel://{hosts}/{master_name}"


SEAWEED_PORT_FLAGS = [
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
    "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "webdav.port", "admin.port", "admin.port.grpc",
]


def start_seaweedfs(workdir: Path, access_key: str, secret_key: str, s3_port: int | None = None) -> tuple[Proc, str]:
    """`weed mini` with every port chosen free (the gRPC defaults of port + 10000 can overflow)."""
    binary = shutil.which("weed") or str(VENV_BIN / "weed")
    data = workdir / "seaweedfs"
    data.mkdir(parents=True, exist_ok=True)
    ports = {flag: free_port() for flag in SEAWEED_PORT_FLAGS}
    if s3_port is not None:
        ports["s3.port"] = s3_port
    argv = [binary, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false"]
    argv += [f"-{flag}={port}" for flag, port in ports.items()]
    env = os.environ | {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    proc = Proc(argv, workdir / "seaweedfs.log", env=env)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"

    def s3_answers() -> bool:
        if not proc.alive():
            raise RuntimeError("weed mini exited:\n" + proc.log()[-2000:])
        try:
            return httpx.get(endpoint, timeout=0.5).status_code in (200, 403)
        except httpx.HTTPError:
            return False

    wait_until(s3_answers, 60, interval=0.2, what="SeaweedFS S3")
    return proc, endpoint


def renderq_command(*args: str) -> list[str]:
    return [str(VENV_BIN / "renderq"), *args]


def start_worker(env: dict, workdir: Path, name: str, *args: str, prefix: tuple[str, ...] = (), cwd: str | None = None) -> Proc:
    """`renderq worker` with `args` (e.g. --pool=NAME), run through `prefix` (e.g. `ip netns exec NS`) in `cwd`."""
    argv = [*prefix, *renderq_command("worker", f"--hostname={name}@%h", "--loglevel=INFO", *args)]
    proc = Proc(argv, workdir / f"worker-{name}.log", env=env, cwd=cwd)

    def ready() -> bool:
        if not proc.alive():
            raise RuntimeError(f"worker {name} exited:\n" + proc.log()[-3000:])
        return " ready." in proc.log()

    wait_until(ready, 90, interval=0.2, what=f"celery worker {name}")
    return proc


def start_api(env: dict, workdir: Path) -> tuple[Proc, str]:
    port = free_port()
    proc = Proc(renderq_command("api", "--host", "127.0.0.1", "--port", str(port)), workdir / f"api-{port}.log", env=env)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if not proc.alive():
            raise RuntimeError("api exited:\n" + proc.log()[-3000:])
        try:
            return httpx.get(base + "/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, 60, interval=0.1, what="renderq api")
    return proc, base
