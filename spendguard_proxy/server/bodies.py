"""Reading and validating request bodies, ids and query parameters.

Every failure is an InvalidRequest whose message says what to fix.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from spendguard_proxy.errors import InvalidRequest, RequestTooLarge, UnsupportedMediaType
from spendguard_proxy.server.json_vetting import vet
from spendguard_proxy.server.keys import SETTINGS

MAX_CENTS = 10**12
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AgentCreate(_Body):
    name: Name | None = None


class AgentRename(_Body):
    name: Name


Cents = Annotated[StrictInt, Field(ge=1, le=MAX_CENTS)]
TopUp = Annotated[StrictInt, Field(ge=0, le=MAX_CENTS)]
Period = Literal["none", "daily", "weekly", "monthly"]
# Shell-style globs on canonical model ids: letters, digits, . _ : / @ + - and the * ? wildcards.
ModelGlob = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:/@+*?-]{1,200}$")]
Thresholds = Annotated[
    list[Annotated[StrictInt, Field(ge=1, le=100)]], Field(min_length=1, max_length=10)
]
RateLimit = Annotated[StrictInt, Field(ge=1, le=10**9)]


class _Policy(_Body):
    """Policy fields: each optional, and an explicit null clears it (DESIGN §11)."""

    period: Period | None = None
    alert_thresholds_pct: Thresholds | None = None

    @field_validator("alert_thresholds_pct")
    @classmethod
    def _sorted_unique(cls, value: list[int] | None) -> list[int] | None:
        return sorted(set(value)) if value is not None else None

    def given(self, fields: tuple[str, ...]) -> dict[str, Any]:
        """The fields of ``fields`` the body sent, null included."""
        return {f: getattr(self, f) for f in fields if f in self.model_fields_set}


class BudgetSet(_Policy):
    hard_limit_cents: Cents
    topup_cents: TopUp | None = None
    concurrency: Literal["exclusive", "shared"] | None = None
    rpm_limit: RateLimit | None = None
    tpm_limit: RateLimit | None = None
    allowed_models: Annotated[list[ModelGlob], Field(min_length=1, max_length=100)] | None = None
    group_id: uuid.UUID | None = None


class GroupCreate(_Policy):
    name: Name
    hard_limit_cents: Cents
    topup_cents: TopUp | None = None


class GroupPatch(_Policy):
    name: Name | None = None
    hard_limit_cents: Cents | None = None
    topup_cents: TopUp | None = None

    @model_validator(mode="after")
    def _required_stay(self) -> GroupPatch:
        for field in ("name", "hard_limit_cents"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


M = TypeVar("M", bound=BaseModel)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    require_json(request)
    raw = await request.read()
    if not raw.strip():
        return {}
    limit = request.app[SETTINGS].max_json_values
    verdict, detail = await vet(raw, limit)
    if verdict == "too_many":
        raise RequestTooLarge(
            f"Request body has more than {limit} JSON values (object members and array "
            "elements); send fewer, or raise CAP_MAX_JSON_VALUES"
        )
    if verdict == "invalid":
        raise InvalidRequest(f"Request body is not valid JSON: {detail}")
    body = loads_strict(raw)
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    return body


def require_json(request: web.Request) -> None:
    """Only JSON bodies, checked before a body is read: a web page can post a form or
    text/plain cross-site to a sidecar on 127.0.0.1 without a CORS preflight, but not JSON."""
    if request.body_exists and not _is_json(request.content_type):
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {request.content_type!r}"
        )


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def loads_strict(raw: bytes) -> Any:
    """JSON as providers accept it: no NaN/Infinity, integers within 64 bits, finite numbers,
    valid Unicode. Anything else would reach the provider or the database as garbage (or a
    500 after the hold was placed), so it is a 400 here, before anything is reserved."""
    try:
        body = json.loads(raw, parse_constant=_no_constant, parse_int=_int64,
                          parse_float=_finite)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequest("Request body JSON is nested too deeply") from None
    if b"\\ud" in raw or b"\\uD" in raw:  # only then can a string hold a lone surrogate
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(
                "Request body has a lone UTF-16 surrogate (\\ud800-\\udfff) in a string; "
                "send valid Unicode (surrogates only in pairs)"
            ) from None
    return body


_INT64 = 2**63


def _no_constant(name: str) -> Any:
    raise InvalidRequest(f"Request body has {name}, which is not a JSON number; send a number")


def _int64(text: str) -> int:
    if len(text) > 20:  # also spares int() the work on a million-digit number
        raise InvalidRequest(f"Request body has an integer out of range ({text[:24]}…)")
    value = int(text)
    if not -_INT64 <= value < _INT64:
        raise InvalidRequest(f"Request body has an integer out of range ({text})")
    return value


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidRequest(f"Request body has a number out of range ({text[:24]})")
    return value


async def parse_body(request: web.Request, model: type[M]) -> M:
    return validate(model, await read_json_object(request))


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "Invalid request body: " + "; ".join(parts)


def parse_uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidRequest(f"{what} must be a UUID, got {value[:64]!r}") from None


def query_int(request: web.Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"Query parameter {name} must be an integer") from None
    if not lo <= value <= hi:
        raise InvalidRequest(f"Query parameter {name} must be between {lo} and {hi}")
    return value
