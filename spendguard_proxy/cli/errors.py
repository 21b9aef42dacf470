"""The CLI's own failure: one line on stderr, exit status 1 (kept import-free: every command,
``--help`` included, loads it)."""

from __future__ import annotations


class CliError(Exception):
    """One line for stderr, exit status 1."""
