"""Facts that stop early (R08's surge stops at the first kept report it does not exceed)
give what the plain whole-history computation gives."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.facts_enforcement import ENFORCEMENT_FACTS

REPORT = "taxpayer.invoice_usage_reported"


def plain_surge(view: dict[str, Any], params: dict[str, Any]) -> bool:
    def decimal(value: Any) -> Decimal | None:
        if isinstance(value, bool) or not isinstance(value, str | int):
            return None
        try:
            return Decimal(value)
        except InvalidOperation:
            return None

    amount = decimal((view.get("data") or {}).get("amount"))
    if amount is None:
        return False
    peaks = [
        p
        for e in view.get("history", [])
        if isinstance(e, dict) and e.get("type") == REPORT and isinstance(e.get("data"), dict)
        for p in [decimal(e["data"].get("amount"))]
        if p is not None
    ]
    if len(peaks) < int(params["min_history_months"]):
        return False
    return amount > Decimal(str(params["surge_factor"])) * max(peaks)


AMOUNTS = st.one_of(
    st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False).map(str),
    st.integers(0, 10_000),
    st.sampled_from(["", "x", None, True, "1e3"]),
)
EVENTS = st.one_of(
    st.builds(
        lambda t, a: {"type": t, "data": {"amount": a}},
        st.sampled_from([REPORT, REPORT, "taxpayer.risk_response_recorded"]),
        AMOUNTS,
    ),
    st.sampled_from([{"type": REPORT, "data": "x"}, {"type": REPORT}, "not an event"]),
)


@settings(max_examples=500, deadline=None)
@given(
    AMOUNTS,
    st.lists(EVENTS, max_size=14),
    st.sampled_from(["1.5", "1", "2.25"]),
    st.integers(1, 3),
)
def test_invoice_surge_equals_the_plain_computation(
    amount: Any, history: list[Any], factor: str, months: int
) -> None:
    params = {"surge_factor": factor, "min_history_months": months}
    view = {"type": REPORT, "data": {"amount": amount}, "history": history}
    assert ENFORCEMENT_FACTS["invoice_surge"](view, params) == plain_surge(view, params)
