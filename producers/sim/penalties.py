"""The penalty procedure's figures (税务行政处罚): the fine, the notice, lenient deciders.

The fine is the unpaid tax times a ratio inside the Guangdong tier for the recorded
circumstances (first offence corrected 0.5×; uncooperative 0.5–1×; serious 1–5×); hearing
rights are granted from 2,000 元 (individual) / 10,000 元 (entity) of proposed fine; unpaid
tax from 200,000 元 makes the case major (case review committee, legal review first).

Guarantees:
- Without an anomaly the ratio lies inside its tier and a discretion reason is recorded; a
  lenient decider (R18 outlier) stays at the bottom of the tier, never outside it.
- An injected `penalty_outside_tier` / `penalty_no_reason` changes only the ratio / the reason
  of the terms first drawn: the unpaid tax, hence `major`, stays.
"""

from __future__ import annotations

from typing import Any

from producers.sim.engine import Engine
from producers.sim.events import money

__all__ = [
    "COMMITTEE_THRESHOLD",
    "HEARING_THRESHOLD",
    "notice_data",
    "outlier_case",
    "penalty_terms",
]

HEARING_THRESHOLD = {"individual": 200_000, "entity": 1_000_000}  # in fen: 2,000 / 10,000 元
COMMITTEE_THRESHOLD = 20_000_000  # fen: 查补 ≥ 200,000 元 goes to the case review committee


def penalty_terms(
    eng: Engine,
    party_kind: str,
    kind: str | None,
    outlier: bool,
    base: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The case's unpaid tax, circumstances, ratio and fine. With `base` (the terms first
    drawn) an anomaly changes only what its kind names (the ratio or the reason): the unpaid
    tax, hence `major`, stays, so the steps chosen from it stay right."""
    rng = eng.rng
    if base is not None:
        unpaid, circumstances = base["unpaid"], base["data"]["circumstances"]
        ratio = base["ratio"]
    else:
        unpaid = int(300_000 * (2_000 ** rng.random()))  # fen: 3,000 元 … 6,000,000 元
        if party_kind == "individual":
            unpaid //= 20
        circumstances = rng.choices(("first_corrected", "uncooperative", "serious"), (3, 5, 2))[0]
        if circumstances == "first_corrected":
            ratio = 50
        elif circumstances == "uncooperative":
            ratio = 50 if outlier else rng.randint(50, 100)
        else:
            ratio = 100 if outlier else rng.choice((100, 100, 150, 200, 300, rng.randint(100, 500)))
    if kind == "penalty_outside_tier":
        ratio = {"first_corrected": 150, "uncooperative": 30, "serious": 60}[circumstances]
    reason = {
        "first_corrected": "corrected_before_decision",
        "uncooperative": "refused_to_cooperate",
        "serious": "repeated_concealment",
    }[circumstances]
    if kind == "penalty_no_reason":
        reason = ""
    fine = unpaid * ratio // 100
    return {
        "unpaid": unpaid,
        "ratio": ratio,
        "fine": fine,
        "data": {
            "fine": money(fine),
            "unpaid_tax": money(unpaid),
            "ratio": f"{ratio // 100}.{ratio % 100:02d}",
            "violation_code": "tax_evasion",
            "circumstances": circumstances,
            "discretion_reason": reason,
            "party_kind": party_kind,
            "benchmark": {"region": "4403", "version": 1},
            "major": unpaid >= COMMITTEE_THRESHOLD,
        },
    }


def notice_data(
    terms: dict[str, Any], hearing: bool, kind: str | None, party_kind: str, served_on: str
) -> dict[str, Any]:
    """The notice of the proposed penalty (告知): hearing rights told when the proposed fine
    reaches the threshold, unless `hearing_right_violation` is injected (R14)."""
    rights = hearing and kind != "hearing_right_violation"
    return {
        "proposed_fine": money(terms["fine"]),
        "hearing_rights": rights,
        "party_kind": party_kind,
        "served_on": served_on,
    }


def outlier_case(eng: Engine, official: str, stream: str) -> Any:
    """Count an outlier's lenient decisions; at the fifth (R18's minimum) label them."""

    def count(t: int) -> None:
        cases = eng.outliers[official]
        cases.append(stream)
        if len(cases) == 5 and eng.on_label is not None:
            eng.on_label(
                eng.label("discretion_outlier", {"official": official}, official, t, tuple(cases))
            )

    return count
