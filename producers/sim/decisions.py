"""Collective decisions (集体讨论决定): those major matters' decisions execute (三重一大), and
the record of any decision of a leadership team (`record_decision`, also for appointments).

Guarantees:
- Without an anomaly, a collective decision is recorded between the decision step and the step
  before it, by a quorum (> half) of the bureau's leadership team, naming the matter; the
  engine's `last_decision_ref` is its placeholder event id, for the `decide` step to refer to.
- An injected `major_matter_few_deciders` (R01) records one or two participants, or (30 %)
  no decision at all (`last_decision_ref` None).
"""

from __future__ import annotations

from producers.sim.engine import Engine, Plan, make_event
from producers.sim.timing import cst_date
from producers.sim.world import Bureau

__all__ = ["collective_decision", "record_decision"]


def collective_decision(  # noqa: PLR0917
    eng: Engine,
    plan: Plan,
    bureau: Bureau,
    stream: str,
    t: int,
    times: list[int],
    index: int,
    kind: str | None,
    matter_type: str,
) -> str | None:
    """The collective decision a major matter's decision executes (R01: too few or none)."""
    rng = eng.rng
    if kind == "major_matter_few_deciders" and rng.random() < 0.3:
        eng.last_decision_ref = None
        return None
    before = times[index - 1] if index > 0 else t - 3600
    held = eng.clock.at((eng.clock.office(before) + eng.clock.office(t)) // 2)
    leaders = bureau.leadership
    size = len(leaders)
    if kind == "major_matter_few_deciders":
        participants = [leaders[0].id, leaders[1].id][: rng.choice((1, 2))]
    else:
        participants = [o.id for o in leaders[: rng.randint(size // 2 + 1, size)]]
    ref = eng.placeholder()
    eng.last_decision_ref = ref
    enforcement = matter_type in ("penalty", "inspection")
    return record_decision(
        eng,
        plan,
        bureau,
        held,
        meeting="case_review_committee" if enforcement else "bureau_office",
        topic="major_enforcement" if enforcement else "major_matter",
        participants=participants,
        matters=[stream],
        ref_key=ref,
    )


def record_decision(
    eng: Engine,
    plan: Plan,
    bureau: Bureau,
    held: int,
    *,
    meeting: str,
    topic: str,
    participants: list[str],
    matters: list[str],
    ref_key: str | None = None,
) -> str:
    """Add a `decision.collective_recorded` of `bureau`'s leadership team, chaired by its head,
    held at `held`, to `plan`; return its stream (`decision/<office unit>/<year>-<serial>`)."""
    leaders = bureau.leadership
    dstream = eng.next_serial(f"decision/{bureau.office_unit}/", cst_date(held)[:4])
    plan.event(
        held,
        make_event(
            "4403-bangong",
            dstream,
            "decision.collective_recorded",
            eng.actor(leaders[0], "chair"),
            {"unit": bureau.office_unit},
            {
                "meeting": meeting,
                "topic": topic,
                "participants": participants,
                "leadership_size": len(leaders),
                "matters": matters,
                "outcome": "approved",
                "held_on": cst_date(held),
            },
            held,
            ref_key=ref_key,
        ),
    )
    return dstream
