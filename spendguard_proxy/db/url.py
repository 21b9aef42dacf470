"""Which database to use: ``CAP_DATABASE_URL``, else the embedded server in the data dir."""

from __future__ import annotations

from spendguard_proxy.settings import Settings


def resolve_database_url(settings: Settings) -> str:
    """A plain ``postgresql://`` DSN usable by asyncpg."""
    if settings.database_url:
        return to_asyncpg_dsn(settings.database_url)
    from spendguard_proxy.db.embedded import embedded_database_url

    return embedded_database_url(settings.data_dir)


def to_asyncpg_dsn(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgres+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def to_sqlalchemy_url(url: str) -> str:
    return "postgresql+asyncpg://" + to_asyncpg_dsn(url)[len("postgresql://") :]
