"""Signed webhook alerts (DESIGN §11): an outbox in PostgreSQL, delivered at least once.

The ledger functions write ``webhook_events`` and one ``webhook_deliveries`` row per subscribed
webhook in the transaction of the change that caused them (``sg_emit``). This package does the
rest, one job per module:

- ``events``: the event types a webhook may subscribe to.
- ``secret_box``: signing secrets (``whsec_…``), encrypted at rest with an operator key.
- ``targets``: which URLs a webhook may name, and which addresses a delivery may connect to.
- ``store``: create, list and delete webhooks; list deliveries with their attempts.
- ``signing``: the Standard Webhooks body and headers of one delivery.
- ``worker``: claims due deliveries (``FOR UPDATE SKIP LOCKED``), POSTs them, records attempts.
- ``background``: the worker as an aiohttp ``cleanup_ctx`` (``webhook_delivery``).
"""
