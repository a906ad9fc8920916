"""Configuration: the only place that reads environment variables."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_ledger_dir", "test_pg_dsn"]


def default_ledger_dir() -> Path:
    return Path(os.environ.get("NEIKONG_LEDGER", "./neikong-data"))


def test_pg_dsn() -> str | None:
    return os.environ.get("NEIKONG_TEST_PG_DSN") or None
