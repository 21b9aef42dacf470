"""Configuration from the environment (``CAP_`` prefix, plus the providers' own variable names).

Built once at the entry point and passed down; no other module reads the environment.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from spendguard_proxy.providers.fields import parse_forwarded


class Mode(str, Enum):
    sidecar = "sidecar"
    hosted = "hosted"


class PricingSource(str, Enum):
    bundled = "bundled"
    file = "file"
    remote = "remote"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("spendguard", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAP_", extra="ignore", frozen=True)

    mode: Mode = Mode.sidecar
    database_url: str | None = None
    # A transaction-pooling PgBouncer in front of database_url's database: the server's pools
    # connect there (no statement cache); migrations, their advisory lock and the CLI stay on
    # database_url.
    database_pooler_url: str | None = None
    data_dir: Path = Field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    base_url: str | None = None
    api_key: str | None = None

    pricing_source: PricingSource = PricingSource.bundled
    pricing_url: str | None = None
    pricing_file: Path | None = None
    pricing_verify_signature: bool = True
    pricing_signing_public_key: str | None = None
    pricing_signing_private_key: str | None = None
    pricing_schema_version: Literal["1", "2"] = "2"
    price_table_refresh_seconds: int = Field(300, ge=1)
    pricing_expiry_skew_seconds: int = Field(30, ge=0)

    lock_ttl_seconds: int = Field(300, ge=3, le=86_400)
    sweep_interval_seconds: float = Field(30.0, gt=0)
    default_max_tokens: int = Field(4096, ge=1)
    # Input the proxy cannot see (file ids, stored conversations, search results) is reserved
    # as this many extra input tokens.
    unseen_input_tokens: int = Field(128_000, ge=0)
    # When the bound-based hold does not fit, ask Anthropic count_tokens / Gemini countTokens
    # (free) for the exact input and reserve by it instead of refusing (server/exact_count.py).
    exact_input_count: bool = True
    # Hosted mode: /metrics answers only to `Authorization: Bearer <token>` (off when unset).
    metrics_token: str | None = None
    # One JSON line per request on the `spendguard.access` logger (stderr unless the embedding
    # program gives that logger handlers of its own); server/telemetry.py.
    access_log: bool = True
    # OpenTelemetry traces (OTLP/HTTP protobuf to <endpoint>/v1/traces) when set.
    otel_exporter_otlp_endpoint: str | None = Field(
        None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    otel_service_name: str = Field("spendguard-proxy", validation_alias="OTEL_SERVICE_NAME")
    capture_content: bool = False
    # Comma-separated adapter:field[=value] entries forwarded although SpendGuard cannot bound
    # their cost (breaks the budget guarantee for calls that use them).
    forward_unpriced_fields: str = ""
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    # Object members and array elements a request body may hold: parsing costs per value,
    # and bodies that may exceed it are counted in a separate process first (json_vetting.py).
    max_json_values: int = Field(200_000, ge=1000)
    db_pool_min_size: int = Field(2, ge=1)
    db_pool_max_size: int = Field(20, ge=1)
    db_command_timeout_s: float = Field(30.0, gt=0)
    key_cache_ttl_s: float = Field(2.0, ge=0, le=10)
    # Slow clients (server/runner.py): a request's headers and body must arrive within
    # client_body_timeout_s of its start, plus 1 s per client_body_min_rate_bytes_per_s received.
    client_body_timeout_s: float = Field(30.0, gt=0)
    client_body_min_rate_bytes_per_s: int = Field(8192, ge=1)
    client_keepalive_timeout_s: float = Field(75.0, gt=0)
    # Open connections per process; more are answered 503 and closed (keep it well below the
    # file descriptor limit: each relayed call also holds an upstream connection).
    client_max_connections: int = Field(900, ge=1)
    # On SIGTERM/SIGINT a server stops accepting, then gives the requests and streams in
    # flight this long to finish before cancelling them (their holds are settled either way).
    shutdown_grace_seconds: float = Field(30.0, ge=0)

    # Operator console (/ui, console/): host names (host or host:port, comma-separated) the
    # console answers to besides the loopback names; a request naming any other Host is refused
    # (DNS rebinding), and a form post must come from the page's own origin.
    console_allowed_hosts: str = ""
    console_session_ttl_s: int = Field(8 * 3600, ge=60, le=30 * 86_400)
    # Behind a TLS-terminating proxy: treat console requests as HTTPS (Secure __Host- cookies,
    # https:// origins). Without it, only requests that arrived over TLS are.
    console_https: bool = False
    # How often each process looks for new ledger rows to push to open console pages.
    console_poll_interval_s: float = Field(1.0, ge=0.1, le=60)

    # Webhooks (spendguard_proxy/webhooks). Signing secrets are stored encrypted with this
    # Fernet key (comma-separated keys rotate: the first encrypts, any decrypts). Hosted mode
    # needs it to create webhooks; a sidecar without it keeps a generated key in the data dir.
    webhook_secret_key: SecretStr | None = None
    # Hosted mode accepts only https:// targets unless this is set (a sidecar takes http too).
    webhook_allow_http: bool = False
    # This process runs a delivery worker (any number of replicas may: rows are claimed with
    # FOR UPDATE SKIP LOCKED).
    webhook_delivery: bool = True
    webhook_timeout_s: float = Field(10.0, gt=0, le=60)
    # Retry n waits min(max, base * 2^(n-1)), jittered to between half and all of it, until
    # webhook_max_age_s after the event was created; then the delivery is failed.
    webhook_retry_base_s: float = Field(5.0, gt=0)
    webhook_retry_max_s: float = Field(3600.0, gt=0)
    webhook_max_age_s: float = Field(86_400.0, gt=0)
    webhook_poll_interval_s: float = Field(1.0, gt=0, le=60)
    webhook_max_in_flight: int = Field(16, ge=1, le=1000)
    webhook_max_per_tenant: int = Field(20, ge=1, le=1000)

    upstream_connect_timeout_s: float = Field(10.0, gt=0)
    upstream_first_byte_timeout_s: float = Field(120.0, gt=0)
    upstream_idle_timeout_s: float = Field(120.0, gt=0)
    upstream_max_connections: int = Field(1000, ge=1)

    openai_api_key: str | None = Field(None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str = Field("https://api.openai.com/v1", validation_alias="OPENAI_BASE_URL")
    xai_api_key: str | None = Field(
        None, validation_alias=AliasChoices("XAI_API_KEY", "GROK_API_KEY")
    )
    xai_base_url: str = Field("https://api.x.ai/v1", validation_alias="XAI_BASE_URL")
    anthropic_api_key: str | None = Field(None, validation_alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str = Field(
        "https://api.anthropic.com", validation_alias="ANTHROPIC_BASE_URL"
    )
    gemini_api_key: str | None = Field(None, validation_alias="GEMINI_API_KEY")
    gemini_base_url: str = Field(
        "https://generativelanguage.googleapis.com", validation_alias="GEMINI_BASE_URL"
    )

    @field_validator("openai_base_url", "xai_base_url", "anthropic_base_url", "gemini_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("otel_exporter_otlp_endpoint")
    @classmethod
    def _check_otlp_endpoint(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL (OTLP/HTTP, e.g. port 4318)")
        return value

    @field_validator("database_pooler_url")
    @classmethod
    def _pooler_needs_direct_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and not info.data.get("database_url"):
            raise ValueError("needs CAP_DATABASE_URL too: the direct connection that migrations"
                             " and their advisory lock use")
        return value

    @field_validator("webhook_secret_key")
    @classmethod
    def _check_webhook_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        from spendguard_proxy.webhooks.secret_box import check_keys

        check_keys(value.get_secret_value())
        return value

    @field_validator("forward_unpriced_fields")
    @classmethod
    def _check_forwarded(cls, value: str) -> str:
        parse_forwarded(value.split(","))
        return value

    @property
    def forwarded_fields(self) -> frozenset[str]:
        return parse_forwarded(self.forward_unpriced_fields.split(","))

    @property
    def lock_ttl_microseconds(self) -> int:
        return self.lock_ttl_seconds * 1_000_000


class SettingsError(Exception):
    """A setting has a bad value; the message names the environment variable."""


def _env_name(field: str) -> str:
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"CAP_{field.upper()}"


# Their values never appear in an error message.
_SECRET_FIELDS = {name for name, info in Settings.model_fields.items()
                  if "SecretStr" in str(info.annotation)}


def load_settings(**overrides) -> Settings:
    """Read the environment; a bad value raises SettingsError naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            got = "hidden" if field in _SECRET_FIELDS else repr(err.get("input"))
            problems.append(f"{_env_name(field)}: {err['msg']} (got {got})")
        raise SettingsError("Invalid configuration: " + "; ".join(problems)) from None
