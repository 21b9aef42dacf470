"""A bad setting stops start-up with the variable's name."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from spendguard_proxy.settings import Mode, SettingsError, load_settings


@pytest.mark.parametrize(("env", "name"), [
    ({"CAP_PORT": "eighty"}, "CAP_PORT"),
    ({"CAP_MODE": "cloud"}, "CAP_MODE"),
    ({"CAP_LOCK_TTL_SECONDS": "0"}, "CAP_LOCK_TTL_SECONDS"),
    ({"CAP_PRICING_SOURCE": "ftp"}, "CAP_PRICING_SOURCE"),
    ({"CAP_CAPTURE_CONTENT": "perhaps"}, "CAP_CAPTURE_CONTENT"),
])
def test_bad_values_name_the_variable(monkeypatch, env, name):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()


def test_provider_variables_use_the_providers_names(monkeypatch):
    monkeypatch.setenv("GROK_API_KEY", "g")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:1/")
    monkeypatch.setenv("CAP_MODE", "hosted")
    settings = load_settings()
    assert settings.xai_api_key == "g" and settings.mode is Mode.hosted
    assert settings.anthropic_base_url == "http://127.0.0.1:1"


def test_serve_with_a_bad_setting_exits_with_one_line():
    env = {**os.environ, "CAP_PORT": "eighty"}
    result = subprocess.run([sys.executable, "-m", "spendguard_proxy.cli.main", "serve"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert "CAP_PORT" in result.stderr and "Traceback" not in result.stderr
