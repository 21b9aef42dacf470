"""Where a webhook may post.

At creation (``check_url``, no I/O): http(s) only, no credentials in the URL, and in hosted
mode https only (unless ``CAP_WEBHOOK_ALLOW_HTTP``) and no literal private address.

At delivery, in hosted mode, the address actually connected to must be public: the session's
resolver resolves a name once and refuses it when any of its addresses is private, loopback,
link-local, multicast, reserved or unspecified, and aiohttp connects to exactly the addresses
it returned (no second lookup, so DNS rebinding cannot slip a private address in between).
The socket factory checks every address again as it connects, which also covers literal IPs
(aiohttp does not resolve those). A sidecar may post anywhere, loopback included.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.settings import Mode, Settings

MAX_URL_LENGTH = 2048
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(OSError):
    """A delivery target resolves to an address webhooks may not reach (hosted mode). An
    OSError, so aiohttp reports it as a connection error with this as its cause."""


def refusal_of(exc: BaseException) -> TargetRefused | None:
    """The TargetRefused behind an aiohttp connection error, if that is what it was."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, TargetRefused):
            return current
        if isinstance(current, aiohttp.ClientConnectorError) and isinstance(
            current.os_error, TargetRefused
        ):
            return current.os_error
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches (mapped, NAT64, 6to4, Teredo), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # the socket reaches the IPv4 address itself
            return is_public(ip.ipv4_mapped)
        inner = embedded_ipv4(ip)
        if inner is not None and not is_public(inner):
            return False
        if ip.scope_id:
            return False
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified
    )


def _refused(host: str, ip: str) -> TargetRefused:
    return TargetRefused(
        f"target {host} resolves to {ip}, a private, loopback, link-local, multicast or "
        "reserved address; hosted webhooks only reach public addresses"
    )


def check_url(url: str, settings: Settings) -> str:
    """``url`` if a webhook may name it, else InvalidRequest saying what to fix."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidRequest(f"url is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise InvalidRequest("url must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest(f"url is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidRequest("url must start with https:// (or http://)")
    if not parts.hostname:
        raise InvalidRequest("url has no host name")
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest("url must not carry credentials (user:password@); the receiver "
                             "authenticates deliveries by their webhook-signature header")
    if parts.fragment:
        raise InvalidRequest("url must not have a #fragment")
    if port == 0:
        raise InvalidRequest("url port must be between 1 and 65535")
    if settings.mode is Mode.hosted:
        if parts.scheme != "https" and not settings.webhook_allow_http:
            raise InvalidRequest("url must be https:// in hosted mode (the operator may allow "
                                 "http:// with CAP_WEBHOOK_ALLOW_HTTP)")
        literal = _literal_ip(parts.hostname)
        if literal is not None and not is_public(literal):
            raise InvalidRequest(f"url names {parts.hostname}, which is not a public address; "
                                 "hosted webhooks only reach public addresses")
    return url


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


class PublicOnlyResolver(AbstractResolver):
    """Resolves through the system resolver; a name with any non-public address is refused
    whole (a name that mixes public and private addresses is a rebinding attempt or a
    misconfiguration, and either way not a target)."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            ip = _literal_ip(result["host"])
            if ip is None or not is_public(ip):
                raise _refused(host, result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()


def public_only_socket(addr_info) -> socket.socket:
    """aiohttp's socket_factory: the last check, on the very address being connected to."""
    family, type_, proto, _, address = addr_info
    ip = _literal_ip(str(address[0]))
    if ip is None or not is_public(ip):
        raise _refused(str(address[0]), str(address[0]))
    return socket.socket(family=family, type=type_, proto=proto)


def connector_for(settings: Settings, limit: int) -> aiohttp.TCPConnector:
    """The delivery session's connector: public addresses only in hosted mode."""
    if settings.mode is Mode.hosted:
        return aiohttp.TCPConnector(limit=limit, resolver=PublicOnlyResolver(),
                                    socket_factory=public_only_socket, ttl_dns_cache=60)
    return aiohttp.TCPConnector(limit=limit, ttl_dns_cache=60)
