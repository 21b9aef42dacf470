"""Webhook signing secrets: generated once, shown once, stored encrypted.

A secret is ``whsec_`` + base64 of 32 random bytes (the Standard Webhooks format, which
``standardwebhooks.Webhook`` takes as it is). The database holds only its Fernet ciphertext
under the operator's key, ``CAP_WEBHOOK_SECRET_KEY``: a database dump or backup alone does not
let anyone sign events. Several comma-separated keys rotate the key: the first encrypts, any
of them decrypts.

Hosted mode must be given the key (replicas must share it). A sidecar without one generates a
key once and keeps it in ``<data dir>/webhook-secret.key`` (mode 0600), beside the embedded
database it protects.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.settings import Mode, Settings, SettingsError

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
KEY_FILE_NAME = "webhook-secret.key"
KEY_VARIABLE = "CAP_WEBHOOK_SECRET_KEY"
KEYGEN_HINT = "generate one with `spendguard webhook keygen`"


class WebhooksNotConfigured(InvalidRequest):
    """Hosted mode without an encryption key: webhooks cannot be created (4xx: retrying the
    same request cannot help; the operator must set the key)."""

    def __init__(self) -> None:
        super().__init__(
            f"Webhooks are not configured on this server: the operator must set {KEY_VARIABLE}"
            f" (a Fernet key; {KEYGEN_HINT}) to store webhook signing secrets encrypted"
        )


class SecretUnreadable(Exception):
    """A stored secret does not decrypt with any configured key (the key was changed)."""


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def generate_key() -> str:
    return Fernet.generate_key().decode()


def check_keys(raw: str) -> list[str]:
    """The comma-separated Fernet keys of ``raw``; ValueError (never quoting a key) if one is
    not a Fernet key."""
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys:
        raise ValueError(f"holds no key; {KEYGEN_HINT}")
    for position, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ValueError(
                f"key {position} is not a Fernet key (32 bytes, url-safe base64: 44 "
                f"characters); {KEYGEN_HINT}"
            ) from None
    return keys


class SecretBox:
    """Seals and opens signing secrets with the operator's key(s)."""

    def __init__(self, raw_keys: str) -> None:
        self._fernet = MultiFernet([Fernet(k) for k in check_keys(raw_keys)])

    def seal(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode())

    def open(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(ciphertext)).decode()
        except InvalidToken:
            raise SecretUnreadable(
                f"the webhook's signing secret does not decrypt with {KEY_VARIABLE}: set it to "
                "the key the webhook was created under (comma-separated keys rotate)"
            ) from None


def box_for(settings: Settings) -> SecretBox:
    """The box of ``settings``: the configured key, else (sidecar only) the data dir's key,
    created on first use. Hosted mode without a key raises WebhooksNotConfigured."""
    if settings.webhook_secret_key is not None:
        raw = settings.webhook_secret_key.get_secret_value()
        if raw.strip():
            try:
                return SecretBox(raw)
            except ValueError as exc:
                raise SettingsError(f"Invalid configuration: {KEY_VARIABLE}: {exc}") from None
    if settings.mode is Mode.hosted:
        raise WebhooksNotConfigured()
    return SecretBox(_data_dir_key(settings.data_dir))


def _data_dir_key(data_dir: Path) -> str:
    path = data_dir.expanduser() / KEY_FILE_NAME
    if not path.exists():
        _create_key_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s is readable by other users (mode %o); chmod 600 it", path, mode)
    key = path.read_text().strip()
    try:
        check_keys(key)
    except ValueError as exc:
        raise SettingsError(f"{path}: {exc}; or set {KEY_VARIABLE}") from None
    return key


def _create_key_file(path: Path) -> None:
    """Write a new key to a private temporary file, then link it into place: two processes
    starting at once end up with the same key, and no reader sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(generate_key() + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
            log.warning("generated the webhook secret key %s (keep it with the database: "
                        "webhook secrets cannot be read without it)", path)
        except FileExistsError:
            pass  # another process won: use its key
    finally:
        tmp.unlink(missing_ok=True)
