"""Named facts for the rules of grades 1–2 (administrative decisions, tax enforcement: R01–R12).

A fact is a documented pure function of one event view and the rule's parameters (every
threshold comes from `params`, never a literal); rules name facts in `{fact: NAME}`. Facts of
rules with a `match.history` also read `view["history"]`: the earlier events the rule keeps for
the key (oldest first), so a judgement about a whole matter or a taxpayer's past months stays a
pure function of what the log has shown the rule.

Guarantees:

- Every fact MUST return False, never raise, on events whose fields are missing or malformed
  (a rule then simply does not fire on them).
- Money and ratios are compared as exact `Decimal`s, never floats.
- Flows are the packaged `ledger.flows` versions; a matter is judged by the flow it pinned on
  acceptance (`data.flow`), else by the latest flow of its `matter_type`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

from alerts.view import View, as_decimal, field
from ledger.flows import PowerFlow, load_flow_versions
from ledger.workdays import WorkCalendar, default_calendar
from projections.conformance import check_matter, resolve_flow

__all__ = ["ENFORCEMENT_FACTS", "reset_memos"]


@cache
def _flows() -> dict[tuple[str, int], PowerFlow]:
    return load_flow_versions()


@cache
def _calendar() -> WorkCalendar:
    return default_calendar()


def _history(view: View) -> list[Mapping[str, Any]]:
    kept = view.get("history")
    if not isinstance(kept, list):
        return []
    return [h for h in kept if isinstance(h, (dict, Mapping))]  # dict: fast


def _of_type(events: Iterable[Mapping[str, Any]], *types: str) -> list[Mapping[str, Any]]:
    return [e for e in events if e.get("type") in types]


def _data(event: Mapping[str, Any]) -> Mapping[str, Any]:
    data = event.get("data")
    return data if isinstance(data, (dict, Mapping)) else {}


_decimal_of_text = lru_cache(maxsize=1024)(Decimal)  # parameters are few; Decimal is immutable


def _param_decimal(value: Any) -> Decimal:
    """`Decimal(str(value))` of a parameter (raises as it does; cached)."""
    return _decimal_of_text(str(value))


def _official(event: Mapping[str, Any]) -> str | None:
    actor = event.get("actor")
    official = (
        actor.get("official") if actor.__class__ is dict or isinstance(actor, Mapping) else None
    )
    return official if isinstance(official, str) else None


_FLOWS_OF: dict[tuple[Any, ...], PowerFlow | None] = {}  # acceptance's pin -> its flow


def _flow_of(view: View, history: list[Mapping[str, Any]] | None = None) -> PowerFlow | None:
    """The flow of the matter whose acceptance is in the view's history (or is the view);
    `history`: `_history(view)` if the caller has it."""
    kept = _history(view) if history is None else history
    accepted = None
    for e in kept:
        if e.get("type") == "matter.accepted":
            accepted = e
            break
    if accepted is None:
        if view.get("type") != "matter.accepted":
            return None
        accepted = view
    data = _data(accepted)
    pin = data.get("flow")
    key: tuple[Any, ...] | None = None
    if pin is None or pin.__class__ is dict or isinstance(pin, Mapping):  # all resolve_flow reads
        pinned = None if pin is None else (pin.get("id"), pin.get("version"), pin.get("hash"))
        key = (data.get("matter_type"), pin is None, pinned)
        try:
            if key in _FLOWS_OF:
                return _FLOWS_OF[key]
        except TypeError:  # an unhashable field: not memoised
            key = None
    flow = resolve_flow(data, _flows())
    found = flow if isinstance(flow, PowerFlow) else None
    if key is not None and len(_FLOWS_OF) < MAX_VERDICTS:
        _FLOWS_OF[key] = found
    return found


def _matter_major(view: View, params: Mapping[str, Any]) -> bool:
    """三重一大: the matter's acceptance or this decision is flagged `major`."""
    return any(_data(e).get("major") is True for e in [*_history(view), view])


def _major_matter_without_quorate_decision(view: View, params: Mapping[str, Any]) -> bool:
    """R01: a major matter is decided with no collective decision on file that references it
    with more than `max_few_deciders` distinct participants AND attendance above
    `quorum_fraction` × `leadership_size` (more than half of the leadership team [A])."""
    if not _matter_major(view, params):
        return False
    few = int(params["max_few_deciders"])
    quorum = _param_decimal(params["quorum_fraction"])
    for record in _of_type(_history(view), "decision.collective_recorded"):
        data = _data(record)
        people, size = data.get("participants"), data.get("leadership_size")
        if not isinstance(people, list) or not isinstance(size, int):
            continue
        present = len(set(people))
        if present > few and present > quorum * size:
            return False
    return True


