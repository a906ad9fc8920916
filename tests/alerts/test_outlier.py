"""`alerts.outlier.outlier_verdict` (integer sums per denominator, cached parsing) equals the
plain exact computation it replaced: Fractions summed case by case, peers in sorted order."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.outlier import OutlierGroup, outlier_verdict


def reference(
    cases: Sequence[Sequence[Any]],
    official: str,
    *,
    min_cases: int,
    min_peers: int,
    sigmas: Fraction,
) -> list[str] | None:
    def value_of(text: Any) -> Fraction | None:
        try:
            return Fraction(Decimal(str(text)))
        except (InvalidOperation, ValueError):
            return None

    values: dict[str, list[Fraction]] = {}
    ids: list[str] = []
    for _ts, event_id, who, raw in cases:
        value = value_of(raw)
        if value is None:
            continue
        values.setdefault(str(who), []).append(value)
        if who == official:
            ids.append(str(event_id))
    own = values.get(official, [])
    if len(own) < max(min_cases, 1):
        return None
    peers = [
        sum(v, Fraction(0)) / len(v)
        for who, v in sorted(values.items())
        if who != official and len(v) >= max(min_cases, 1)
    ]
    if len(peers) < max(min_peers, 1):
        return None
    mean = sum(own, Fraction(0)) / len(own)
    peer_mean = sum(peers, Fraction(0)) / len(peers)
    variance = sum(((p - peer_mean) ** 2 for p in peers), Fraction(0)) / len(peers)
    gap = peer_mean - mean
    if gap <= 0 or gap * gap <= sigmas * sigmas * variance:
        return None
    return ids[-64:]


VALUES = st.one_of(
    st.decimals(min_value=0, max_value=5, places=3, allow_nan=False).map(str),
    st.sampled_from(["0.5", "0.50", "1", "0.333", "x", "", "1e-2", "2E1"]),
    st.integers(0, 3),
)
CASES = st.lists(
    st.tuples(
        st.integers(0, 10),
        st.uuids().map(str),
        st.sampled_from(["O-1", "O-2", "O-3", "O-4", "O-5", "O-6"]),
        VALUES,
    ).map(list),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(
    CASES,
    st.sampled_from(["O-1", "O-2"]),
    st.integers(0, 4),
    st.integers(0, 4),
    st.sampled_from([Fraction(0), Fraction(1, 2), Fraction(1), Fraction(2)]),
)
def test_equals_the_plain_exact_computation(
    cases: list[list[Any]], official: str, min_cases: int, min_peers: int, sigmas: Fraction
) -> None:
    got = outlier_verdict(cases, official, min_cases=min_cases, min_peers=min_peers, sigmas=sigmas)
    want = reference(cases, official, min_cases=min_cases, min_peers=min_peers, sigmas=sigmas)
    assert got == want


def test_a_low_official_among_tight_peers_is_an_outlier() -> None:
    cases: list[list[Any]] = []
    for i, (who, value) in enumerate(
        [(p, v) for p in ("O-2", "O-3", "O-4") for v in ("0.50", "0.5", "0.52")]
        + [("O-1", "0.1")] * 3
    ):
        cases.append([i, f"e{i}", who, value])
    two = Fraction(2)
    hits = outlier_verdict(cases, "O-1", min_cases=3, min_peers=3, sigmas=two)
    assert hits == ["e9", "e10", "e11"]
    assert outlier_verdict(cases, "O-2", min_cases=3, min_peers=3, sigmas=two) is None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(CASES, st.integers(-1, 10)), min_size=1, max_size=6),
    st.sampled_from(["O-1", "O-2"]),
    st.integers(0, 3),
    st.integers(0, 3),
    st.sampled_from([Fraction(0), Fraction(1, 2), Fraction(2)]),
)
def test_the_running_sums_equal_a_verdict_over_the_window(
    rounds: list[tuple[list[list[Any]], int]],
    official: str,
    min_cases: int,
    min_peers: int,
    sigmas: Fraction,
) -> None:
    """Cases entering (in any time order) and leaving the window, as the engine drives an
    `OutlierGroup`: its list and verdict equal the window filtered afresh and judged whole."""
    kept: list[list[Any]] = []
    group = OutlierGroup(kept)
    window: list[list[Any]] = []
    for added, cutoff in rounds:
        group.expire(cutoff)
        window = [c for c in window if c[0] > cutoff]
        for case in added:
            kept.append(case)
            group.add(case)
            window.append(case)
        assert group.cases == window
        got = group.verdict(official, min_cases=min_cases, min_peers=min_peers, sigmas=sigmas)
        want = reference(window, official, min_cases=min_cases, min_peers=min_peers, sigmas=sigmas)
        assert got == want
    rebuilt = OutlierGroup(list(window))  # as after a restore: from the cases alone
    assert rebuilt.sums.keys() == group.sums.keys()
    assert rebuilt.counts == group.counts


WIDE = st.one_of(
    st.decimals(min_value=-(10**9), max_value=10**9, places=6, allow_nan=False).map(str),
    st.sampled_from(["1e300", "-1e300", "1e-300", "0.1", "0.10", "0.3", "-0.2"]),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 10),
            st.uuids().map(str),
            st.sampled_from(["O-1", "O-2", "O-3", "O-4", "O-5"]),
            WIDE,
        ).map(list),
        max_size=40,
    ),
    st.sampled_from(["O-1", "O-2"]),
    st.integers(0, 2),
    st.sampled_from([Fraction(0), Fraction(1, 3), Fraction(1), Fraction(5, 2)]),
)
def test_the_float_estimate_never_changes_a_verdict(
    cases: list[list[Any]], official: str, min_peers: int, sigmas: Fraction
) -> None:
    """Wide, negative, huge and tiny values (where rounding is largest): the verdict with the
    floating-point shortcut is still the exact one."""
    got = outlier_verdict(cases, official, min_cases=1, min_peers=min_peers, sigmas=sigmas)
    want = reference(cases, official, min_cases=1, min_peers=min_peers, sigmas=sigmas)
    assert got == want
