"""The README and references/ stay true to the code."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from spendguard_proxy.cli.main import build_parser
from spendguard_proxy.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "references").glob("*.md"))]


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        env = alias if isinstance(alias, str) else (
            alias.choices[0] if alias is not None else f"CAP_{name.upper()}")
        assert env in readme, f"{env} is missing from the README"


def _commands():
    for doc in DOCS:
        for line in doc.read_text().splitlines():
            line = line.strip().lstrip("$ ").split(" #")[0].strip()
            if line.startswith(("spendguard ", "python cli.py ")):
                yield doc.name, line


COMMANDS = sorted(set(_commands()))


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 10


@pytest.mark.parametrize(("doc", "line"), COMMANDS)
def test_every_documented_command_parses(doc, line):
    words = shlex.split(re.sub(r"<[^>]+>|\$\{?\w+\}?", "00000000-0000-0000-0000-000000000001",
                               line.replace("\\", "")))
    args = words[2:] if words[0] == "python" else words[1:]
    parsed = build_parser().parse_args(args)
    assert callable(parsed.handler), f"{doc}: {line}"
