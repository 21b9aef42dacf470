"""The generated bundled table (schema "2"): its shape, its fidelity to the pinned genai-prices
release, the models it must resolve, and that scripts/build_price_table.py reproduces it.

Plain checks written here on purpose (not the server's parser), so this test pins the contract
of the document itself. No network: genai-prices is an installed package; LiteLLM's map is only
needed for the full ``--check`` run and that test skips without it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import sys
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "spendguard_proxy" / "pricing" / "bundled.json"
OVERRIDES = REPO / "spendguard_proxy" / "pricing" / "overrides.json"
SCRIPT = REPO / "scripts" / "build_price_table.py"

PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "gemini": "google", "grok": "x-ai"}
SUPPORTED = {
    "input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok",
    "input_audio_mtok", "cache_audio_read_mtok", "input_image_mtok", "cache_image_read_mtok",
    "input_video_mtok", "output_audio_mtok", "output_image_mtok", "output_video_mtok",
    "web_searches_kcount", "storage_searches_kcount", "code_executions_kcount",
}
MODEL_KEYS = ["id", "match", "context_window", "max_output_tokens", "deprecated", "prices",
              "variants", "_source"]
RATE = re.compile(r"\d{1,15}(\.\d{1,12})?")
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")

FLAGSHIPS = {
    "openai": ["gpt-6-sol", "gpt-6.1-terra", "gpt-5.5", "gpt-5.4-mini"],
    "anthropic": ["claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5", "claude-opus-4-8",
                  "claude-sonnet-4-6"],
    "gemini": ["gemini-4-argon", "gemini-3.8-flash", "gemini-3.5-flash-lite",
               "gemini-3.1-pro-preview"],
    "grok": ["grok-4.7", "grok-4.5"],
}
# Names the rest of the test suite (and users) call today; all still resolve in 0.2.3.
LEGACY = {
    "openai": ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "o3", "o4-mini", "gpt-5",
               "gpt-5-mini", "gpt-5.2-chat-latest", "o1-mini"],
    "anthropic": ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-3-5-haiku-latest",
                  "claude-sonnet-4-20250514", "claude-opus-4-6"],
    "gemini": ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash", "gemini-3-pro-preview"],
    "grok": ["grok-4-0709", "grok-4", "grok-3-mini", "grok-3-latest"],
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def text() -> str:
    return BUNDLED.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def doc(text: str) -> dict[str, Any]:
    def no_floats(value: str) -> Any:
        raise AssertionError(f"JSON float {value} in bundled.json")

    return json.loads(text, parse_float=no_floats)


@pytest.fixture(scope="module")
def overrides() -> dict[str, Any]:
    return json.loads(OVERRIDES.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_price_table", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def genai(doc: dict[str, Any]) -> dict[str, list[Any]]:
    """genai-prices' models per our provider key, in its order (google: gemini ids only)."""
    pytest.importorskip("genai_prices")
    version = importlib.metadata.version("genai-prices")
    assert version == doc["source"]["genai_prices"], "installed genai-prices is not the pin"
    from genai_prices.data import providers

    by_id = {p.id: p for p in providers}
    return {
        pkey: [m for m in by_id[gid].models if pkey != "gemini" or m.id.startswith("gemini")]
        for pkey, gid in PROVIDERS.items()
    }


# --------------------------------------------------------------------------- helpers


def matches(clause: dict[str, Any], name: str) -> bool:
    """Our JSON match rule, evaluated the way genai-prices evaluates its MatchLogic."""
    ((kind, arg),) = clause.items()
    name = name.lower()
    if kind == "or":
        return any(matches(c, name) for c in arg)
    if kind == "and":
        return all(matches(c, name) for c in arg)
    if kind == "regex":
        return re.search(arg, name) is not None
    arg = arg.lower()
    return {"equals": name == arg, "starts_with": name.startswith(arg),
            "ends_with": name.endswith(arg), "contains": arg in name}[kind]


def resolve(models: list[dict[str, Any]], name: str) -> str | None:
    return next((m["id"] for m in models if matches(m["match"], name)), None)


def genai_resolve(models: list[Any], name: str) -> str | None:
    return next((m.id for m in models if m.is_match(name)), None)


