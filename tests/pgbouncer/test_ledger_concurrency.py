"""tests/ledger/test_concurrency.py through PgBouncer in transaction pooling mode: many tasks,
one agent, the budget running out — every statement on whichever server connection the pooler
picks. Zero overspend and the ledger invariants, as on a direct connection."""

from tests.ledger.test_concurrency import *
