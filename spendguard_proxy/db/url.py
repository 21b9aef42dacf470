"""Which database to use: ``CAP_DATABASE_URL``, else the embedded server in the data dir."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from spendguard_proxy.settings import Settings


def resolve_database_url(settings: Settings, on_start=None) -> str:
    """A plain ``postgresql://`` DSN usable by asyncpg (``on_start``: see
    ``embedded_database_url``)."""
    if settings.database_url:
        return to_asyncpg_dsn(settings.database_url)
    from spendguard_proxy.db.embedded import embedded_database_url

    return embedded_database_url(settings.data_dir, on_start)


def describe_database(settings: Settings) -> str:
    """Which database the settings select, for people: never credentials."""
    if settings.database_url:
        return redact_dsn(settings.database_url)
    return f"embedded PostgreSQL at {settings.data_dir}"


def redact_dsn(url: str) -> str:
    """``postgresql://user:secret@db.example:5432/app?sslmode=require`` ->
    ``postgresql://db.example:5432/app``; a Unix socket directory given as ``?host=`` stays
    there: ``postgresql:///app?host=/run/postgresql``."""
    try:
        parts = urlsplit(to_asyncpg_dsn(url))
        hostname, port = parts.hostname, parts.port
    except ValueError:
        return "postgresql://(unparsable CAP_DATABASE_URL)"
    database = parts.path or "/"
    port_part = f":{port}" if port else ""
    if hostname:
        host = f"[{hostname}]" if ":" in hostname else hostname
        return f"postgresql://{host}{port_part}{database}"
    sockets = ",".join(parse_qs(parts.query).get("host", []))
    if sockets:
        return f"postgresql://{port_part}{database}?host={sockets}"
    return f"postgresql://localhost{port_part}{database}"


def to_asyncpg_dsn(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgres+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def to_sqlalchemy_url(url: str) -> str:
    return "postgresql+asyncpg://" + to_asyncpg_dsn(url)[len("postgresql://") :]
