"""One delivery's body and headers, by the Standard Webhooks spec.

Body: ``{"id", "type", "created_at", "data"}`` as compact JSON. Headers: ``webhook-id`` (the
event id, the same on every attempt and for every webhook, so receivers deduplicate by it),
``webhook-timestamp`` (Unix seconds of this attempt: receivers refuse stale ones, so a replayed
request expires) and ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``,
made by PyPI ``standardwebhooks`` (whose ``Webhook.verify`` is what receivers run).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

USER_AGENT = "SpendGuard-Webhooks/1"


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_body(event_id: str, event_type: str, created_at: datetime, data: Any) -> str:
    return json.dumps(
        {"id": event_id, "type": event_type, "created_at": iso(created_at), "data": data},
        separators=(",", ":"), ensure_ascii=False, sort_keys=False,
    )


def signed_headers(secret: str, event_id: str, body: str, now: datetime) -> dict[str, str]:
    now = now.astimezone(UTC)  # sign() takes the wall time as UTC
    signature = Webhook(secret).sign(msg_id=event_id, timestamp=now, data=body)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
