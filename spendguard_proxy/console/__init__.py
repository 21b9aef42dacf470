"""The operator console at /ui (DESIGN §12): server-rendered pages over the ledger reads."""

from spendguard_proxy.console.app import setup_console

__all__ = ["setup_console"]