def usd_items(model_price: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(model_price).items() if not k.startswith("_") and v is not None}


def same_rate(ours: Any, usd: Any, factor: Decimal = Decimal(100)) -> bool:
    if isinstance(ours, dict):
        return (Decimal(ours["base"]) == usd.base * factor
                and [(t["start"], Decimal(t["price"])) for t in ours["tiers"]]
                == [(t.start, t.price * factor) for t in usd.tiers])
    return Decimal(ours) == usd * factor


def genai_entries(model: Any) -> list[tuple[str | None, Any]]:
    from genai_prices.types import ModelPrice

    if isinstance(model.prices, ModelPrice):
        return [(None, model.prices)]
    return [(cp.constraint.start_date.isoformat() if cp.constraint else None, cp.prices)
            for cp in model.prices]


def excluded_reason(pkey: str, model: Any, overrides: dict[str, Any]) -> str | None:
    for rule in overrides["exclude"]:
        if rule.get("provider", pkey) == pkey and re.search(rule["id_regex"], model.id):
            return rule["reason"]
    keys: set[str] = set()
    for _, prices in genai_entries(model):
        keys |= set(usd_items(prices))
    for variant in model.price_variants or ():
        if "processing" not in variant.when:
            keys |= set(usd_items(variant.prices))
    if keys - SUPPORTED:
        return "unsupported keys"
    if any("input_mtok" not in usd_items(p) for _, p in genai_entries(model)):
        return "no input price"
    return None


