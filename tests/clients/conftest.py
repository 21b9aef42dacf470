"""The proxy with the fake provider behind it (the relay suite's fixtures), for the clients."""

from tests.relay.conftest import budgeted_agent, relay_settings, relay_url  # noqa: F401
