"""A realistic synthetic run of power matters (权力事项), for the demo and the benchmarks.

Matter types and their real steps (DOMAIN.md §1.3), officials with roles in units, timestamps
in working hours (08:30–17:30 China Standard Time, Monday to Friday). With the same seed the
run is identical, event ids included.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.registry import KeyScope

__all__ = ["SYSTEMS", "SimEvent", "producer_scope", "simulate"]

CST = timedelta(hours=8)

# producer system -> (stream code, matter types it handles)
SYSTEMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "4403-ctais": ("zg", ("registration", "refund_applied", "refund_discovered")),
    "4403-fapiao": ("fp", ("invoice_book", "invoice_quota_change")),
    "4403-xuke": ("xk", ("max_invoice_amount", "licence")),
    "4403-jicha": ("jc", ("penalty",)),
}

# matter type -> steps (step name, role) between acceptance and conclusion; outcome; limit
FLOWS: dict[str, tuple[list[tuple[str, str]], str, int, str]] = {
    "registration": ([("review", "reviewer")], "registered", 0, "working"),
    "invoice_book": (
        [("review", "reviewer"), ("approve", "approver"), ("issue", "handler")],
        "issued",
        5,
        "working",
    ),
    "invoice_quota_change": (
        [("review", "reviewer"), ("site_check", "handler"), ("approve", "approver")],
        "granted",
        5,
        "working",
    ),
    "max_invoice_amount": (
        [
            ("review", "reviewer"),
            ("site_check", "handler"),
            ("approve", "approver"),
            ("decide", "approver"),
            ("license_document", "handler"),
        ],
        "granted",
        20,
        "working",
    ),
    "licence": (
        [
            ("review", "reviewer"),
            ("approve", "approver"),
            ("decide", "approver"),
            ("license_document", "handler"),
        ],
        "granted",
        20,
        "working",
    ),
    "refund_applied": (
        [("refund_check", "reviewer"), ("approve", "approver"), ("refund_pay", "handler")],
        "refunded",
        30,
        "natural",
    ),
    "refund_discovered": (
        [("refund_check", "reviewer"), ("approve", "approver"), ("refund_pay", "handler")],
        "refunded",
        10,
        "natural",
    ),
    "penalty": (
        [
            ("investigation", "investigator"),
            ("case_review", "case_reviewer"),
            ("penalty_notice", "handler"),
            ("hearing_requested", "handler"),
            ("hearing_held", "case_reviewer"),
            ("penalty_decided", "approver"),
            ("decision_served", "handler"),
            ("penalty_executed", "handler"),
        ],
        "penalised",
        90,
        "natural",
    ),
}

ROLES = ("handler", "reviewer", "approver", "investigator", "case_reviewer")


@dataclass(frozen=True)
class SimEvent:
    system: str
    stream: str
    type: str
    actor: dict[str, str]
    subject: dict[str, str]
    data: dict[str, Any]
    occurred_at: str


def producer_scope(system: str) -> KeyScope:
    return KeyScope(
        system, (f"matter/{system.split('-')[0]}-{SYSTEMS[system][0]}/",), ("matter.*",)
    )


def _working(moment: datetime) -> datetime:
    """Move `moment` (CST) forward into working hours."""
    while True:
        if moment.weekday() >= 5:
            moment = (moment + timedelta(days=7 - moment.weekday())).replace(hour=8, minute=30)
            continue
        start = moment.replace(hour=8, minute=30, second=0, microsecond=0)
        end = moment.replace(hour=17, minute=30, second=0, microsecond=0)
        if moment < start:
            return start + timedelta(seconds=moment.second)
        if moment >= end:
            moment = start + timedelta(days=1)
            continue
        return moment


class _Officials:
    def __init__(self, rng: random.Random, units: int = 6, per_role: int = 4) -> None:
        self.by_unit: list[tuple[str, dict[str, list[str]]]] = []
        n = 0
        for u in range(1, units + 1):
            unit = f"4403-{u:02d}"
            roles: dict[str, list[str]] = {}
            for role in ROLES:
                roles[role] = []
                for _ in range(per_role):
                    n += 1
                    roles[role].append(f"4403-{n:05d}")
            self.by_unit.append((unit, roles))
        self.rng = rng

    def pick_unit(self) -> int:
        return self.rng.randrange(len(self.by_unit))

    def actor(self, unit_index: int, role: str) -> dict[str, str]:
        unit, roles = self.by_unit[unit_index]
        return {"official": self.rng.choice(roles[role]), "role": role, "unit": unit}


def simulate(seed: int, events: int, start: datetime | None = None) -> Iterator[SimEvent]:
    """Yield `events` events of interleaved matters in time order (memory: active matters)."""
    rng = random.Random(seed)  # noqa: S311 - a simulation, not secrets
    officials = _Officials(rng)
    clock = start or datetime(2026, 11, 2, 9, 0, tzinfo=UTC) + CST  # a Monday, CST
    counters: dict[str, int] = {}
    heap: list[tuple[datetime, int, _Matter, int]] = []
    serial = 0
    emitted = 0
    systems = list(SYSTEMS)
    while emitted < events:
        # About one matter starts per five or six steps, so matters overlap as in an office.
        if not heap or (len(heap) < 5000 and rng.random() < 0.18):
            clock = _working(clock + timedelta(seconds=rng.randint(5, 90)))
            system = rng.choice(systems)
            plan = _plan_matter(rng, officials, system, counters, clock)
            serial += 1
            heapq.heappush(heap, (clock, serial, plan, 0))
            continue
        when, sid, plan, index = heapq.heappop(heap)
        clock = max(clock, when)
        type_, role, data = plan.steps[index]
        stamp = (when - CST).replace(tzinfo=UTC)
        yield SimEvent(
            plan.system,
            plan.stream,
            type_,
            officials.actor(plan.unit, role),
            plan.subject,
            data,
            stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        emitted += 1
        if index + 1 < len(plan.steps):
            gap = timedelta(minutes=rng.randint(10, 60 * 24 * 2))
            heapq.heappush(heap, (_working(when + gap), sid, plan, index + 1))


@dataclass(frozen=True)
class _Matter:
    system: str
    stream: str
    unit: int
    subject: dict[str, str]
    steps: list[tuple[str, str, dict[str, Any]]]  # (event type, role, data)


def _plan_matter(
    rng: random.Random,
    officials: _Officials,
    system: str,
    counters: dict[str, int],
    clock: datetime,
) -> _Matter:
    code, types = SYSTEMS[system]
    matter_type = rng.choice(types)
    counters[system] = counters.get(system, 0) + 1
    stream = f"matter/{system.split('-')[0]}-{code}/{clock.year}-{counters[system]:06d}"
    unit = officials.pick_unit()
    subject = {"taxpayer": f"9144030{rng.randrange(10**10):010d}X"}
    steps, outcome, days, calendar = FLOWS[matter_type]
    plan: list[tuple[str, str, dict[str, Any]]] = []
    matter = _Matter(system, stream, unit, subject, plan)

    def add(type_: str, role: str, data: dict[str, Any]) -> None:
        plan.append((type_, role, data))

    accepted: dict[str, Any] = {
        "matter_type": matter_type,
        "channel": rng.choice(["hall", "online", "online", "mail"]),
        "time_limit": {"days": days, "calendar": calendar},
    }
    if matter_type.startswith("refund") or matter_type == "penalty":
        accepted["amount"] = f"{rng.randint(200, 500000)}.{rng.randint(0, 99):02d}"
    add("matter.accepted", "handler", accepted)
    if matter_type == "penalty" and rng.random() < 0.4:
        steps = [s for s in steps if not s[0].startswith("hearing")]
    withdraw_at = len(steps) // 2 if rng.random() < 0.04 else None
    for i, (step, role) in enumerate(steps):
        if withdraw_at is not None and i == withdraw_at:
            add(
                "matter.withdrawn",
                "approver",
                {
                    "reason": "applicant withdrew the application",
                    "approved_by": officials.actor(unit, "approver")["official"],
                    "final_seq": len(plan) + 1,
                },
            )
            return matter
        if days >= 20 and i == 2 and rng.random() < 0.1:
            add(
                "matter.extension_approved",
                "approver",
                {"days": 10, "calendar": calendar, "reason": "complex case, head approved"},
            )
        add("matter.step_completed", role, {"step": step, "outcome": "passed"})
    add("matter.concluded", "handler", {"outcome": outcome, "final_seq": len(plan) + 1})
    return matter
