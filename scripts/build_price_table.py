#!/usr/bin/env python3
"""Generate the bundled pricing document (schema "2") from pinned price data.

    spendguard_proxy/pricing/bundled.json  =  genai-prices 0.2.3   (prices, match rules, variants)
                                            + LiteLLM 1.110.2 map  (max_output_tokens)
                                            + spendguard_proxy/pricing/overrides.json (reviewed)

Run it from a virtualenv holding the generator's pins (NOT runtime dependencies of the package):

    python -m venv /tmp/prices
    /tmp/prices/bin/pip install -r scripts/price-table-requirements.txt
    /tmp/prices/bin/python scripts/build_price_table.py            # rewrite bundled.json
    /tmp/prices/bin/python scripts/build_price_table.py --check    # exit 1 if bundled.json is stale

Exit status: 0 done (or up to date), 1 stale (--check), 2 inputs missing, unpinned or not
convertible faithfully (the message names the model or override line). A summary of the models
left out and of max_output_tokens coverage goes to stderr unless --quiet.

The LiteLLM model map is ``litellm/model_prices_and_context_window_backup.json`` inside the
``litellm`` wheel. The script finds it in an installed ``litellm`` (without importing it), or
takes ``--litellm-map PATH`` (the JSON file or the wheel itself), so the heavy install can be
skipped:

    pip download --no-deps litellm==1.110.2 -d /tmp/litellm
    python scripts/build_price_table.py --litellm-map /tmp/litellm/litellm-1.110.2-*.whl

Whatever the route, the map's SHA-256 must equal ``LITELLM_MAP_SHA256`` and the installed
genai-prices must be ``GENAI_PRICES_VERSION``: bumping a pin means editing these constants,
rerunning, and reviewing the diff of bundled.json. The output is byte-identical on every run
(dates come from the pinned release, never from the clock). Nothing here touches the network.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import importlib.metadata
import importlib.util
import json
import re
import sys
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal, Inexact, localcontext
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BUNDLED_PATH = REPO / "spendguard_proxy" / "pricing" / "bundled.json"
OVERRIDES_PATH = REPO / "spendguard_proxy" / "pricing" / "overrides.json"
OVERRIDES_REL = "spendguard_proxy/pricing/overrides.json"

GENAI_PRICES_VERSION = "0.2.3"
# PyPI upload date of genai_prices-0.2.3 (wheel and sdist uploaded 2026-11-10T21:51Z).
GENAI_PRICES_RELEASED = "2026-11-10"
LITELLM_VERSION = "1.110.2"
LITELLM_MAP_MEMBER = "litellm/model_prices_and_context_window_backup.json"
LITELLM_MAP_SHA256 = "8943af58bf9f979c6a4bef815687117ffa341e462a41faed9be17b5c33d3dcc2"
ENGINE = {"min_version": "0.2.0", "max_version": "0.99.99"}

# Our provider key -> (genai-prices provider id, required id prefix or None), in document order.
PROVIDERS: dict[str, tuple[str, str | None]] = {
    "openai": ("openai", None),
    "anthropic": ("anthropic", None),
    "gemini": ("google", "gemini"),
    "grok": ("x-ai", None),
}
# Where a model of ours may appear in LiteLLM's map, tried in order, and the LiteLLM providers
# whose entries count when matching dated or aliased keys through our match rule.
LITELLM_PREFIXES: dict[str, tuple[str, ...]] = {
    "openai": ("", "openai/"),
    "anthropic": ("", "anthropic/"),
    "gemini": ("gemini/", ""),
    "grok": ("xai/", ""),
}
LITELLM_PROVIDERS: dict[str, frozenset[str]] = {
    "openai": frozenset({"openai"}),
    "anthropic": frozenset({"anthropic"}),
    "gemini": frozenset({"gemini", "vertex_ai-language-models", "vertex_ai-embedding-models"}),
    "grok": frozenset({"xai"}),
}

# The price keys the proxy can bound, in the order they are written.
SUPPORTED_KEYS = (
    "input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok",
    "input_audio_mtok", "cache_audio_read_mtok", "input_image_mtok", "cache_image_read_mtok",
    "input_video_mtok", "output_audio_mtok", "output_image_mtok", "output_video_mtok",
    "web_searches_kcount", "storage_searches_kcount", "code_executions_kcount",
)
VARIANT_KEYS = frozenset({"service_tier", "speed"})
DROPPED_VARIANTS = ({"processing": "batch"},)
RATE_RE = re.compile(r"\d{1,15}(\.\d{1,12})?")
HUNDRED = Decimal(100)


class BuildError(Exception):
    """The inputs cannot be converted faithfully; the message says what and where."""


# --------------------------------------------------------------------------- decimal rates


def cents_text(value: Decimal) -> str:
    """An exact decimal string for ``value`` (already in cents): no exponent, no trailing zeros."""
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise BuildError(f"not a finite non-negative Decimal: {value!r}")
    text = format(value.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if not RATE_RE.fullmatch(text):
        raise BuildError(f"rate {text} does not fit \\d{{1,15}}(\\.\\d{{1,12}})?")
    return text


def _exact_mul(a: Decimal, b: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60
        ctx.traps[Inexact] = True
        return a * b


def _rate_json(price: Any, factor: Decimal) -> Any:
    """A genai-prices USD price (Decimal or TieredPrices) as cents, multiplied by ``factor``."""
    from genai_prices.types import TieredPrices

    if isinstance(price, TieredPrices):
        return {
            "base": cents_text(_exact_mul(price.base, factor)),
            "tiers": [
                {"start": tier.start, "price": cents_text(_exact_mul(tier.price, factor))}
                for tier in price.tiers
            ],
        }
    return cents_text(_exact_mul(price, factor))


def _price_items(model_price: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(model_price).items() if not k.startswith("_") and v is not None}


def _cents(model_price: Any, where: str) -> dict[str, Any]:
    items = _price_items(model_price)
    unknown = sorted(set(items) - set(SUPPORTED_KEYS))
    if unknown:
        raise BuildError(f"{where}: unsupported price keys {unknown}")
    return {key: _rate_json(items[key], HUNDRED) for key in SUPPORTED_KEYS if key in items}


def _scaled(cents: Mapping[str, Any], factor: Decimal, keys: Iterable[str]) -> dict[str, Any]:
    """``cents`` restricted to ``keys`` and multiplied by ``factor``, exactly (tiers too)."""
    def scale(text: str) -> str:
        return cents_text(_exact_mul(Decimal(text), factor))

    wanted = set(keys)
    out: dict[str, Any] = {}
    for key, rate in cents.items():
        if key not in wanted:
            continue
        if isinstance(rate, dict):
            out[key] = {
                "base": scale(rate["base"]),
                "tiers": [{"start": t["start"], "price": scale(t["price"])} for t in rate["tiers"]],
            }
        else:
            out[key] = scale(rate)
    return out


# --------------------------------------------------------------------------- genai-prices shapes


def match_json(clause: Any) -> dict[str, Any]:
    """genai-prices MatchLogic as its JSON shape (equals/starts_with/.../or/and)."""
    from genai_prices import types as t

    if isinstance(clause, t.ClauseOr):
        return {"or": [match_json(c) for c in clause.or_]}
    if isinstance(clause, t.ClauseAnd):
        return {"and": [match_json(c) for c in clause.and_]}
    for cls, key in ((t.ClauseEquals, "equals"), (t.ClauseStartsWith, "starts_with"),
                     (t.ClauseEndsWith, "ends_with"), (t.ClauseContains, "contains"),
                     (t.ClauseRegex, "regex")):
        if isinstance(clause, cls):
            return {key: getattr(clause, key)}
    raise BuildError(f"unknown match clause {clause!r}")


def match_literals(clause: Any) -> list[str]:
    """The plain strings of a match rule (equals/starts_with/ends_with/contains values)."""
    from genai_prices import types as t

    if isinstance(clause, t.ClauseOr):
        return [s for c in clause.or_ for s in match_literals(c)]
    if isinstance(clause, t.ClauseAnd):
        return [s for c in clause.and_ for s in match_literals(c)]
    for key in ("equals", "starts_with", "ends_with", "contains"):
        if hasattr(clause, key):
            return [getattr(clause, key)]
    return []


def _from_date(constraint: Any, where: str) -> str | None:
    from genai_prices.types import StartDateConstraint

    if constraint is None:
        return None
    if isinstance(constraint, StartDateConstraint):
        return constraint.start_date.isoformat()
    raise BuildError(f"{where}: unsupported price constraint {constraint!r}")


def _price_entries(model: Any) -> list[tuple[str | None, Any]]:
    from genai_prices.types import ModelPrice

    if isinstance(model.prices, ModelPrice):
        return [(None, model.prices)]
    return [(_from_date(cp.constraint, model.id), cp.prices) for cp in model.prices]


def _kept_variants(model: Any) -> list[Any]:
    kept = []
    for variant in model.price_variants or ():
        if any(variant.when == dropped for dropped in DROPPED_VARIANTS):
            continue
        if not set(variant.when) <= VARIANT_KEYS:
            raise BuildError(f"{model.id}: unexpected price variant when={variant.when}")
        kept.append(variant)
    return kept


def unsupported_keys(model: Any) -> list[str]:
    """Price keys of the model (standard prices and kept variants) outside SUPPORTED_KEYS."""
    found: set[str] = set()
    for _, prices in _price_entries(model):
        found |= set(_price_items(prices))
    for variant in _kept_variants(model):
        found |= set(_price_items(variant.prices))
    return sorted(found - set(SUPPORTED_KEYS))


# --------------------------------------------------------------------------- selection


def provider_models(providers: Sequence[Any], pkey: str) -> list[Any]:
    """The genai-prices models of one of our providers, in genai-prices' order."""
    genai_id, prefix = PROVIDERS[pkey]
    provider = next((p for p in providers if p.id == genai_id), None)
    if provider is None:
        raise BuildError(f"genai-prices has no provider {genai_id!r}")
    return [m for m in provider.models if prefix is None or m.id.startswith(prefix)]