def _approval_below_flow_level(view: View, params: Mapping[str, Any]) -> bool:
    """R02 (该报批的不报批): the matter's flow requires approval at level L
    (`PowerFlow.approval_level` ≥ 1) in its first step named in `approval_steps` (审批, else
    决定), and no such step at a level ≥ L is in the matter (a step without `level` counts as
    level 1, the lowest). Flows with no approval level or no such step: False."""
    history = _history(view)
    flow = _flow_of(view, history)
    if flow is None or flow.approval_level < 1:
        return False
    names = [s for s in params["approval_steps"] if flow.step(s) is not None]
    if not names:
        return False
    first, needed = names[0], flow.approval_level
    for event in history:
        if event.get("type") == "matter.step_completed":
            data = _data(event)
            level = data.get("level", 1)
            if data.get("step") == first and isinstance(level, int) and level >= needed:
                return False
    return True


def _legal_review_missing(view: View, params: Mapping[str, Any]) -> bool:
    """R03: no `matter.legal_review_completed` with an opinion in `review_opinions` came
    before this decision in the matter."""
    accepted = set(params["review_opinions"])
    return not any(
        _data(e).get("opinion") in accepted
        for e in _of_type(_history(view), "matter.legal_review_completed")
    )


# R06's verdict depends only on the kinds asked, the acceptance's matter type and flow pin, and
# the sequence of (event type, step) of the matter when every kind asked is one of these
# (order and completeness never read actors or times); memoised per engine run on that shape.
_SHAPE_KINDS = frozenset({"missing_step", "out_of_order", "unexpected_step", "unknown_flow"})
_VERDICTS: dict[tuple[Any, ...], bool] = {}
MAX_VERDICTS = 65_536


def reset_memos() -> None:
    """Forget memoised verdicts. `alerts.engine.Engine` calls it when it is created, so a memo
    never outlives the run that filled it (it never changes a result: the facts are pure)."""
    _VERDICTS.clear()
    _FLOWS_OF.clear()


def _shape(events: list[Mapping[str, Any]], kinds: Any) -> tuple[Any, ...] | None:
    """The memo key of R06's verdict over `events`, or None when it cannot be memoised (the
    caller also refuses a key that is not hashable)."""
    if not isinstance(kinds, list) or not _SHAPE_KINDS.issuperset(kinds):
        return None
    accepted = next((e for e in events if e.get("type") == "matter.accepted"), None)
    if accepted is None:
        return None
    data = _data(accepted)
    pin = data.get("flow")
    if pin is not None and pin.__class__ is not dict and not isinstance(pin, Mapping):
        return None
    pinned = None if pin is None else (pin.get("id"), pin.get("version"), pin.get("hash"))
    steps = []
    for e in events:
        event_type = e.get("type")
        if event_type == "matter.step_completed":
            step = _data(e).get("step")
            steps.append((event_type, step if isinstance(step, str) else None))
        else:
            steps.append((event_type, None))
    return (tuple(kinds), data.get("matter_type"), pin is None, pinned, tuple(steps))


def _flow_nonconforming(view: View, params: Mapping[str, Any]) -> bool:
    """R06: `projections.conformance.check_matter` over the matter's events (history + this
    terminal event) reports a finding whose kind is in `finding_kinds` (missing_step,
    out_of_order)."""
    matter = [*_history(view), view]
    kinds = params["finding_kinds"]
    key = _shape(matter, kinds)
    if key is not None:
        try:
            known = _VERDICTS.get(key)
        except TypeError:  # an unhashable field: not memoised
            key, known = None, None
        if known is not None:
            return known
    events = [
        {
            "type": e.get("type"),
            "stream_seq": e.get("seq", e.get("position", 0)),
            "occurred_at": e.get("occurred_at"),
            "actor": e.get("actor") or {},
            "data": _data(e),
        }
        for e in matter
    ]
    if not _of_type(events, "matter.accepted"):
        return False
    # only the kinds asked are computed (the verdict is the same)
    verdict = bool(check_matter(events, _flows(), _calendar(), kinds=kinds))
    if key is not None:
        if len(_VERDICTS) >= MAX_VERDICTS:
            _VERDICTS.clear()
        _VERDICTS[key] = verdict
    return verdict


def _invoice_surge(view: View, params: Mapping[str, Any]) -> bool:
    """R08 (发票用量猛增): this month's invoiced `amount` exceeds `surge_factor` × the
    taxpayer's peak over the kept earlier reports (the last 12 months), given at least
    `min_history_months` of them."""
    amount = as_decimal(_data(view).get("amount"))
    if amount is None:
        return False
    factor = _param_decimal(params["surge_factor"])
    peaks = []
    kept = view.get("history")
    for e in reversed(kept) if kept.__class__ is list else _history(view):  # latest first
        if e.__class__ is not dict and not isinstance(e, Mapping):
            continue  # as `_history`: not an event
        if e.get("type") == "taxpayer.invoice_usage_reported":
            data = e.get("data")
            if data.__class__ is dict or isinstance(data, Mapping):  # else it has no amount
                past = as_decimal(data.get("amount"))
                if past is not None:
                    if amount <= factor * past:
                        return False  # not above the peak (which is at least `past`)
                    peaks.append(past)
    if len(peaks) < int(params["min_history_months"]):
        return False
    return amount > factor * max(peaks)


