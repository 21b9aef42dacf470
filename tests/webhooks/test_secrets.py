"""Signing secrets: random, encrypted at rest, readable only with the operator's key."""

from __future__ import annotations

import base64
import json
import stat
import uuid

import pytest
from pydantic import SecretStr

from spendguard_proxy.settings import Mode, SettingsError
from spendguard_proxy.webhooks import store
from spendguard_proxy.webhooks.secret_box import (
    KEY_FILE_NAME,
    SecretBox,
    SecretUnreadable,
    WebhooksNotConfigured,
    box_for,
    generate_key,
    generate_secret,
)
from tests.webhooks.conftest import emit, new_tenant_id


def test_secrets_are_standard_webhooks_secrets_and_never_repeat():
    secrets = {generate_secret() for _ in range(200)}
    assert len(secrets) == 200
    for secret in list(secrets)[:5]:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret[6:])) == 32


async def test_the_database_holds_ciphertext_and_only_create_shows_the_secret(
    wh_pool, wh_settings
):
    tenant = await new_tenant_id(wh_pool)
    box = box_for(wh_settings)
    created = await store.create_webhook(wh_pool, tenant, "https://example.com/h", None, box, 20)
    secret = created["secret"]
    ciphertext = bytes(await wh_pool.fetchval(
        "SELECT secret_ciphertext FROM webhooks WHERE id = $1",
        uuid.UUID(created["webhook_id"])))
    raw = base64.b64decode(secret[6:])
    assert secret.encode() not in ciphertext and raw not in ciphertext
    assert secret[6:].encode() not in ciphertext
    assert box.open(ciphertext) == secret
    await emit(wh_pool, tenant, "call.cutoff", {"agent_id": "x"})
    listing = await store.list_webhooks(wh_pool, tenant)
    deliveries = await store.list_deliveries(wh_pool, tenant, uuid.UUID(created["webhook_id"]),
                                             limit=10, before=None)
    for answer in (listing, deliveries):
        text = json.dumps(answer)
        assert secret not in text and secret[6:] not in text and "secret" not in text


def test_keys_rotate_and_a_wrong_key_is_a_clear_error():
    old, new = generate_key(), generate_key()
    sealed = SecretBox(old).seal("whsec_abc")
    assert SecretBox(f"{new},{old}").open(sealed) == "whsec_abc"  # rotation: old still reads
    assert SecretBox(new).open(SecretBox(f"{new},{old}").seal("x")) == "x"  # first encrypts
    with pytest.raises(SecretUnreadable, match="CAP_WEBHOOK_SECRET_KEY"):
        SecretBox(new).open(sealed)


def test_hosted_needs_the_key_and_a_bad_key_is_named_without_its_value(wh_settings):
    hosted = wh_settings.model_copy(update={"mode": Mode.hosted, "webhook_secret_key": None})
    with pytest.raises(WebhooksNotConfigured, match="CAP_WEBHOOK_SECRET_KEY"):
        box_for(hosted)
    bad = hosted.model_copy(update={"webhook_secret_key": SecretStr("not-a-key-at-all")})
    with pytest.raises(SettingsError, match="CAP_WEBHOOK_SECRET_KEY: key 1 is not a Fernet") as e:
        box_for(bad)
    assert "not-a-key-at-all" not in str(e.value)


def test_a_sidecar_without_a_key_keeps_one_in_the_data_dir(wh_settings, tmp_path):
    settings = wh_settings.model_copy(update={"webhook_secret_key": None,
                                              "data_dir": tmp_path / "data"})
    sealed = box_for(settings).seal("whsec_x")
    path = tmp_path / "data" / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert box_for(settings).open(sealed) == "whsec_x"  # the same key the next time
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE_NAME]  # no temp files left


def test_a_malformed_key_stops_start_up_naming_the_variable_not_the_value(monkeypatch):
    from spendguard_proxy.settings import load_settings

    monkeypatch.setenv("CAP_WEBHOOK_SECRET_KEY", f"{generate_key()},sekrit-not-a-key")
    with pytest.raises(SettingsError, match="CAP_WEBHOOK_SECRET_KEY: .*key 2 is not a Fernet"
                       ) as e:
        load_settings(_env_file=None)
    assert "sekrit" not in str(e.value) and "got hidden" in str(e.value)
    key = generate_key()
    monkeypatch.setenv("CAP_WEBHOOK_SECRET_KEY", key)
    assert load_settings(_env_file=None).webhook_secret_key.get_secret_value() == key
