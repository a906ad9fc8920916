"""Changes to a running matter: an extension of its time limit, a withdrawal, an amended fine.

Guarantees:
- Each change is approved by a leader of the bureau (`approved_by`), unless the anomaly that
  injects it says otherwise: `withdrawn_without_approval` / `reduced_without_approval` (R17)
  record `approved_by: None`. Extensions are approved by the matter's approver.
- An extension is recorded before the reminder point of the original limit (so the deadline
  rules move at every level) and after acceptance.
- A reduced fine is amended between the decision and the next step, to 40–80 % of the fine.
"""

from __future__ import annotations

from typing import Any

from producers.sim.engine import Engine, Plan, make_event
from producers.sim.events import money
from producers.sim.timing import utc_stamp
from producers.sim.world import Bureau, Official

__all__ = ["amended_fine", "insert_extension", "withdrawal", "withdrawn_at"]


def withdrawn_at(eng: Engine, kind: str | None, steps: int) -> int | None:
    """The index of the step a matter of `steps` steps is withdrawn at, or None (2 % of
    matters without an anomaly; every `withdrawn_without_approval`)."""
    if kind == "withdrawn_without_approval" or (kind is None and eng.rng.random() < 0.02):
        return max(1, steps // 2)
    return None


def withdrawal(eng: Engine, bureau: Bureau, kind: str | None, penalty: bool) -> dict[str, Any]:
    """The data of `matter.withdrawn` (its `final_seq` set when the plan is complete)."""
    approved_by = (
        None if kind == "withdrawn_without_approval" else eng.rng.choice(bureau.leadership[:4]).id
    )
    return {
        "reason": "party_corrected" if penalty else "applicant_withdrew",
        "approved_by": approved_by,
        "final_seq": 1,
    }


def amended_fine(
    eng: Engine, bureau: Bureau, kind: str | None, *, fine: int, decided: int, following: int
) -> tuple[int, dict[str, Any]] | None:
    """The time and data of a `matter.amended` reducing a `fine` decided at `decided`, before
    the step at `following`, or None: 5 % of penalties without an anomaly, and every
    `reduced_without_approval`."""
    rng = eng.rng
    if not (kind == "reduced_without_approval" or (kind is None and rng.random() < 0.05)):
        return None
    after_fen = fine * rng.randint(40, 80) // 100
    t_amend = eng.clock.at((eng.clock.office(decided) + eng.clock.office(following)) // 2)
    return t_amend, {
        "field": "fine",
        "before": money(fine),
        "after": money(after_fen),
        "reason": "administrative_review",
        "approved_by": None if kind else rng.choice(bureau.leadership[:4]).id,
    }


def insert_extension(  # noqa: PLR0917
    eng: Engine,
    plan: Plan,
    system: str,
    stream: str,
    subject: dict[str, str],
    approver: Official,
    days: int,
    calendar: str,
    due: int,
    due_ext: int,
) -> None:
    """An approved extension, before `due` (the reminder point of the original limit, so the
    deadline rules move every level) and before conclusion."""
    matter = [it for it in plan.items if it[1] == 0 and it[2].stream == stream]
    last_before = max((it[0] for it in matter[:-1] if it[0] < due), default=matter[0][0])
    t = min(eng.clock.at(eng.clock.office(due) - 1800), eng.office_at(last_before, 600))
    t = max(t, eng.office_at(matter[0][0], 60))
    plan.event(
        t,
        make_event(
            system,
            stream,
            "matter.extension_approved",
            eng.actor(approver, "approver"),
            subject,
            {
                "days": days,
                "calendar": calendar,
                "reason": "complex_case_head_approved",
                "new_due_at": utc_stamp(due_ext),
            },
            t,
        ),
    )
