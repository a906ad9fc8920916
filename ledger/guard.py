"""Blocking guards (事中阻断): the protocol a tax system asks before it takes a step.

The producer SDK (`producers.producer.Producer.check`) and the tax systems that embed it may
import only `ledger`, so the contract lives here; the implementation over the rule set is
`alerts.guards.BlockingGuard`.

Guarantees an implementation MUST give:

- `check` is a pure function of the ledger's state (the events already appended) and the
  active rule set: the same log and the same proposed step give the same decision, so a
  decision can be replayed and explained after the fact.
- `check` MUST NOT append the proposed event. A denial MAY be recorded in the ledger (a
  signed `command.rejected` event); an allowed step records nothing.
- A denial names every blocking rule that refused the step (`rule_ids`, sorted) with one
  human-readable reason per rule (`reasons`, same order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["ALLOW", "CommandGuard", "GuardDecision"]


@dataclass(frozen=True)
class GuardDecision:
    """The answer to "may this step be taken now?"; `allowed` is False iff `rule_ids` is set."""

    allowed: bool
    rule_ids: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.allowed == bool(self.rule_ids) or len(self.rule_ids) != len(self.reasons):
            raise ValueError("a denial names its rules and one reason per rule; an allow neither")

    def __bool__(self) -> bool:
        return self.allowed

    def as_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "rule_ids": list(self.rule_ids),
            "reasons": list(self.reasons),
        }


ALLOW = GuardDecision(True)


@runtime_checkable
class CommandGuard(Protocol):
    """Decides whether a proposed event (a step of a matter) may be emitted."""

    def check(
        self,
        stream: str,
        type: str,
        *,
        actor: Mapping[str, str],
        data: Mapping[str, Any],
        subject: Mapping[str, str] | None,
    ) -> GuardDecision:
        """Allow, or deny with the blocking rules that refuse the step (see module docstring)."""
        ...