def exclusion_reason(pkey: str, model: Any, overrides: Mapping[str, Any]) -> str | None:
    """Why a model is left out, or None when it is priced."""
    for rule in overrides["exclude"]:
        if rule.get("provider", pkey) == pkey and re.search(rule["id_regex"], model.id):
            return rule["reason"]
    bad = unsupported_keys(model)
    if bad:
        return "needs price keys SpendGuard cannot bound: " + ", ".join(bad)
    for when, prices in _price_entries(model):
        items = _price_items(prices)
        if "input_mtok" not in items:
            return "no input_mtok price" + (f" (entry from {when})" if when else "")
        if "output_mtok" not in items and "embedding" not in model.id:
            return "chat model without an output_mtok price"
    return None


def select_models(
    providers: Sequence[Any], overrides: Mapping[str, Any]
) -> tuple[dict[str, list[Any]], list[tuple[str, str, str]]]:
    """Included models per provider key, and (provider key, id, reason) for each one left out."""
    included: dict[str, list[Any]] = {}
    excluded: list[tuple[str, str, str]] = []
    for pkey in PROVIDERS:
        included[pkey] = []
        for model in provider_models(providers, pkey):
            reason = exclusion_reason(pkey, model, overrides)
            if reason is None:
                included[pkey].append(model)
            else:
                excluded.append((pkey, model.id, reason))
    _check_rules_used(providers, overrides)
    _check_no_shadowing(providers, included, excluded)
    return included, excluded