def _low_burden(data: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    burden = as_decimal(data.get("burden_ratio"))
    line = as_decimal(data.get("industry_warning_ratio"))
    if burden is None or line is None:
        return False
    return burden < (1 - _param_decimal(params["burden_deviation"])) * line


def _previous_period(period: str) -> str | None:
    """The period before `YYYY-MM` or `YYYY-Qn`; None if malformed."""
    try:
        year = int(period[:4])
        if period[5] == "Q":
            q = int(period[6:])
            return f"{year - 1}-Q4" if q == 1 else f"{year}-Q{q - 1}"
        month = int(period[5:7])
    except (ValueError, IndexError):
        return None
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


def _burden_low_consecutive(view: View, params: Mapping[str, Any]) -> bool:
    """R09 (税负明显偏低): `burden_ratio` < (1 − `burden_deviation`) × `industry_warning_ratio`
    in this period and in each of the `consecutive_periods` − 1 periods just before it."""
    if not _low_burden(_data(view), params):
        return False
    by_period = {
        _data(e).get("period"): _data(e)
        for e in _of_type(_history(view), "taxpayer.tax_burden_computed")
    }
    period = field(view, "data.period")
    for _ in range(int(params["consecutive_periods"]) - 1):
        period = _previous_period(period) if isinstance(period, str) else None
        data = by_period.get(period)
        if data is None or not _low_burden(data, params):
            return False
    return True


def _void_or_reversal_high(view: View, params: Mapping[str, Any]) -> bool:
    """R10: voided / invoices > `void_ratio_max`, or reversed_amount / amount >
    `reversal_ratio_max` (作废率 / 红冲率), in the month's report."""
    data = _data(view)  # a missing field reads as None (was MISSING): the same verdicts
    invoices, voided = data.get("invoices"), data.get("voided")
    limit = _param_decimal(params["void_ratio_max"])
    if (
        isinstance(invoices, int)
        and isinstance(voided, int)
        and invoices > 0
        and voided > limit * invoices
    ):
        return True
    amount = as_decimal(data.get("amount"))
    reversed_amount = as_decimal(data.get("reversed_amount"))
    if amount is None or reversed_amount is None or amount <= 0:
        return False
    return reversed_amount > _param_decimal(params["reversal_ratio_max"]) * amount


def _ceiling_invoicing(view: View, params: Mapping[str, Any]) -> bool:
    """R11 (顶额开票): at least `ceiling_share` of the month's invoices are at ≥ 90 % of the
    maximum invoice amount (`at_ceiling`, counted by the invoice system)."""
    data = _data(view)  # a missing field reads as None (was MISSING): the same verdicts
    invoices, at_ceiling = data.get("invoices"), data.get("at_ceiling")
    if not isinstance(invoices, int) or not isinstance(at_ceiling, int) or invoices <= 0:
        return False
    return Decimal(at_ceiling) >= _param_decimal(params["ceiling_share"]) * invoices


def _refund_fast_track(view: View, params: Mapping[str, Any]) -> bool:
    """R12(b): the refund is paid while none of the `check_steps` (查实/核实) is in the matter,
    or the official who accepted (handled) it also approved it."""
    history = _history(view)
    steps = _of_type(history, "matter.step_completed")
    if not any(_data(e).get("step") in params["check_steps"] for e in steps):
        return True
    handlers = {_official(e) for e in _of_type(history, "matter.accepted")} - {None}
    approvers = {_official(e) for e in steps if _data(e).get("step") == "approve"} - {None}
    return bool(handlers & approvers)


ENFORCEMENT_FACTS: dict[str, Callable[[View, Mapping[str, Any]], bool]] = {
    "matter_major": _matter_major,
    "major_matter_without_quorate_decision": _major_matter_without_quorate_decision,
    "approval_below_flow_level": _approval_below_flow_level,
    "legal_review_missing": _legal_review_missing,
    "flow_nonconforming": _flow_nonconforming,
    "invoice_surge": _invoice_surge,
    "burden_low_consecutive": _burden_low_consecutive,
    "void_or_reversal_high": _void_or_reversal_high,
    "ceiling_invoicing": _ceiling_invoicing,
    "refund_fast_track": _refund_fast_track,
}
