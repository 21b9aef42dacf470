"""One exception hierarchy for every error SpendGuard itself answers with.

Each class knows its HTTP status and its type string; the server turns any of them into
DESIGN §3's body ``{"detail": msg, "error": {"message", "type", "code"}}`` in one place, and
the CLI prints the message as one line on stderr.
"""

from __future__ import annotations

_MICROCENTS_PER_CENT = 1_000_000


def format_cents(microcents: int) -> str:
    """Exact money for messages, from integer microcents: 960000 -> "0.96 ¢"."""
    sign = "-" if microcents < 0 else ""
    whole, frac = divmod(abs(microcents), _MICROCENTS_PER_CENT)
    return f"{sign}{whole}" + (f".{frac:06d}".rstrip("0") if frac else "") + " ¢"


class SpendGuardError(Exception):
    status = 500
    type = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        return {}

    def body(self) -> dict:
        return {
            "detail": self.message,
            "error": {"message": self.message, "type": self.type, "code": self.type},
        }


class InvalidRequest(SpendGuardError):
    status = 400
    type = "invalid_request"


class UnsupportedMediaType(InvalidRequest):
    status = 415


class UnknownModel(InvalidRequest):
    def __init__(self, provider: str, model: str) -> None:
        super().__init__(f"Unknown model for pricing: {provider}:{model}")


class UnpricedOption(InvalidRequest):
    """A request option whose price the table does not know: refused, never priced as
    standard (the provider would bill more than the hold)."""

    def __init__(self, provider: str, model: str, option: str, value: str) -> None:
        super().__init__(
            f"{option}={value!r} has no price for {provider}:{model} in the pricing table, so "
            f"SpendGuard cannot bound its cost; leave {option} out or choose a priced value"
        )
        self.option = option
        self.value = value


class AuthenticationError(SpendGuardError):
    status = 401
    type = "authentication_error"


class PermissionDenied(SpendGuardError):
    status = 403
    type = "permission_denied"


class NotFound(SpendGuardError):
    status = 404
    type = "not_found"


class InsufficientBudget(SpendGuardError):
    status = 402
    type = "insufficient_budget"


class BudgetLocked(SpendGuardError):
    status = 409
    type = "budget_locked"

    def __init__(self, message: str = "Agent budget is locked by an in-flight run") -> None:
        super().__init__(message)

    def headers(self) -> dict[str, str]:
        # The official openai and anthropic SDKs retry 409 twice by default (~1.4 s); a locked
        # budget stays locked for the other run's whole call, so tell them not to (both obey
        # `x-should-retry: false`, checked before their status rules).
        return {"x-should-retry": "false"}


class ModelNotAllowed(PermissionDenied):
    type = "model_not_allowed"


class RateLimited(SpendGuardError):
    """The agent's rpm_limit or tpm_limit; ``retry_after_s`` None: this call can never fit."""

    status = 429
    type = "rate_limited"

    def __init__(self, message: str, retry_after_s: int | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {"x-should-retry": "false"}
        return {"retry-after": str(self.retry_after_s)}


class RequestTooLarge(SpendGuardError):
    status = 413
    type = "request_too_large"


class ProviderUnavailable(SpendGuardError):
    status = 502
    type = "provider_unavailable"


class DatabaseUnavailable(SpendGuardError):
    status = 503
    type = "database_unavailable"


class ProviderTimeout(SpendGuardError):
    status = 504
    type = "provider_timeout"


class PricingError(SpendGuardError):
    """A pricing document failed a check; at start-up it stops the process."""

    status = 503
    type = "pricing_unavailable"
