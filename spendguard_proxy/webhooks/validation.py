"""The body of ``POST /v1/webhooks`` (and ``spendguard webhook create``): one set of rules.

Imports pydantic and the server's body helpers: the CLI loads this only when it creates one.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.server.bodies import validate
from spendguard_proxy.settings import Settings
from spendguard_proxy.webhooks.events import EVENT_TYPES
from spendguard_proxy.webhooks.targets import MAX_URL_LENGTH, check_url


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: Annotated[StrictStr, Field(min_length=1, max_length=MAX_URL_LENGTH)]
    # Omitted or null: every event type, including ones added later.
    events: Annotated[list[StrictStr], Field(max_length=len(EVENT_TYPES) * 4)] | None = None


def parse_create(data: dict[str, Any], settings: Settings) -> WebhookCreate:
    """The checked body: a URL this mode may post to, known event types (sorted, unique)."""
    body = validate(WebhookCreate, data)
    check_url(body.url, settings)
    if body.events is None:
        return body
    unknown = sorted({e for e in body.events if e not in EVENT_TYPES})
    if unknown:
        raise InvalidRequest(f"Unknown event type(s) {', '.join(map(repr, unknown))}; known "
                             f"types: {', '.join(EVENT_TYPES)} (omit events for all)")
    if not body.events:
        raise InvalidRequest("events is empty: name at least one event type, or omit events "
                             f"for all of them ({', '.join(EVENT_TYPES)})")
    ordered = [e for e in EVENT_TYPES if e in set(body.events)]
    return body.model_copy(update={"events": ordered})
