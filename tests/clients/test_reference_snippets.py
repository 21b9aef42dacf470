"""The Python examples in README.md and references/ run, as written, against a SpendGuard with
the fake provider behind it, and each call they make is charged as the provider billed it.

A block is run when an HTML comment ``<!-- tested -->`` stands on the line before its
```` ```python ```` fence. The snippets read where SpendGuard is and which agent pays from the
environment (``SPENDGUARD_URL``, default ``http://127.0.0.1:8787``; ``SPENDGUARD_AGENT_ID``),
as a reader's shell would give them; nothing in them is substituted. Every Python block in
references/ is either run or says why not (``<!-- not run: reason -->``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.clients.isolated import run_python
from tests.clients.ledger_check import assert_charged_as_billed

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "references").glob("*.md"))]
_BLOCK = re.compile(r"^(?:<!--(?P<mark>[^>]*)-->\n)?```python\n(?P<code>.*?)^```$",
                    re.MULTILINE | re.DOTALL)


def _blocks():
    for doc in DOCS:
        text = doc.read_text()
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code"))
            mark = (match.group("mark") or "").strip()
            yield doc.relative_to(ROOT).as_posix(), line, mark, match.group("code")


BLOCKS = list(_blocks())
TESTED = [pytest.param(code, id=f"{doc}:{line}") for doc, line, mark, code in BLOCKS
          if mark == "tested"]


def test_the_references_have_tested_snippets():
    assert len(TESTED) >= 5


@pytest.mark.parametrize(("doc", "line", "mark"),
                         [(d, n, m) for d, n, m, _ in BLOCKS if d.startswith("references/")])
def test_every_reference_snippet_is_run_or_says_why_not(doc, line, mark):
    if mark != "tested" and not mark.startswith("not run:"):
        pytest.fail(f"{doc}:{line}: mark the block <!-- tested --> (and make it run) or "
                    "<!-- not run: why -->")


@pytest.mark.parametrize("code", TESTED)
async def test_snippet_runs_and_is_charged(code, relay_url, pool, budgeted_agent, fake):
    agent_id = await budgeted_agent()
    await run_python(code, {"SPENDGUARD_URL": relay_url, "SPENDGUARD_AGENT_ID": str(agent_id)})
    assert fake.billed.calls, "the snippet made no call through SpendGuard"
    await assert_charged_as_billed(pool, agent_id, fake, calls=len(fake.billed.calls))


def _sdk_table_rows():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use it from your SDK\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def test_readme_sdk_table_names_a_test_for_every_client():
    rows = _sdk_table_rows()
    clients = " ".join(row[0] for row in rows)
    for client in ("openai", "anthropic", "google-genai", "langchain-openai",
                   "langchain-anthropic", "litellm, `openai/", "litellm, `anthropic/",
                   "litellm, `gemini/"):
        assert client in clients
    for client, how, tests in rows:
        assert how.startswith("`") and "url" in how, client
        node_ids = re.findall(r"`([^`]+)`", tests)
        assert node_ids, f"{client}: no test named"
        for node_id in node_ids:
            path, _, name = node_id.partition("::")
            source = (ROOT / path).read_text()  # the file exists
            function, _, param = name.partition("[")
            if function:
                assert re.search(rf"^(async )?def {function}\(", source, re.MULTILINE), node_id
            if param:
                assert f'id="{param.rstrip("]")}"' in source, node_id