def extra_keys(pkey: str, model_id: str, overrides: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for rule in overrides["extra_prices"]:
        if rule["provider"] == pkey and re.search(rule["id_regex"], model_id):
            out.update(rule["cents"])
    return out


def all_models(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for pkey, models in doc["models"].items():
        for model in models:
            yield pkey, model


def check_rate(value: Any, where: str) -> None:
    if isinstance(value, dict):
        assert list(value) == ["base", "tiers"], where
        assert isinstance(value["base"], str) and RATE.fullmatch(value["base"]), where
        assert value["tiers"], where
        starts = [t["start"] for t in value["tiers"]]
        assert starts == sorted(starts) and len(set(starts)) == len(starts), where
        for tier in value["tiers"]:
            assert list(tier) == ["start", "price"], where
            assert isinstance(tier["start"], int) and tier["start"] >= 0, where
            assert isinstance(tier["price"], str) and RATE.fullmatch(tier["price"]), where
    else:
        assert isinstance(value, str) and RATE.fullmatch(value), f"{where}: {value!r}"
        assert not ("." in value and value.endswith("0")), f"{where}: trailing zero {value}"


def check_cents(cents: Any, where: str) -> None:
    assert isinstance(cents, dict), where
    assert set(cents) <= SUPPORTED, f"{where}: {sorted(set(cents) - SUPPORTED)}"
    for key, value in cents.items():
        check_rate(value, f"{where} {key}")


def check_match(clause: Any, where: str) -> None:
    assert isinstance(clause, dict) and len(clause) == 1, where
    ((kind, arg),) = clause.items()
    if kind in ("or", "and"):
        assert isinstance(arg, list) and arg, where
        for sub in arg:
            check_match(sub, where)
    else:
        assert kind in ("equals", "starts_with", "ends_with", "contains", "regex"), where
        assert isinstance(arg, str) and arg, where
        if kind == "regex":
            re.compile(arg)


# --------------------------------------------------------------------------- shape


def test_document_header(text: str, doc: dict[str, Any]) -> None:
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert list(doc) == ["schema_version", "as_of", "generated_at", "expires_at", "engine",
                         "source", "_notes", "models"]
    assert doc["schema_version"] == "2"
    as_of = date.fromisoformat(doc["as_of"])
    assert doc["generated_at"] == f"{as_of.isoformat()}T00:00:00Z"
    assert doc["expires_at"] == f"{as_of.replace(year=as_of.year + 1).isoformat()}T00:00:00Z"
    assert doc["engine"] == {"min_version": "0.2.0", "max_version": "0.99.99"}
    assert doc["source"] == {"genai_prices": "0.2.3", "litellm": doc["source"]["litellm"],
                             "overrides": "spendguard_proxy/pricing/overrides.json"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", doc["source"]["litellm"])
    assert doc["_notes"] and all(isinstance(n, str) and n for n in doc["_notes"])
    assert list(doc["models"]) == list(PROVIDERS)


def test_every_model_has_the_contract_shape(doc: dict[str, Any]) -> None:
    for pkey, models in doc["models"].items():
        ids = [m["id"] for m in models]
        assert len(ids) == len(set(ids)), f"{pkey}: duplicate ids"
        assert models, pkey
    for pkey, model in all_models(doc):
        where = f"{pkey} {model.get('id')}"
        assert list(model) == [k for k in MODEL_KEYS if k in model], f"{where}: key order"
        assert {"id", "match", "prices", "_source"} <= set(model), where
        assert isinstance(model["id"], str) and model["id"] == model["id"].strip(), where
        check_match(model["match"], where)
        for key in ("context_window", "max_output_tokens"):
            if key in model:
                assert isinstance(model[key], int) and not isinstance(model[key], bool), where
                assert model[key] > 0, where
        assert model.get("deprecated", True) is True, where
        assert model["_source"].startswith(f"genai-prices {doc['source']['genai_prices']}"), where

        prices = model["prices"]
        assert isinstance(prices, list) and prices, where
        assert "from" not in prices[0], f"{where}: the first price entry is the fallback"
        dates = [p["from"] for p in prices[1:]]
        assert all(DAY.fullmatch(d) for d in dates), where
        assert dates == sorted(dates) and len(set(dates)) == len(dates), where
        for entry in prices:
            assert list(entry) in (["cents"], ["from", "cents"]), where
            check_cents(entry["cents"], where)
            assert "input_mtok" in entry["cents"], f"{where}: no input_mtok"
            if "embedding" not in model["id"]:
                assert "output_mtok" in entry["cents"], f"{where}: chat model without output"

        for variant in model.get("variants", []):
            assert list(variant) in (["when", "cents"], ["when", "from", "cents"]), where
            when = variant["when"]
            assert isinstance(when, dict) and when, where
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in when.items()), where
            assert set(when) <= {"service_tier", "speed", "inference_geo"}, where
            if "from" in variant:
                assert DAY.fullmatch(variant["from"]), where
            check_cents(variant["cents"], f"{where} variant {when}")


def test_max_output_source_is_named(doc: dict[str, Any]) -> None:
    for pkey, model in all_models(doc):
        source = model["_source"]
        if "max_output_tokens" in model:
            assert re.search(r"max_output_tokens: (litellm \S+ key '[^']+'|overrides)", source), \
                f"{pkey} {model['id']}: {source}"
        else:
            assert "max_output_tokens" not in source, f"{pkey} {model['id']}"


def test_overrides_explain_every_line(overrides: dict[str, Any]) -> None:
    assert all(rule["reason"] for rule in overrides["exclude"])
    for rule in overrides["exclude"]:
        re.compile(rule["id_regex"])
    assert overrides["us_inference_uplift"]["_source"]
    assert all(rule["_source"] for rule in overrides["max_output_tokens"])
    assert all(rule["_source"] for rule in overrides["extra_prices"])


# --------------------------------------------------------------------------- fidelity


def test_every_priced_genai_model_is_converted_exactly(
    doc: dict[str, Any], genai: dict[str, list[Any]], overrides: dict[str, Any]
) -> None:
    for pkey, models in genai.items():
        ours = {m["id"]: m for m in doc["models"][pkey]}
        for model in models:
            if excluded_reason(pkey, model, overrides) is not None:
                assert model.id not in ours, f"{pkey} {model.id} is excluded but listed"
                continue
            if model.deprecated and model.id not in ours:
                continue
            assert model.id in ours, f"{pkey} {model.id} missing"
            mine = ours[model.id]
            where = f"{pkey} {model.id}"
            assert bool(mine.get("deprecated")) == bool(model.deprecated), where
            assert mine.get("context_window") == model.context_window, where

            entries = genai_entries(model)
            assert [p.get("from") for p in mine["prices"]] == [d for d, _ in entries], where
            extra = extra_keys(pkey, model.id, overrides)
            for entry, (_, usd) in zip(mine["prices"], entries, strict=True):
                items = usd_items(usd)
                assert set(entry["cents"]) == set(items) | set(extra), where
                for key, value in items.items():
                    assert same_rate(entry["cents"][key], value), f"{where} {key}"
                for key, value in extra.items():
                    assert entry["cents"][key] == value, f"{where} {key}"

            kept = [v for v in model.price_variants or () if "processing" not in v.when]
            mine_kept = [v for v in mine.get("variants", []) if "inference_geo" not in v["when"]]
            assert len(mine_kept) == len(kept), where
            for variant, theirs in zip(mine_kept, kept, strict=True):
                assert variant["when"] == theirs.when, where
                start = theirs.constraint.start_date.isoformat() if theirs.constraint else None
                assert variant.get("from") == start, where
                items = usd_items(theirs.prices)
                assert set(variant["cents"]) == set(items), where
                for key, value in items.items():
                    assert same_rate(variant["cents"][key], value), f"{where} {theirs.when} {key}"


def test_us_inference_uplift_is_exact(
    doc: dict[str, Any], genai: dict[str, list[Any]], overrides: dict[str, Any]
) -> None:
    uplift = overrides["us_inference_uplift"]
    factor = Decimal(100) * Decimal(uplift["multiplier"])
    models = {m.id: m for m in genai[uplift["provider"]]}
    for mine in doc["models"][uplift["provider"]]:
        geo = [v for v in mine.get("variants", []) if "inference_geo" in v["when"]]
        if mine["id"] not in uplift["models"]:
            assert not geo, mine["id"]
            continue
        plain = [v for v in geo if v["when"] == uplift["when"]]
        entries = genai_entries(models[mine["id"]])
        # newest first: variants resolve first to last, skipping those not yet in force
        assert [v.get("from") for v in plain] == [d for d, _ in reversed(entries)], mine["id"]
        for variant, (_, usd) in zip(plain, reversed(entries), strict=True):
            items = {k: v for k, v in usd_items(usd).items() if k.endswith("_mtok")}
            assert set(variant["cents"]) == set(items), mine["id"]
            for key, value in items.items():
                assert same_rate(variant["cents"][key], value, factor), f"{mine['id']} {key}"
        assert geo[-1] == {"when": uplift["standard_when"], "cents": {}}, mine["id"]
        # a combined variant (e.g. speed=fast + us) must come before both of its parts
        for index, variant in enumerate(geo):
            if len(variant["when"]) > 1:
                position = mine["variants"].index(variant)
                parts = [i for i, v in enumerate(mine["variants"])
                         if v["when"].items() < variant["when"].items()]
                assert all(position < i for i in parts), mine["id"]


# --------------------------------------------------------------------------- resolution


@pytest.mark.parametrize("pkey,name", [(p, n) for p, ns in FLAGSHIPS.items() for n in ns]
                         + [(p, n) for p, ns in LEGACY.items() for n in ns])
def test_names_resolve_like_genai_prices(
    doc: dict[str, Any], genai: dict[str, list[Any]], pkey: str, name: str
) -> None:
    expected = genai_resolve(genai[pkey], name)
    assert expected is not None, f"genai-prices does not know {name}"
    assert resolve(doc["models"][pkey], name) == expected


def test_every_match_literal_resolves_like_genai_prices(
    doc: dict[str, Any], genai: dict[str, list[Any]], script: ModuleType
) -> None:
    """First match wins: dropping a model must not hand its names to another priced model."""
    for pkey, models in genai.items():
        for model in models:
            for name in [model.id, *script.match_literals(model.match)]:
                theirs = genai_resolve(models, name)
                ours = resolve(doc["models"][pkey], name)
                assert ours in (theirs, None), f"{pkey} {name!r}: ours {ours}, theirs {theirs}"
                if ours is None:
                    assert not any(m["id"] == theirs for m in doc["models"][pkey]), name


# --------------------------------------------------------------------------- regeneration


def test_conversion_reproduces_the_committed_file(
    text: str, doc: dict[str, Any], genai: dict[str, list[Any]], script: ModuleType
) -> None:
    """genai-prices + overrides + the committed LiteLLM max_output_tokens -> the same bytes."""
    from genai_prices.data import providers

    litellm_found = {}
    for pkey, model in all_models(doc):
        found = re.search(r"max_output_tokens: litellm \S+ key '([^']+)'", model["_source"])
        if found:
            litellm_found[(pkey, model["id"])] = (model["max_output_tokens"], found.group(1))
    rebuilt = script.build_document(providers, script.load_overrides(), litellm_found)
    assert script.render(rebuilt) == text


def test_check_mode_passes_on_the_committed_file(genai: dict[str, list[Any]],
                                                 script: ModuleType) -> None:
    explicit = os.environ.get("SPENDGUARD_LITELLM_MAP")
    map_path = script.find_litellm_map(Path(explicit) if explicit else None)
    if map_path is None:
        pytest.skip("LiteLLM map not available offline (install the pinned litellm or set "
                    "SPENDGUARD_LITELLM_MAP to the wheel)")
    assert script.main(["--check", "--quiet", "--litellm-map", str(map_path)]) == 0


# --------------------------------------------------------------------------- generator units


@pytest.mark.parametrize("usd,cents", [("5", "500"), ("0.0375", "3.75"), ("0.075", "7.5"),
                                       ("0.00001", "0.001"), ("12.5", "1250"), ("0", "0")])
def test_cents_are_exact_decimal_strings(script: ModuleType, usd: str, cents: str) -> None:
    assert script.cents_text(Decimal(usd) * 100) == cents


def test_cents_refuse_what_the_format_cannot_hold(script: ModuleType) -> None:
    for bad in (Decimal(-1), Decimal("NaN"), Decimal("1E-13"), Decimal("1E+16")):
        with pytest.raises(script.BuildError):
            script.cents_text(bad)


def test_litellm_lookup(genai: dict[str, list[Any]], script: ModuleType) -> None:
    models = genai["openai"]
    gpt41 = next(m for m in models if m.id == "gpt-4.1")
    exact = {"gpt-4.1": {"litellm_provider": "openai", "max_output_tokens": 32768}}
    assert script.litellm_max_output("openai", gpt41, models, exact) == (32768, "gpt-4.1")
    dated = {"gpt-4.1-2025-04-14": {"litellm_provider": "openai", "max_output_tokens": 32768},
             "azure/gpt-4.1": {"litellm_provider": "azure", "max_output_tokens": 1}}
    assert script.litellm_max_output("openai", gpt41, models, dated) == (32768,
                                                                         "gpt-4.1-2025-04-14")
    clash = dated | {"openai/gpt-4.1-2025-04-14": {"litellm_provider": "openai",
                                                   "max_output_tokens": 16384}}
    assert script.litellm_max_output("openai", gpt41, models, clash)[0] is None
    nothing = {"gpt-4.1": {"litellm_provider": "openai", "max_tokens": 32768}}
    assert script.litellm_max_output("openai", gpt41, models, nothing)[0] is None


def test_check_mode_reports_a_stale_file(
    genai: dict[str, list[Any]], script: ModuleType, text: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--check compares bytes: an empty LiteLLM map changes max_output_tokens, so it is stale."""
    committed = tmp_path / "bundled.json"
    committed.write_text(text, encoding="utf-8")
    monkeypatch.setattr(script, "BUNDLED_PATH", committed)
    monkeypatch.setattr(script, "read_litellm_map", lambda path: {})
    assert script.main(["--check", "--quiet", "--litellm-map", str(tmp_path / "map.json")]) == 1
    assert committed.read_text(encoding="utf-8") == text
    assert script.main(["--quiet", "--litellm-map", str(tmp_path / "map.json")]) == 0
    assert script.main(["--check", "--quiet", "--litellm-map", str(tmp_path / "map.json")]) == 0
    regenerated = json.loads(committed.read_text(encoding="utf-8"))
    capped = [m for _, m in all_models(regenerated) if "max_output_tokens" in m]
    assert all("max_output_tokens: overrides" in m["_source"] for m in capped)


def test_litellm_map_is_found_in_an_installed_package_and_pinned(
    script: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "litellm"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (package / "model_prices_and_context_window_backup.json").write_text("{}")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "litellm", raising=False)  # imported by another test
    found = script.find_litellm_map(None)
    assert found == package / "model_prices_and_context_window_backup.json"
    with pytest.raises(script.BuildError, match="sha256"):
        script.read_litellm_map(found)