def _check_rules_used(providers: Sequence[Any], overrides: Mapping[str, Any]) -> None:
    for rule in overrides["exclude"]:
        pkeys = [rule["provider"]] if "provider" in rule else list(PROVIDERS)
        if not any(re.search(rule["id_regex"], m.id)
                   for pkey in pkeys for m in provider_models(providers, pkey)):
            raise BuildError(f"overrides: exclusion {rule['id_regex']!r} matches no model (stale?)")


def _check_no_shadowing(
    providers: Sequence[Any], included: Mapping[str, list[Any]],
    excluded: Sequence[tuple[str, str, str]],
) -> None:
    """An excluded model's own names must not fall through to a priced model further down."""
    for pkey, model_id, _ in excluded:
        model = next(m for m in provider_models(providers, pkey) if m.id == model_id)
        for name in [model.id, *match_literals(model.match)]:
            hit = next((m for m in included[pkey] if m.is_match(name)), None)
            if hit is not None:
                raise BuildError(f"{pkey}: excluded {model_id!r} name {name!r} would be priced "
                                 f"as {hit.id!r}")


# --------------------------------------------------------------------------- LiteLLM


def litellm_max_output(
    pkey: str, model: Any, included: Sequence[Any], litellm_map: Mapping[str, Any]
) -> tuple[int, str] | tuple[None, str]:
    """(max_output_tokens, LiteLLM key) or (None, why not) for one of our models."""
    for prefix in LITELLM_PREFIXES[pkey]:
        entry = litellm_map.get(prefix + model.id)
        if isinstance(entry, dict) and entry.get("litellm_provider") in LITELLM_PROVIDERS[pkey]:
            value = entry.get("max_output_tokens")
            if isinstance(value, int) and value > 0:
                return value, prefix + model.id
            return None, f"litellm key {prefix + model.id!r} has no max_output_tokens"
    # Dated snapshots and aliases: LiteLLM keys that this model's match rule claims first.
    found: dict[str, int] = {}
    wanted = LITELLM_PROVIDERS[pkey]
    for key, entry in litellm_map.items():
        if not isinstance(entry, dict) or entry.get("litellm_provider") not in wanted:
            continue
        name = key.split("/", 1)[1] if "/" in key else key
        first = next((m for m in included if m.is_match(name)), None)
        value = entry.get("max_output_tokens")
        if first is model and isinstance(value, int) and value > 0:
            found[key] = value
    if not found:
        return None, "no litellm entry"
    if len(set(found.values())) > 1:
        return None, f"litellm keys disagree: {sorted(found.items())}"
    key = min(found)
    return found[key], key


