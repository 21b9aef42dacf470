"""Who may reach the console at all: the Host allowlist, same-origin form posts, CSRF tokens.

Loopback is not a security boundary: any web page the operator visits can make the browser
send requests to 127.0.0.1, and a DNS-rebinding page can even read the answers. So every
console request must name an allowed Host (a rebinding page's Host is its own name), every
form post must come from the console's own origin (``http://localhost:8787`` posting to
``http://127.0.0.1:8787`` is another origin: refused), and every form carries the session's
CSRF token.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from aiohttp import web

from spendguard_proxy.errors import PermissionDenied
from spendguard_proxy.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """The configured entries, lower-cased: ``name`` (any port) or ``name:port``."""
    return frozenset(
        h.strip().lower() for h in settings.console_allowed_hosts.split(",") if h.strip()
    )


def _split_host(host: str) -> tuple[str, str | None]:
    if host.startswith("["):  # [v6]:port
        name, _, rest = host.partition("]")
        return name + "]", rest[1:] if rest.startswith(":") else None
    name, sep, port = host.rpartition(":")
    return (name, port) if sep and port.isdigit() else (host, None)


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    host = host.strip().lower()
    name, _port = _split_host(host)
    return name in LOOPBACK_NAMES or name in allowed or host in allowed


def is_loopback_peer(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address((request.remote or "").split("%")[0]).is_loopback
    except ValueError:
        return False


def is_https(request: web.Request, settings: Settings) -> bool:
    return request.secure or settings.console_https


def own_origin(request: web.Request, settings: Settings) -> str:
    scheme = "https" if is_https(request, settings) else "http"
    return f"{scheme}://{request.host.lower()}"


def check_host(request: web.Request, settings: Settings, allowed: frozenset[str]) -> None:
    if not host_allowed(request.host, allowed):
        raise PermissionDenied(
            f"The console does not answer to the host name {request.host[:100]!r}; "
            "add it to CAP_CONSOLE_ALLOWED_HOSTS"
        )


def check_same_origin(request: web.Request, settings: Settings) -> None:
    """A state-changing request must come from a page of this very origin (scheme, host and
    port): Origin, else Referer; a post that shows neither is refused."""
    if request.method in SAFE_METHODS:
        return
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise PermissionDenied(f"Cross-site form post refused (Sec-Fetch-Site: {fetch_site})")
    origin = request.headers.get("Origin")
    if origin is None:
        referer = urlsplit(request.headers.get("Referer", ""))
        origin = f"{referer.scheme}://{referer.netloc}" if referer.netloc else None
    if origin is None or origin.lower() != own_origin(request, settings):
        raise PermissionDenied(
            "Cross-site form post refused: the console accepts forms only from its own pages"
            f" ({own_origin(request, settings)})"
        )


def check_csrf(submitted: str | None, expected: str) -> None:
    if not submitted or not hmac.compare_digest(submitted.encode(), expected.encode()):
        raise PermissionDenied(
            "The form's CSRF token is missing or stale; reload the page and submit again"
        )
