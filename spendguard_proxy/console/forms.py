"""HTML form values in, the API's body models out, the API's messages back per field.

The console validates with the same pydantic models as ``/v1`` (server/bodies.py), so a bad
value gets the very message the API would answer with, shown next to its field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.server.bodies import validate

M = TypeVar("M", bound=BaseModel)
_INTEGER = re.compile(r"[+-]?\d{1,30}")
FORM_BYTES_MAX = 64 * 1024


@dataclass
class FormErrors:
    """The API's message for the whole form, and per field (keyed by the form field name)."""

    message: str | None = None
    fields: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.message is not None


def integer_or_text(raw: str) -> int | str:
    """A form sends text; digits become an integer, anything else stays text so the API model
    rejects it with its own message ("Input should be a valid integer")."""
    raw = raw.strip()
    return int(raw) if _INTEGER.fullmatch(raw) else raw


def text_list(raw: str) -> list[str] | None:
    items = [part.strip() for part in re.split(r"[,\n]", raw) if part.strip()]
    return items or None


def int_list(raw: str) -> list[int | str] | None:
    items = text_list(raw)
    return [integer_or_text(i) for i in items] if items else None


def collect(
    form: Mapping[str, str],
    *,
    integers: Iterable[str] = (),
    texts: Iterable[str] = (),
    int_lists: Iterable[str] = (),
    text_lists: Iterable[str] = (),
) -> dict[str, Any]:
    """Form fields to a JSON-like body. An empty field is null (for a policy field: clear it);
    a field the form did not send at all is left out (unchanged)."""
    body: dict[str, Any] = {}
    for name in integers:
        if name in form:
            body[name] = integer_or_text(form[name]) if form[name].strip() else None
    for name in texts:
        if name in form:
            body[name] = form[name].strip() or None
    for name in int_lists:
        if name in form:
            body[name] = int_list(form[name])
    for name in text_lists:
        if name in form:
            body[name] = text_list(form[name])
    return body


def check(model: type[M], body: dict[str, Any]) -> tuple[M | None, FormErrors]:
    """The validated body, or the API's message (whole and per field)."""
    try:
        return validate(model, body), FormErrors()
    except InvalidRequest as exc:
        return None, FormErrors(exc.message, _per_field(model, body))


def _per_field(model: type[BaseModel], body: dict[str, Any]) -> dict[str, str]:
    try:
        model.model_validate(body)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for err in exc.errors(include_url=False):
            loc = [str(p) for p in err["loc"]]
            name = loc[0] if loc else "body"
            fields.setdefault(name, f"{'.'.join(loc) or 'body'}: {err['msg']}")
        return fields
    return {}


def error_for_field(exc_message: str, field_names: Iterable[str]) -> str | None:
    """Which field an API message (from the ledger) is about, when it names one."""
    for name in field_names:
        if name in exc_message:
            return name
    return None
