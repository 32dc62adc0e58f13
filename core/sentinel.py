"""Redis behind Sentinel: the one reader of `redis+sentinel://` URLs (RENDERQ_REDIS_URL and
RENDERQ_BROKER_URL), for the redis-py clients (storage/redis_client.py) and Celery's broker.

    redis+sentinel://[[user]:password@]host1[:port1],host2[:port2],.../master_name[/db][?sentinel_password=...]

`host:port` are the sentinels (26379 unless given), `master_name` the group they watch
(`sentinel monitor <master_name> ...`), `db` the database (0 unless given). The password
(and user) authenticate to the Redis data nodes; `sentinel_password` to the sentinels, when
they have `requirepass` of their own. docs/deployment.md#redis-sentinel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs, quote, unquote, urlsplit

from pydantic import AfterValidator

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelUrl:
    """Where the sentinels are, which primary they elect, and how to talk to it."""

    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def is_sentinel_url(url: str) -> bool:
    return url.lower().startswith(SENTINEL_SCHEME + "://")


def is_redis_url(url: str) -> bool:
    """Whether a broker URL is a Redis (one server, or Sentinel's primary) rather than another
    transport (the embedded in-memory queue)."""
    return url.lower().startswith(("redis://", "rediss://", "unix://", SENTINEL_SCHEME + "://"))


def _host_port(text: str) -> tuple[str, int]:
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = text.partition(":")
    if not host or (port and not port.isdigit()):
        raise ValueError(f"{text!r} is not host[:port]")
    return host, int(port) if port else SENTINEL_PORT


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The parts of a `redis+sentinel://` URL; ValueError says what is wrong with it."""
    if not is_sentinel_url(url):
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL")
    # urlsplit cannot read a netloc of several host:port, so the userinfo is split off by hand.
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":") if userinfo else ("", "", "")
    sentinels = tuple(_host_port(host.strip()) for host in hosts.split(",") if host.strip())
    if not sentinels:
        raise ValueError("no sentinel host:port")
    path = [segment for segment in parts.path.split("/") if segment]
    if not path or len(path) > 2:
        raise ValueError("the path must be /master_name or /master_name/db")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"database {path[1]!r} is not a number")
    query = parse_qs(parts.query)
    unknown = set(query) - {"sentinel_password"}
    if unknown:
        raise ValueError(f"unknown query parameters: {', '.join(sorted(unknown))}")
    return SentinelUrl(
        sentinels=sentinels,
        master_name=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_password=query["sentinel_password"][0] if "sentinel_password" in query else None,
    )


def _readable(url: str) -> str:
    if is_sentinel_url(url):
        parse_sentinel_url(url)  # its ValueError is the setting's validation error
    return url


# The type of RENDERQ_REDIS_URL and RENDERQ_BROKER_URL: a mistyped redis+sentinel:// URL stops
# the process at start-up, not at its first request.
RedisUrl = Annotated[str, AfterValidator(_readable)]


def kombu_broker(url: str) -> tuple[str, dict]:
    """(the broker URL Celery is given, the transport options it adds): a `redis+sentinel://`
    URL becomes kombu's sentinel transport, `sentinel://h1:p1/db;sentinel://h2:p2/db` with the
    `master_name` option; any other URL is Celery's own."""
    if not is_sentinel_url(url):
        return url, {}
    address = parse_sentinel_url(url)
    auth = ""
    if address.password:
        auth = f"{quote(address.username or '', safe='')}:{quote(address.password, safe='')}@"
    hosts = (f"[{host}]" if ":" in host else host for host, _ in address.sentinels)
    urls = ";".join(f"sentinel://{auth}{host}:{port}/{address.db}" for host, (_, port) in zip(hosts, address.sentinels))
    options: dict = {"master_name": address.master_name}
    if address.sentinel_password:
        options["sentinel_kwargs"] = {"password": address.sentinel_password}
    return urls, options
