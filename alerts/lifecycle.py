"""The lifecycle of a warning as ledger events (DESIGN.md "Detector").

    raised → acknowledged → rectification_ordered → rectified → closed   (or escalated)

`warning.raised` and `warning.escalated` come from the engine; the steps after them are taken by
people (the responsible unit, a supervisor) and appended here to the warning's own stream,
signed with the ledger's detector service key (scope `warning/`), with the person as `actor`.

Guarantees: every step MUST name the raised warning (`warning_ref`) and pass its JSON Schema
(`ledger/schemas/warning.<step>.json`) or is refused with the ledger's error; `closed` ends the
open warning of (rule, key), so a later trigger raises a new warning instead of escalating.
"""

from __future__ import annotations

from typing import Any

from alerts.errors import RuleError
from ledger.ledger import AppendedEvent, Ledger

__all__ = ["LIFECYCLE_STEPS", "NEXT_STEPS", "append_lifecycle", "check_transition"]

LIFECYCLE_STEPS = ("acknowledged", "rectification_ordered", "rectified", "closed")

# State of a warning (projections.warnings) -> the steps a person may take next. A new
# rectification order replaces the deadline in force; `closed` is final (a later trigger
# raises a new warning).
NEXT_STEPS: dict[str, tuple[str, ...]] = {
    "open": ("acknowledged", "rectification_ordered", "closed"),
    "acknowledged": ("rectification_ordered", "closed"),
    "rectification_ordered": ("rectification_ordered", "rectified", "closed"),
    "rectified": ("closed",),
    "closed": (),
}


def check_transition(state: str, step: str, *, reason: str | None = None) -> None:
    """Raise `RuleError` unless `step` may follow `state` (closing as `rectified` MUST follow
    a rectification)."""
    allowed = NEXT_STEPS.get(state)
    if allowed is None:
        raise RuleError(f"unknown warning state {state!r}")
    if step not in allowed:
        then = ", ".join(allowed) or "nothing (it is final)"
        raise RuleError(f"a warning in state {state} cannot be {step}; allowed next: {then}")
    if step == "closed" and reason == "rectified" and state != "rectified":
        raise RuleError(f"a warning in state {state} cannot be closed as rectified before it is")


def append_lifecycle(
    ledger: Ledger,
    warning_stream: str,
    step: str,
    *,
    actor: dict[str, str],
    data: dict[str, Any],
    occurred_at: str | None = None,
    subject: dict[str, str] | None = None,
) -> AppendedEvent:
    """Append `warning.<step>` to `warning_stream`; durable when this returns.

    `subject` (`{"official": id}`, the official the warning is attributed to) routes the step
    to that official's integrity file."""
    if step not in LIFECYCLE_STEPS:
        raise RuleError(f"unknown warning lifecycle step {step!r}; one of {LIFECYCLE_STEPS}")
    if not warning_stream.startswith("warning/"):
        raise RuleError(f"{warning_stream!r} is not a warning stream")
    return ledger.append_as(
        "detector",
        warning_stream,
        f"warning.{step}",
        actor=actor,
        data=data,
        occurred_at=occurred_at,
        subject=subject,
    )
