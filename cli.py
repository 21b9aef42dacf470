"""Run the SpendGuard CLI from a checkout: ``python cli.py agent create --name a1``."""

from spendguard_proxy.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
