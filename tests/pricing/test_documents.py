"""Document parsing: exact rates, floats refused, lookups and aliases, canonical bytes, keys."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from spendguard_proxy.errors import PricingError, UnknownModel
from spendguard_proxy.pricing.canonical import canonical_bytes, load_document
from spendguard_proxy.pricing.ratecard import fraction_to_str, parse_rate
from spendguard_proxy.pricing.signing import (
    generate_keypair,
    public_key_for,
    sign_document,
    verify_signature,
)
from spendguard_proxy.pricing.table import PriceTable

from .helpers import base_document, to_bytes


def table_of(doc: dict) -> PriceTable:
    return PriceTable.from_document(load_document(to_bytes(doc), "test"), source="file",
                                    origin="test")


def test_rates_are_exact_fractions() -> None:
    card = table_of(base_document()).lookup("openai", "fake-model")
    assert card.resolve()["output_mtok"] == Fraction(801, 2)
    assert card.resolve()["cache_read_mtok"] == Fraction(25, 2)
    assert card.max_output_tokens == 1000


def test_json_float_is_rejected_with_its_location() -> None:
    raw = to_bytes(base_document()).replace(b'"400.5"', b"400.5")
    with pytest.raises(PricingError) as err:
        load_document(raw, "test")
    assert "rates.openai.fake-model.output_cents_per_1m" in err.value.message
    assert "JSON float at" in err.value.message and "(400.5)" in err.value.message
    assert '"17.5"' in err.value.message


def test_integral_float_is_still_a_float() -> None:
    raw = to_bytes(base_document()).replace(b'"input_cents_per_1m": 100,',
                                            b'"input_cents_per_1m": 100.0,')
    with pytest.raises(PricingError, match="JSON float"):
        load_document(raw, "test")


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b'{"a": Infinity}', b"[1]", b"{", b"\xff"])
def test_non_documents_are_rejected(raw: bytes) -> None:
    with pytest.raises(PricingError):
        load_document(raw, "test")


@pytest.mark.parametrize("value", [-1, "-1", "1e3", " 1", "1.", ".5", "abc", True, None, [1]])
def test_bad_rate_values(value: object) -> None:
    with pytest.raises(PricingError, match="rates.openai.x.input"):
        parse_rate(value, "rates.openai.x.input")


def test_good_rate_values() -> None:
    assert parse_rate(0, "r") == 0
    assert parse_rate("0.005", "r") == Fraction(1, 200)
    assert parse_rate(1500, "r") == 1500


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["rates"]["openai"]["fake-model"].update(input_cents_per_1M=1),
         "unknown field"),
        (lambda d: d["rates"]["openai"]["fake-model"].pop("input_cents_per_1m"), "missing input"),
        (lambda d: d["rates"].update(xai={}), "unknown provider 'xai'"),
        (lambda d: d["rates"]["openai"]["fake-model"].update(max_output_tokens=0), "positive"),
        (lambda d: d["rates"]["openai"]["fake-model"].update(context_cliff_tokens=10), "cliff"),
        (lambda d: d["aliases"]["openai"].update({"gpt-x": "nope"}), "does not price"),
        (lambda d: d["aliases"]["openai"].update({"gpt-4o": "fake-model"}), "shadows"),
        (lambda d: d.pop("rates"), "missing its rates"),
        (lambda d: d.pop("engine"), "missing engine"),
        (lambda d: d.update(generated_at="yesterday"), "not an ISO 8601"),
    ],
)
def test_shape_errors_name_the_problem(mutate, message: str) -> None:
    doc = base_document()
    mutate(doc)
    with pytest.raises(PricingError, match=message):
        table_of(doc)


def test_notes_fields_are_allowed() -> None:
    doc = base_document(_notes=["free text"])
    doc["rates"]["openai"]["fake-model"]["_source"] = "somewhere"
    assert table_of(doc).lookup("openai", "fake-model").resolve()["input_mtok"] == 100


def test_unknown_model_is_a_400_with_the_reference_message() -> None:
    table = table_of(base_document())
    with pytest.raises(UnknownModel) as err:
        table.lookup("openai", "gpt-9")
    assert err.value.status == 400
    assert err.value.message == "Unknown model for pricing: openai:gpt-9"
    with pytest.raises(UnknownModel):
        table.lookup("mistral", "fake-model")


def test_dated_ids_resolve_only_where_the_document_says() -> None:
    table = table_of(base_document())
    assert table.lookup("openai", "gpt-4o-2024-08-06").model == "gpt-4o"
    assert table.lookup("openai", "gpt-4o-2024-05-13").resolve()["input_mtok"] == 500  # own price
    with pytest.raises(UnknownModel):
        table.lookup("openai", "gpt-4o-2024-11-20")  # not listed: no guessing
    with pytest.raises(UnknownModel):
        table.lookup("anthropic", "gpt-4o-2024-08-06")  # aliases are per provider
    assert table.lookup("openai", "gpt-4o").equal_names == ("gpt-4o", "gpt-4o-2024-08-06")


def test_canonical_bytes_are_sorted_compact_utf8_without_signature() -> None:
    doc = {"b": 1, "a": {"é": "ü", "c": [2, "x"]}, "signature": "zzz"}
    assert canonical_bytes(doc) == '{"a":{"c":[2,"x"],"é":"ü"},"b":1}'.encode()


def test_sign_and_verify_round_trip_and_tamper_detection() -> None:
    pair = generate_keypair()
    assert public_key_for(pair.private_key) == pair.public_key
    signed = sign_document(base_document(), pair.private_key)
    verify_signature(signed, pair.public_key, "test")
    # Formatting does not matter, content does.
    verify_signature(json.loads(json.dumps(signed, indent=4)), pair.public_key, "test")
    tampered = json.loads(json.dumps(signed))
    tampered["rates"]["openai"]["fake-model"]["input_cents_per_1m"] = 1
    with pytest.raises(PricingError, match="Remote pricing signature verification failed"):
        verify_signature(tampered, pair.public_key, "test")
    with pytest.raises(PricingError, match="Remote pricing signature verification failed"):
        verify_signature({**signed, "signature": "!!notbase64"}, pair.public_key, "test")


@pytest.mark.parametrize("key", ["", "abc", "AAAA"])
def test_bad_public_keys_are_explained(key: str) -> None:
    signed = sign_document(base_document(), generate_keypair().private_key)
    with pytest.raises(PricingError, match="CAP_PRICING_SIGNING_PUBLIC_KEY"):
        verify_signature(signed, key, "test")


@pytest.mark.parametrize(
    ("value", "text"),
    [(Fraction(35, 2), "17.5"), (Fraction(3), "3"), (Fraction(1, 3), "1/3"),
     (Fraction(1, 200), "0.005"), (Fraction(-7, 4), "-1.75"), (Fraction(0), "0")],
)
def test_fraction_text(value: Fraction, text: str) -> None:
    assert fraction_to_str(value) == text
