"""Ed25519 keys and signatures for pricing documents.

Keys travel as base64 of their raw 32 bytes (the private key is the 32-byte seed); the
signature is base64 of the 64 signature bytes over ``canonical.canonical_bytes(doc)``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from spendguard_proxy.errors import PricingError
from spendguard_proxy.pricing.canonical import canonical_bytes

_RAW = serialization.Encoding.Raw


@dataclass(frozen=True, slots=True)
class KeyPair:
    public_key: str
    private_key: str


def generate_keypair() -> KeyPair:
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(
        _RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return KeyPair(public_key=_public_b64(private), private_key=_b64(raw_private))


def public_key_for(private_key_b64: str) -> str:
    return _public_b64(load_private_key(private_key_b64))


def load_private_key(
    value: str, name: str = "CAP_PRICING_SIGNING_PRIVATE_KEY"
) -> Ed25519PrivateKey:
    raw = _decode_key(value, name)
    return Ed25519PrivateKey.from_private_bytes(raw)


def load_public_key(value: str, name: str = "CAP_PRICING_SIGNING_PUBLIC_KEY") -> Ed25519PublicKey:
    raw = _decode_key(value, name)
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise PricingError(f"{name} is not a valid Ed25519 public key") from None


def sign_document(doc: dict[str, Any], private_key_b64: str) -> dict[str, Any]:
    """A copy of ``doc`` whose ``signature`` covers everything else in it."""
    key = load_private_key(private_key_b64)
    signed = {k: v for k, v in doc.items() if k != "signature"}
    signed["signature"] = _b64(key.sign(canonical_bytes(signed)))
    return signed


def verify_signature(doc: dict[str, Any], public_key_b64: str, origin: str) -> None:
    """PricingError unless ``doc["signature"]`` was made by the given key over this content."""
    signature = doc.get("signature")
    if not isinstance(signature, str) or not signature.strip():
        raise PricingError(
            f"Remote pricing payload is missing signature ({origin}); sign it with "
            "`spendguard pricing sign` or turn CAP_PRICING_VERIFY_SIGNATURE off for an "
            "operator-written file"
        )
    key = load_public_key(public_key_b64)
    try:
        raw_signature = base64.b64decode(signature.strip(), validate=True)
        key.verify(raw_signature, canonical_bytes(doc))
    except (InvalidSignature, binascii.Error, ValueError):
        raise PricingError(
            f"Remote pricing signature verification failed ({origin}): the document was "
            "changed after signing or signed with another key; check "
            "CAP_PRICING_SIGNING_PUBLIC_KEY against the publisher's key"
        ) from None


def _decode_key(value: str, name: str) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise PricingError(f"{name} must be base64 of a raw 32-byte Ed25519 key") from None
    if len(raw) != 32:
        raise PricingError(f"{name} must decode to exactly 32 bytes, got {len(raw)}")
    return raw


def _public_b64(private: Ed25519PrivateKey) -> str:
    return _b64(private.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
