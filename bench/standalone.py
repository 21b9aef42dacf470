"""Running one benchmark section alone (``python -m bench.memory``, ``bench.stream_scale``):
a fresh database, the fake provider, the section, its table and its JSON."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import database, procs


def run_alone(section: str, run: Callable, show: Callable) -> int:
    """``run(dsn, fake, work, log_dir)`` gives ``results[section]``; ``show(results, console)``
    prints it. On failure the children's log tails go to stderr."""
    from rich.console import Console

    with tempfile.TemporaryDirectory(prefix=f"spendguard-bench-{section}-") as tmp:
        work = Path(tmp)
        log_dir = work / "logs"
        log_dir.mkdir()
        with database.fresh_database(os.environ.get("CAP_DATABASE_URL")) as (dsn, _):
            fake = procs.fake_provider(log_dir)
            try:
                results = {section: run(dsn, fake, work, log_dir)}
            except BaseException:
                for log in log_dir.iterdir():
                    print(f"--- {log.name} ---\n{log.read_text(errors='replace')[-2000:]}",
                          file=sys.stderr)
                raise
            finally:
                fake.stop()
    show(results, Console(width=150))
    print(json.dumps(results, indent=2))
    return 0
