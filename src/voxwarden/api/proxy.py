"""Client address behind a reverse proxy: believe ``X-Forwarded-For`` / ``X-Forwarded-Proto`` only from
peers listed in `Settings.trusted_proxies`.

Why our own middleware rather than uvicorn's ``--proxy-headers``: the audit log must record where a request
really came from, the rule must be the same for HTTP and WebSockets, and it must hold however the app is
served (uvicorn, another ASGI server, the test client). The rule is the usual "rightmost untrusted hop":
walk ``X-Forwarded-For`` from the right (the entry our proxy appended) and skip hops that are themselves
trusted proxies; the first untrusted one is the client. An untrusted peer's headers are ignored entirely,
so a client talking to the service directly cannot choose the address it is logged under.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_PROTOS = {"http": ("http", "ws"), "https": ("https", "wss")}
MAX_HOPS = 32  # longer chains are cut (from the left): a header is client data and must stay cheap to parse


def parse_ip(text: str) -> IPAddress | None:
    """An IP from a forwarded hop (``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]:80``, ``::1``), or None."""
    t = text.strip()
    if t.startswith("["):
        t = t[1:].split("]", 1)[0]
    elif t.count(":") == 1:  # IPv4 with a port
        t = t.split(":", 1)[0]
    t = t.split("%", 1)[0]  # IPv6 zone id
    try:
        ip = ipaddress.ip_address(t)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class ProxyHeadersMiddleware:
    """Rewrites the ASGI scope's ``client`` (and ``scheme``) from forwarded headers sent by trusted proxies."""

    def __init__(self, app: Any, trusted: Sequence[str]) -> None:
        self.app = app
        self.networks: list[IPNetwork] = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def is_trusted(self, ip: IPAddress | None) -> bool:
        return ip is not None and any(ip.version == n.version and ip in n for n in self.networks)

    def client_for(self, peer: str | None, headers: list[tuple[bytes, bytes]]) -> tuple[str | None, str | None]:
        """(client address, forwarded proto) for a request from `peer`; (None, None) keeps the peer's own."""
        if not self.networks or peer is None or not self.is_trusted(parse_ip(peer)):
            return None, None
        forwarded: list[str] = []
        proto: str | None = None
        for k, v in headers:
            if k == b"x-forwarded-for":
                forwarded.extend(v.decode("latin-1").split(","))
            elif k == b"x-forwarded-proto":
                proto = v.decode("latin-1").split(",")[-1].strip().lower() or None
        chosen: IPAddress | None = None
        for hop in reversed(forwarded[-MAX_HOPS:]):
            ip = parse_ip(hop)
            if ip is None:  # garbage in the chain: believe nothing beyond it
                break
            chosen = ip
            if not self.is_trusted(ip):
                break
        return (str(chosen) if chosen is not None else None), (proto if proto in _PROTOS else None)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and self.networks:
            client = scope.get("client")
            host, proto = self.client_for(client[0] if client else None, scope.get("headers") or [])
            if host is not None or proto is not None:
                scope = dict(scope)
                if host is not None:
                    scope["client"] = (host, None)  # the client's own port is not forwarded: unknown
                if proto is not None:
                    scope["scheme"] = _PROTOS[proto][0 if scope["type"] == "http" else 1]
        await self.app(scope, receive, send)
