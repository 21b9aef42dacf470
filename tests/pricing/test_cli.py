"""`pricing keygen|sign|verify|show` through register() on a test parser."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from spendguard_proxy.cli.pricing_cmd import register, render_table, select_cards, table_json
from spendguard_proxy.errors import PricingError
from spendguard_proxy.pricing.canonical import load_document
from spendguard_proxy.pricing.signing import verify_signature
from spendguard_proxy.pricing.sources import load_bundled

from .helpers import PricingServer, base_document, pricing_settings, to_bytes


def run(argv: list[str], settings=None) -> int:
    parser = argparse.ArgumentParser(prog="spendguard")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.settings = settings or pricing_settings()
    return args.handler(args)


def test_keygen_prints_a_usable_pair(capsys) -> None:
    assert run(["pricing", "keygen", "--json"]) == 0
    pair = json.loads(capsys.readouterr().out)
    assert set(pair) == {"public_key", "private_key"}
    assert run(["pricing", "keygen"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("public_key:") and "private_key:" in out


def test_sign_stamps_dates_and_signs_in_place(tmp_path, keys, capsys) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(to_bytes(base_document(expires_at="2000-01-01T00:00:00Z")))
    assert run(["pricing", "sign", str(path), "--key", keys.private_key,
                "--ttl-seconds", "3600"]) == 0
    assert "signed" in capsys.readouterr().out
    doc = load_document(path.read_bytes(), "signed")
    verify_signature(doc, keys.public_key, "signed")
    expires = datetime.fromisoformat(doc["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)


def test_sign_keep_dates_and_out(tmp_path, keys) -> None:
    src, out = tmp_path / "in.json", tmp_path / "out.json"
    src.write_bytes(to_bytes(base_document(expires_at="2031-01-01T00:00:00Z")))
    assert run(["pricing", "sign", str(src), "--key", keys.private_key, "--keep-dates",
                "--out", str(out)]) == 0
    assert "signature" not in json.loads(src.read_text())
    assert json.loads(out.read_text())["expires_at"] == "2031-01-01T00:00:00Z"


def test_sign_refuses_invalid_documents_and_bad_keys(tmp_path, keys, capsys) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(to_bytes(base_document()).replace(b'"400.5"', b"400.5"))
    assert run(["pricing", "sign", str(path), "--key", keys.private_key]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "JSON float" in err
    path.write_bytes(to_bytes(base_document()))
    assert run(["pricing", "sign", str(path), "--key", "nope"]) == 1
    assert "CAP_PRICING_SIGNING_PRIVATE_KEY" in capsys.readouterr().err
    assert run(["pricing", "sign", str(path)]) == 1
    assert "No signing key" in capsys.readouterr().err


def test_verify_file(tmp_path, make_signed, keys, other_keys, capsys) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(to_bytes(make_signed()))
    assert run(["pricing", "verify", str(path), "--public-key", keys.public_key]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK ") and out.count("\n") == 1
    assert run(["pricing", "verify", str(path), "--public-key", other_keys.public_key]) == 1
    err = capsys.readouterr().err
    assert "Remote pricing signature verification failed" in err and err.count("\n") == 1
    path.write_bytes(to_bytes(make_signed(expires_at="2001-01-01T00:00:00Z")))
    assert run(["pricing", "verify", str(path), "--public-key", keys.public_key]) == 1
    assert "has expired" in capsys.readouterr().err
    assert run(["pricing", "verify", str(path)]) == 1
    assert "No public key" in capsys.readouterr().err


async def test_verify_url(pricing_server: PricingServer, make_signed, keys, capsys) -> None:
    pricing_server.publish(make_signed(), '"v1"')
    # The handler runs its own event loop (asyncio.run), so give it a thread of its own.
    code = await asyncio.to_thread(
        run, ["pricing", "verify", pricing_server.url, "--public-key", keys.public_key]
    )
    assert code == 0
    assert capsys.readouterr().out.startswith(f"OK {pricing_server.url}")
    pricing_server.mode = "error"
    code = await asyncio.to_thread(
        run, ["pricing", "verify", pricing_server.url, "--public-key", keys.public_key]
    )
    assert code == 1
    assert "HTTP 500" in capsys.readouterr().err


async def test_show_json_and_filters(write_doc, make_signed, keys, capsys) -> None:
    settings = pricing_settings(pricing_source="file", pricing_file=write_doc(make_signed()),
                                pricing_signing_public_key=keys.public_key)
    code = await asyncio.to_thread(
        run, ["pricing", "show", "--json", "--model", "gpt-4o-2024-08-06"], settings
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["source"] == "file"
    [model] = data["models"]
    assert model["model"] == "gpt-4o" and model["source"] == "file"
    assert model["cents"] == {"input_mtok": "250", "output_mtok": "1000"}
    code = await asyncio.to_thread(run, ["pricing", "show", "--model", "nope"], settings)
    assert code == 1
    assert "Unknown model for pricing: *:nope" in capsys.readouterr().err
    code = await asyncio.to_thread(run, ["pricing", "show", "--provider", "gemini"], settings)
    assert code == 0
    assert "fake-model" in capsys.readouterr().out


def test_render_table_on_a_fixed_console() -> None:
    table = load_bundled()
    cards = select_cards(table, "anthropic", None)
    console = Console(file=io.StringIO(), width=120, color_system=None)
    render_table(console, table, cards, now=datetime(2026, 12, 10, tzinfo=UTC))
    text = console.file.getvalue()
    assert "Pricing source: bundled (bundled), schema 2" in text
    assert "As of 2026-11-10 (30 days old)" in text
    assert "claude-sonnet-4-5" in text and "gpt-4o" not in text
    assert "$3.00+" in text and "$15.00+" in text and "$0.30+" in text  # tiered above 200k
    assert "input >200k $6.00" in text and "$22.50" in text  # sonnet 4.5's long context
    assert "source: genai-prices 0.2.3" in text and "inference_geo: global/us" in text


def test_select_cards_errors() -> None:
    table = load_bundled()
    with pytest.raises(PricingError, match="No prices for provider 'mistral'"):
        select_cards(table, "mistral", None)
    assert [c.model for c in select_cards(table, "openai", "gpt-4o-2024-11-20")] == ["gpt-4o"]
    data = table_json(table, select_cards(table, "gemini", "gemini-2.5-pro"))
    assert data["models"][0]["cents"]["output_mtok"]["tiers"] == [
        {"start": 200000, "price": "1500"}]
