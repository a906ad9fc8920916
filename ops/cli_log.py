"""CLI commands registered on `ops.cli.main` (imported at the end of ops/cli.py)."""

from __future__ import annotations
