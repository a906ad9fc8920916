"""Shared fixtures: ledgers on every store backend, Hypothesis profiles."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pg_dsn() -> str | None:
    return os.environ.get("NEIKONG_TEST_PG_DSN") or None


def require_pg() -> str:
    dsn = pg_dsn()
    if dsn is None:
        if os.environ.get("CI"):
            pytest.fail("CI must provide PostgreSQL (NEIKONG_TEST_PG_DSN); see ops/postgres/")
        pytest.skip("no PostgreSQL: set NEIKONG_TEST_PG_DSN (ops/postgres/start.sh prints it)")
    return dsn


def _fresh_pg_schema_url(dsn: str) -> Iterator[str]:
    """A fresh, empty database schema for one test: drop the ledger's tables first."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        ]
        for t in tables:
            conn.execute(f'DROP TABLE IF EXISTS "{t}" CASCADE')
        conn.execute("DROP TYPE IF EXISTS stored_event_uuid CASCADE")
    yield dsn


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The event-store URL for each backend the contract suite runs against."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / f'contract-{uuid.uuid4().hex[:8]}.db'}"
    else:
        yield from _fresh_pg_schema_url(require_pg())
