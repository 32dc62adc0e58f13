"""Is a caller-given URL safe to call? http(s) only, and every address it resolves to public.

Webhook URLs are checked by the API when a request names one (so a bad URL is a 422 at
submit) and again by the webhook worker right before each attempt (DNS may have changed
since); the endpoints of output destinations (storage/destinations.py) the same way, at
registration and before each write. Lives in storage/ because both rooms use it and neither
may import the other.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class UnsafeWebhookUrl(ValueError):
    """The URL may not be called; the message says why."""


def _addresses(host: str, port: int) -> set[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeWebhookUrl(f"host {host!r} does not resolve: {exc.strerror}") from exc
    return {info[4][0] for info in infos}


def check_webhook_url(url: str, allow_private: bool = False, what: str = "webhook") -> None:
    """Raise `UnsafeWebhookUrl` unless `url` is http(s) and (unless allowed) every A/AAAA
    address of its host is globally routable. `what` names the URL in messages."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeWebhookUrl(f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeWebhookUrl(f"only http and https {what} URLs are allowed")
    if not parts.hostname:
        raise UnsafeWebhookUrl("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeWebhookUrl(f"credentials in {what} URLs are not allowed")
    if allow_private:
        return
    for address in _addresses(parts.hostname, port):
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not ip.is_global or ip.is_multicast:
            raise UnsafeWebhookUrl(f"{parts.hostname} resolves to {ip}, which is not a public address")
