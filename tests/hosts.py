"""Worker "hosts" on one machine for the many-hosts test: each with its own working, home, temp
and model directories, and, where the machine allows (root, `ip netns` works), its own network
namespace joined to this one by a veth pair the test makes, with addresses only on that pair
(10.200.N.0/30, a free N per host). Redis and S3 stay on this namespace's loopback; a small TCP forwarder
listening on the host side of each pair carries a host's connections to them, so a worker in a
namespace reaches nothing but what the test lets through. Without namespaces, the hosts are
directories only and talk to loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def namespaces_available() -> bool:
    """Root, and `ip netns` can make (and remove) a namespace here."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    name = f"rqprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode == 0
    if made:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return made


def _ip(*args: str, netns: str | None = None) -> None:
    argv = ["ip", *(("netns", "exec", netns, "ip") if netns else ()), *args]
    subprocess.run(argv, check=True, capture_output=True)


def _free_subnet() -> int:
    """A third octet N with no 10.200.N.x address on this machine (other tests may hold some)."""
    used = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    for n in [*range(os.getpid() % 200 + 20, 250), *range(20, 250)]:
        if f"10.200.{n}." not in used:
            return n
    raise RuntimeError("no free 10.200.N.0/24 for the test's namespaces")


class Forwarder(threading.Thread):
    """Listens on (host, any port) and pipes each connection to `target` (host, port)."""

    def __init__(self, listen_host: str, target: tuple[str, int]) -> None:
        super().__init__(daemon=True)
        self.target = target
        self.server = socket.create_server((listen_host, 0))
        self.address = self.server.getsockname()[:2]
        self.sockets: list[socket.socket] = []

    def run(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.server.close()
        for sock in self.sockets:
            with suppress(OSError):
                sock.close()


def _via(url: str, forwarder: Forwarder) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{forwarder.address[0]}:{forwarder.address[1]}"))


@dataclass
class Host:
    name: str
    root: Path
    netns: str | None = None
    address: str = "127.0.0.1"  # this namespace's side of the host's link
    forwarders: list[Forwarder] = field(default_factory=list)

    def env(self, base: dict) -> dict:
        """`base` with this host's own directories, and Redis and S3 as this host reaches them."""
        dirs = {name: self.root / name for name in ("home", "tmp", "cache", "work")}
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        env = base | {"HOME": str(dirs["home"]), "TMPDIR": str(dirs["tmp"]), "XDG_CACHE_HOME": str(dirs["cache"]),
                      "HF_HOME": str(dirs["cache"] / "huggingface"), "TORCH_HOME": str(dirs["cache"] / "torch")}
        if self.netns:
            for key in ("RENDERQ_REDIS_URL", "RENDERQ_S3_ENDPOINT"):
                parts = urlsplit(base[key])
                forwarder = Forwarder(self.address, (parts.hostname, parts.port))
                forwarder.start()
                self.forwarders.append(forwarder)
                env[key] = _via(base[key], forwarder)
        return env

    @property
    def prefix(self) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.netns) if self.netns else ()

    @property
    def workdir(self) -> str:
        return str(self.root / "work")


class Hosts:
    """Made with `make`, always undone with `remove` (namespaces, links, forwarders)."""

    def __init__(self, root: Path, use_namespaces: bool) -> None:
        self.root, self.use_namespaces = root, use_namespaces
        self.hosts: list[Host] = []

    def make(self, name: str) -> Host:
        host = Host(name, self.root / name)
        host.root.mkdir(parents=True, exist_ok=True)
        if self.use_namespaces:
            tag = f"rq{os.getpid() % 100000}h{len(self.hosts)}"
            subnet = _free_subnet()
            host.netns, outside, inside = tag, f"{tag}o"[:15], f"{tag}i"[:15]
            _ip("netns", "add", tag)
            self.hosts.append(host)  # removed whatever happens next
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", tag)
            host.address = f"10.200.{subnet}.1"  # a /30 of its own: .1 here, .2 in the namespace
            _ip("addr", "add", f"{host.address}/30", "dev", outside)
            _ip("link", "set", outside, "up")
            _ip("addr", "add", f"10.200.{subnet}.2/30", "dev", inside, netns=tag)
            _ip("link", "set", inside, "up", netns=tag)
            _ip("link", "set", "lo", "up", netns=tag)
        else:
            self.hosts.append(host)
        return host

    def remove(self) -> None:
        for host in self.hosts:
            for forwarder in host.forwarders:
                forwarder.close()
            if host.netns:  # removing the namespace removes its end of the pair, and so the pair
                subprocess.run(["ip", "netns", "del", host.netns], capture_output=True)
