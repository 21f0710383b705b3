"""Who may talk to the server: Host and Origin checks (DNS rebinding, cross-site WebSockets), loopback and
token tests, and a per-connection message rate limit."""
from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
import time
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


def is_loopback(address: Any) -> bool:
    try:
        ip = ipaddress.ip_address(address[0] if isinstance(address, (tuple, list)) else address)
    except (ValueError, TypeError, IndexError):
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def token_matches(given: Any, expected: str) -> bool:
    """Constant-time comparison of any value against the token (bytes: a non-ASCII str must not raise)."""
    return isinstance(given, str) and hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                                                          expected.encode("utf-8", "surrogatepass"))


def _split_host(host: str) -> str:
    """'Example.org:8080' -> 'example.org'; '[::1]:80' -> '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host


class AccessPolicy:
    """A request's Host must name this server: an IP literal (an attacker's DNS name cannot be one), localhost,
    this machine's name or a configured name. A WebSocket's Origin, when a browser sends one, must be the page's
    own (the same host and port the request names) or a configured origin."""

    def __init__(self, allowed_hosts: tuple[str, ...] = (), allowed_origins: tuple[str, ...] = ()):
        names = {"localhost", socket.gethostname().lower(), socket.getfqdn().lower()}
        self.hosts = names | {h.lower() for h in allowed_hosts}
        self.origins = {o.rstrip("/").lower() for o in allowed_origins}

    def host_allowed(self, host: str | None) -> bool:
        if not host:
            return False
        name = _split_host(host)
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            return name in self.hosts or name.endswith(".localhost")

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        """No Origin: a program, not a page (browsers always send one on WebSockets)."""
        if origin is None:
            return True
        origin = origin.strip().rstrip("/").lower()
        if origin in self.origins:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and bool(host) and parts.netloc == host.strip().lower()


class RateLimit:
    """A token bucket: `allow()` is False once more than `burst` messages came faster than `rate` per second."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, float(burst)
        self._tokens, self._at = float(burst), time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


def check_exposure(host: str, token: str | None, require_token_for_calls: bool) -> None:
    """At start: refuses a setting that cannot work, and warns when a network address is served without a token."""
    if require_token_for_calls and token is None:
        raise ValueError("require_token_for_calls needs a token (--token)")
    if token is None and not is_loopback(host):
        log.warning("listening on %s without a token: anyone who can reach this address can start calls "
                    "and watch them with their view key; set --token (and --require-token) on a network", host)