def resolve_litellm(
    included: Mapping[str, list[Any]], litellm_map: Mapping[str, Any]
) -> tuple[dict[tuple[str, str], tuple[int, str]], dict[tuple[str, str], str]]:
    """LiteLLM's max_output_tokens per (provider key, id), and why the others have none."""
    found: dict[tuple[str, str], tuple[int, str]] = {}
    missing: dict[tuple[str, str], str] = {}
    for pkey, models in included.items():
        for model in models:
            value, note = litellm_max_output(pkey, model, models, litellm_map)
            if value is None:
                missing[(pkey, model.id)] = note
            else:
                found[(pkey, model.id)] = (value, note)
    return found, missing


# --------------------------------------------------------------------------- the document


def _uplift_variants(
    entries: Sequence[tuple[str | None, dict[str, Any]]],
    kept: Sequence[dict[str, Any]],
    uplift: Mapping[str, Any],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(variants to put first, variants to put last) for a model with the US-only uplift.

    First: each kept variant again with the uplift's ``when`` added and its rates multiplied,
    so a request naming both (speed=fast and inference_geo=us) pays both. Last: one variant per
    standard price entry, newest first (variants resolve first to last, skipping those whose
    "from" is later than the call), and the standard-rate "global" value.
    """
    if len({frozenset(cents) for _, cents in entries}) > 1:
        raise BuildError("us_inference_uplift: dated price entries with different keys would let "
                         "an older entry's uplifted rate leak into a newer one")
    factor = Decimal(uplift["multiplier"])
    suffix = uplift["price_key_suffix"]
    when = dict(uplift["when"])

    def scale(cents: Mapping[str, Any]) -> dict[str, Any]:
        return _scaled(cents, factor, [k for k in cents if k.endswith(suffix)])

    first = []
    for variant in kept:
        if variant["cents"]:
            combined = {"when": {**variant["when"], **when}}
            if "from" in variant:
                combined["from"] = variant["from"]
            combined["cents"] = scale(variant["cents"])
            first.append(combined)
    last = []
    for from_date, cents in reversed(entries):
        item: dict[str, Any] = {"when": dict(when)}
        if from_date is not None:
            item["from"] = from_date
        item["cents"] = scale(cents)
        last.append(item)
    last.append({"when": dict(uplift["standard_when"]), "cents": {}})
    return first, last


def _extra_cents(pkey: str, model_id: str, overrides: Mapping[str, Any]) -> dict[str, str]:
    extra: dict[str, str] = {}
    for rule in overrides["extra_prices"]:
        if rule["provider"] == pkey and re.search(rule["id_regex"], model_id):
            extra.update(rule["cents"])
    return extra


def model_json(
    pkey: str, model: Any, overrides: Mapping[str, Any],
    litellm_found: Mapping[tuple[str, str], tuple[int, str]],
) -> dict[str, Any]:
    """One model of the document."""
    extra = _extra_cents(pkey, model.id, overrides)
    entries: list[tuple[str | None, dict[str, Any]]] = []
    for from_date, prices in _price_entries(model):
        cents = _cents(prices, model.id)
        repeated = sorted(set(extra) & set(cents))
        if repeated:
            raise BuildError(f"{model.id}: overrides extra_prices repeat {repeated}")
        cents.update(extra)
        entries.append((from_date, {k: cents[k] for k in SUPPORTED_KEYS if k in cents}))

    kept = []
    for variant in _kept_variants(model):
        item: dict[str, Any] = {"when": dict(variant.when)}
        from_date = _from_date(variant.constraint, model.id)
        if from_date is not None:
            item["from"] = from_date
        item["cents"] = _cents(variant.prices, f"{model.id} variant {variant.when}")
        kept.append(item)

    sources = [f"genai-prices {GENAI_PRICES_VERSION}"]
    variants = kept
    uplift = overrides["us_inference_uplift"]
    if pkey == uplift["provider"] and model.id in uplift["models"]:
        first, last = _uplift_variants(entries, kept, uplift)
        variants = first + kept + last
        sources.append("inference_geo variants: overrides")
    if extra:
        sources.append(", ".join(sorted(extra)) + ": overrides")

    out: dict[str, Any] = {"id": model.id, "match": match_json(model.match)}
    if model.context_window is not None:
        out["context_window"] = model.context_window
    max_output = _max_output_override(pkey, model.id, overrides)
    if max_output is not None:
        out["max_output_tokens"] = max_output
        sources.insert(1, "max_output_tokens: overrides")
    elif (pkey, model.id) in litellm_found:
        value, key = litellm_found[(pkey, model.id)]
        out["max_output_tokens"] = value
        sources.insert(1, f"max_output_tokens: litellm {LITELLM_VERSION} key '{key}'")
    if model.deprecated:
        out["deprecated"] = True
    out["prices"] = [({"from": d} if d else {}) | {"cents": c} for d, c in entries]
    if variants:
        out["variants"] = variants
    out["_source"] = "; ".join(sources)
    return out


def _max_output_override(pkey: str, model_id: str, overrides: Mapping[str, Any]) -> int | None:
    for rule in overrides["max_output_tokens"]:
        if rule["provider"] == pkey and rule["id"] == model_id:
            return int(rule["value"])
    return None


def _check_overrides_apply(included: Mapping[str, list[Any]], overrides: Mapping[str, Any]) -> None:
    ids = {(pkey, m.id) for pkey, models in included.items() for m in models}
    uplift = overrides["us_inference_uplift"]
    for model_id in uplift["models"]:
        if (uplift["provider"], model_id) not in ids:
            raise BuildError(f"overrides: us_inference_uplift names unknown model {model_id!r}")
    for rule in overrides["max_output_tokens"]:
        if (rule["provider"], rule["id"]) not in ids:
            raise BuildError(f"overrides: max_output_tokens names unknown model {rule['id']!r}")
    for rule in overrides["extra_prices"]:
        if not any(re.search(rule["id_regex"], mid) for pk, mid in ids if pk == rule["provider"]):
            raise BuildError(f"overrides: extra_prices {rule['id_regex']!r} matches no model")
        for key, value in rule["cents"].items():
            if key not in SUPPORTED_KEYS or not RATE_RE.fullmatch(value):
                raise BuildError(f"overrides: extra_prices {key}={value!r} is not a valid rate")


def _notes(excluded: Sequence[tuple[str, str, str]], overrides: Mapping[str, Any]) -> list[str]:
    unsupported = [f"{pkey} {mid} ({reason.split(': ', 1)[1]})"
                   for pkey, mid, reason in excluded if reason.startswith("needs price keys")]
    ruled = sorted({pkey + " " + mid for pkey, mid, reason in excluded
                    if not reason.startswith("needs price keys")})
    uplift = overrides["us_inference_uplift"]
    return [
        ("Generated by scripts/build_price_table.py from genai-prices (MIT, Pydantic), LiteLLM's "
         "model map (max_output_tokens only) and overrides.json; do not edit by hand. Bundled "
         "list prices, trusted as code."),
        ("Units: rates are US cents as exact decimal strings; *_mtok = cents per 1M units "
         "(tokens), *_kcount = cents per 1,000 (searches, code executions). A tiered rate "
         "{base, tiers:[{start, price}]} bills the whole call at the price of the highest tier "
         "whose start is strictly below the call's total input tokens."),
        ("prices: the last entry whose 'from' date is on or before the call's UTC date applies; "
         "the first entry is the fallback. variants: request-dependent overrides, resolved key by "
         "key from first to last, skipping a variant whose 'when' does not match the request or "
         "whose 'from' is after the call date; keys no variant gives come from prices."),
        ("match: the model name is lowercased; equals/starts_with/ends_with/contains compare "
         "case-insensitively, regex is a search on the lowercased name; within a provider the "
         "first model whose match holds wins."),
        ("Variants kept from genai-prices: service_tier and speed. Batch prices (processing=batch) "
         "are left out: SpendGuard does not proxy the batch API. inference_geo variants come from "
         f"overrides.json (Anthropic US-only inference: token rates x{uplift['multiplier']}; "
         "per-request fees are not uplifted)."),
        ("max_output_tokens: the model's output cap from LiteLLM's map or overrides.json; absent "
         "where neither states one."),
        ("Not priced, so refused: any billing unit without a key here (e.g. Gemini "
         "context-cache storage per hour, tool fees genai-prices does not list such as xAI web "
         "search). Left out by "
         "overrides.json rules (" + str(len(ruled)) + " models: TTS, transcription, realtime/live, "
         "image and video generation, audio chat, moderation, legacy completions, fine-tunes, "
         "search-preview chat models). Left out for unsupported price keys: "
         + ("; ".join(unsupported) if unsupported else "none") + "."),
    ]


def build_document(
    providers: Sequence[Any], overrides: Mapping[str, Any],
    litellm_found: Mapping[tuple[str, str], tuple[int, str]],
) -> dict[str, Any]:
    """The whole pricing document: pure, no I/O (the test calls it directly)."""
    included, excluded = select_models(providers, overrides)
    _check_overrides_apply(included, overrides)
    as_of = date.fromisoformat(GENAI_PRICES_RELEASED)
    expires = as_of.replace(year=as_of.year + 1) if (as_of.month, as_of.day) != (2, 29) \
        else as_of + timedelta(days=365)
    return {
        "schema_version": "2",
        "as_of": as_of.isoformat(),
        "generated_at": f"{as_of.isoformat()}T00:00:00Z",
        "expires_at": f"{expires.isoformat()}T00:00:00Z",
        "engine": dict(ENGINE),
        "source": {"genai_prices": GENAI_PRICES_VERSION, "litellm": LITELLM_VERSION,
                   "overrides": OVERRIDES_REL},
        "_notes": _notes(excluded, overrides),
        "models": {
            pkey: [model_json(pkey, m, overrides, litellm_found) for m in models]
            for pkey, models in included.items()
        },
    }


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- inputs


def load_overrides(path: Path = OVERRIDES_PATH) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    expected = {"_comment", "exclude", "us_inference_uplift", "max_output_tokens", "extra_prices"}
    if set(data) != expected:
        raise BuildError(f"overrides: top-level keys must be {sorted(expected)}, "
                         f"got {sorted(data)}")
    for rule in data["exclude"]:
        _require(rule, {"id_regex", "reason"}, {"provider"}, "exclude")
    _require(data["us_inference_uplift"],
             {"provider", "when", "standard_when", "multiplier", "price_key_suffix", "models",
              "_source"}, set(), "us_inference_uplift")
    for rule in data["max_output_tokens"]:
        _require(rule, {"provider", "id", "value", "_source"}, set(), "max_output_tokens")
    for rule in data["extra_prices"]:
        _require(rule, {"provider", "id_regex", "cents", "_source"}, set(), "extra_prices")
    return data


def _require(item: Mapping[str, Any], required: set[str], optional: set[str], where: str) -> None:
    keys = set(item)
    if not required <= keys or not keys <= required | optional:
        raise BuildError(f"overrides: {where} entry {dict(item)} needs keys {sorted(required)}"
                         f" (optional {sorted(optional)})")
    if "provider" in item and item["provider"] not in PROVIDERS:
        raise BuildError(f"overrides: {where}: unknown provider {item['provider']!r}")


def load_genai_providers() -> list[Any]:
    installed = importlib.metadata.version("genai-prices")
    if installed != GENAI_PRICES_VERSION:
        raise BuildError(f"genai-prices {installed} is installed; "
                         f"the pin is {GENAI_PRICES_VERSION}")
    from genai_prices.data import providers

    return list(providers)


def find_litellm_map(explicit: Path | None) -> Path | None:
    """The LiteLLM map (JSON or wheel) to read, or None when none is available."""
    if explicit is not None:
        return explicit
    spec = importlib.util.find_spec("litellm")  # locates the package without importing it
    if spec is not None and spec.submodule_search_locations:
        package_dir = Path(next(iter(spec.submodule_search_locations)))
        candidate = package_dir / LITELLM_MAP_MEMBER.split("/", 1)[1]
        if candidate.is_file():
            return candidate
    return None


def read_litellm_map(path: Path) -> dict[str, Any]:
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            raw = wheel.read(LITELLM_MAP_MEMBER)
    else:
        raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != LITELLM_MAP_SHA256:
        raise BuildError(f"{path}: LiteLLM map sha256 {digest} is not the pinned "
                         f"litellm {LITELLM_VERSION} map ({LITELLM_MAP_SHA256})")
    return json.loads(raw)


# --------------------------------------------------------------------------- command line


def _summary(document: Mapping[str, Any], excluded: Sequence[tuple[str, str, str]],
             missing: Mapping[tuple[str, str], str]) -> str:
    lines = []
    for pkey, models in document["models"].items():
        sources = [m["_source"] for m in models]
        lines.append(f"{pkey}: {len(models)} models, max_output_tokens from litellm "
                     f"{sum('litellm' in s for s in sources)}, overrides "
                     f"{sum('max_output_tokens: overrides' in s for s in sources)}, unknown "
                     f"{sum('max_output_tokens' not in s for s in sources)}")
    lines += [f"  left out {pkey} {mid}: {reason}" for pkey, mid, reason in excluded]
    lines += [f"  no max_output_tokens {pkey} {mid}: {why}" for (pkey, mid), why in missing.items()
              if not any(m["id"] == mid and "max_output_tokens" in m
                         for m in document["models"][pkey])]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed bundled.json differs from the generated one")
    parser.add_argument("--litellm-map", type=Path, default=None,
                        help="LiteLLM model map: the JSON file or the litellm wheel")
    parser.add_argument("--quiet", action="store_true", help="no summary on stderr")
    args = parser.parse_args(argv)
    try:
        map_path = find_litellm_map(args.litellm_map)
        if map_path is None:
            raise BuildError(f"no LiteLLM map: install litellm=={LITELLM_VERSION} or pass "
                             "--litellm-map (see the top of this script)")
        providers = load_genai_providers()
        overrides = load_overrides()
        included, excluded = select_models(providers, overrides)
        found, missing = resolve_litellm(included, read_litellm_map(map_path))
        document = build_document(providers, overrides, found)
    except BuildError as exc:
        print(f"build_price_table: {exc}", file=sys.stderr)
        return 2
    text = render(document)
    if not args.quiet:
        print(_summary(document, excluded, missing), file=sys.stderr)
    if args.check:
        current = BUNDLED_PATH.read_text(encoding="utf-8") if BUNDLED_PATH.exists() else ""
        if current != text:
            diff = difflib.unified_diff(current.splitlines(), text.splitlines(),
                                        "committed", "generated", lineterm="", n=1)
            print("\n".join(list(diff)[:60]), file=sys.stderr)
            print(f"build_price_table: {BUNDLED_PATH} is stale; rerun "
                  "scripts/build_price_table.py and commit the result", file=sys.stderr)
            return 1
        return 0
    BUNDLED_PATH.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
