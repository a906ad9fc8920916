"""Errors of the detector (a branch of `ledger.errors.NeikongError`).

NeikongError
└── RuleError (ValueError)          a rule, override or fixture file is invalid
    └── RuleLintError               the rule set breaks the versioning discipline (lock.json)
└── DetectorStateError (RuntimeError)  the detector's snapshot cannot be read or written
"""

from __future__ import annotations

from ledger.errors import NeikongError

__all__ = ["DetectorStateError", "RuleError", "RuleLintError"]


class RuleError(NeikongError, ValueError):
    """A rule file (or an override, or a fixture) fails its schema or its meaning checks."""


class RuleLintError(RuleError):
    """A rule changed meaning without a version bump, or a locked rule file was deleted."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


class DetectorStateError(NeikongError, RuntimeError):
    """The snapshot store failed (unreadable database, a snapshot of another rule set …)."""
