"""The one exception tree of neikong.

    NeikongError
    ├── MalformedInput (ValueError)        bytes that are not a valid envelope; carries a ReasonCode
    ├── KeyFileError (OSError)             a key file is missing, unreadable or too widely readable
    ├── LedgerNotFound (FileNotFoundError) no ledger in the directory given
    ├── StoreError (RuntimeError)          the event store failed (database down, disk full, …)
    │   └── ConflictError                  a concurrent writer won a race (retry-able)
    ├── Backpressure (TimeoutError)        retry later: an outbox or queue is full
    ├── VerificationError (ValueError)     a check failed; carries the evidence (findings)
    └── PiiTampered (ValueError)           a stored personal value no longer opens its commitment
                                           (defined in ledger/pii.py)

Third-party exceptions (sqlite3, psycopg, eventsourcing, cryptography) are translated into these
at the module boundary that calls them; only the CLI prints and chooses exit codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ledger.findings import Finding
    from ledger.reasons import ReasonCode

__all__ = [
    "Backpressure",
    "ConflictError",
    "KeyFileError",
    "LedgerNotFound",
    "MalformedInput",
    "NeikongError",
    "StoreError",
    "VerificationError",
]


class NeikongError(Exception):
    """Root of every error neikong raises on purpose."""


class MalformedInput(NeikongError, ValueError):
    """Input that fails an append rule. `reason` is the machine-readable reason code."""

    def __init__(self, reason: ReasonCode, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class KeyFileError(NeikongError, OSError):
    """A private or public key file cannot be used."""


class LedgerNotFound(NeikongError, FileNotFoundError):
    """The ledger directory holds no initialised ledger."""


class StoreError(NeikongError, RuntimeError):
    """The event store failed for an operational reason (not because of the input)."""


class ConflictError(StoreError):
    """Another writer appended to the same stream first; re-read the head and retry."""


class Backpressure(NeikongError, TimeoutError):
    """The component is full; the caller MUST retry later and MUST NOT drop the event."""


class VerificationError(NeikongError, ValueError):
    """A check failed. `findings` holds the evidence (kind, position, stream, event id)."""

    def __init__(self, message: str, findings: Sequence[Finding] = ()) -> None:
        super().__init__(message)
        self.findings = list(findings)
