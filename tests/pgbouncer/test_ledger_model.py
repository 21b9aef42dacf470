"""tests/ledger/test_model.py through PgBouncer in transaction pooling mode: every reply equals
the in-memory reference ledger's, sequentially and under a concurrent workload."""

from tests.ledger.test_model import *
