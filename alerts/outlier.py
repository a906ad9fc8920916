"""The statistical verdict of `aggregate_outlier` rules (R18 裁量畸轻): one official's mean
against the spread of the peers' means, in exact arithmetic.

`outlier_verdict(cases, official, …)` reads the cases of one peer group inside the window
(`[ts, event_id, official, value]`, value a decimal string) and decides whether `official`'s
mean value lies strictly below the peers' mean by more than `sigmas` standard deviations:

- the official MUST have at least `min_cases` cases in the window, and so MUST every peer that
  counts; at least `min_peers` such peers MUST exist, else there is no verdict;
- the peers' mean is the mean of the peers' own means (each peer counts once, however many
  cases it decided), σ the population standard deviation of those means;
- the test is `peer_mean − mean > sigmas · σ` (so with σ = 0 any lower mean is an outlier),
  decided on squares in exact integer arithmetic (the rational test multiplied out): no
  square roots, the same answer on every machine and in every replay. A floating-point
  estimate answers first only when it is far from the boundary (by a margin a million times
  its rounding: `_clear_verdict`), which spares the big integers and never changes the answer.

It returns the official's event ids in the window (the warning's triggers, oldest first), or
None. It is a statistical signal only: it never decides blame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from math import lcm
from typing import Any

__all__ = ["OutlierGroup", "outlier_verdict"]


def _value(text: Any) -> Fraction | None:
    try:
        return Fraction(Decimal(str(text)))
    except (InvalidOperation, ValueError):
        return None


_PARSED: dict[str, tuple[int, int] | None] = {}  # decimal string -> (numerator, denominator)


def _parsed(raw: Any) -> tuple[int, int] | None:
    """`_value(raw)` as (numerator, denominator) in lowest terms; decimal strings cached."""
    if raw.__class__ is str and raw in _PARSED:
        return _PARSED[raw]
    value = _value(raw)
    pair = None if value is None else (value.numerator, value.denominator)
    if raw.__class__ is str and len(_PARSED) < 100_000:
        _PARSED[raw] = pair
    return pair


class OutlierGroup:
    """The per-official sums and counts of one peer group's cases, kept up to date as cases
    enter and leave the window (so a verdict does not re-read the whole window). `verdict`
    MUST equal `outlier_verdict` over the same cases (tests/alerts/test_outlier.py)."""

    __slots__ = ("cases", "counts", "oldest", "sums")

    def __init__(self, cases: list[list[Any]]) -> None:
        self.cases = cases  # the state's list of the group's cases, as the engine keeps it
        # per official: integer numerators per denominator (decimal values share a few
        # denominators, so a sum is integer addition) and the count of parsed values
        self.sums: dict[str, dict[int, int]] = {}
        self.counts: dict[str, int] = {}
        self.oldest: Any = None  # the least case time, None: no case
        for case in cases:
            self.add(case)

    def add(self, case: Sequence[Any]) -> None:
        ts, raw, who = case[0], case[3], case[2]
        if self.oldest is None or ts < self.oldest:
            self.oldest = ts
        pair = _PARSED.get(raw) if raw.__class__ is str and raw in _PARSED else _parsed(raw)
        if pair is None:
            return
        name = who if who.__class__ is str else str(who)
        by_denominator = self.sums.get(name)
        if by_denominator is None:
            by_denominator = self.sums[name] = {}
            self.counts[name] = 0
        n, d = pair
        by_denominator[d] = by_denominator.get(d, 0) + n
        self.counts[name] += 1

    def expire(self, cutoff: int) -> None:
        """Drop the cases at or before `cutoff` from the list (in place) and the sums."""
        if self.oldest is None or self.oldest > cutoff:
            return
        cases = self.cases
        kept = [c for c in cases if c[0] > cutoff]
        for case in cases:
            if case[0] <= cutoff:
                self._remove(case)
        cases[:] = kept
        self.oldest = min((c[0] for c in kept), default=None)

    def _remove(self, case: Sequence[Any]) -> None:
        raw, who = case[3], case[2]
        pair = _PARSED.get(raw) if raw.__class__ is str and raw in _PARSED else _parsed(raw)
        if pair is None:
            return
        name = who if who.__class__ is str else str(who)
        n, d = pair
        self.sums[name][d] -= n
        self.counts[name] -= 1
        if not self.counts[name]:
            del self.counts[name], self.sums[name]

    def verdict(
        self, official: str, *, min_cases: int, min_peers: int, sigmas: Fraction
    ) -> list[str] | None:
        """`outlier_verdict(self.cases, official, …)`."""
        if not _outlier(
            self.sums,
            self.counts,
            official,
            min_cases=min_cases,
            min_peers=min_peers,
            sigmas=sigmas,
        ):
            return None
        ids = []
        for _ts, event_id, who, raw in self.cases:
            if who == official and _parsed(raw) is not None:
                ids.append(event_id if event_id.__class__ is str else str(event_id))
        return ids[-64:]


def outlier_verdict(
    cases: Sequence[Sequence[Any]],
    official: str,
    *,
    min_cases: int,
    min_peers: int,
    sigmas: Fraction,
) -> list[str] | None:
    """The verdict over `cases` (see the module docstring): the official's event ids, or None."""
    return OutlierGroup([list(c) for c in cases]).verdict(
        official, min_cases=min_cases, min_peers=min_peers, sigmas=sigmas
    )


def _outlier(
    sums: dict[str, dict[int, int]],
    counts: dict[str, int],
    official: str,
    *,
    min_cases: int,
    min_peers: int,
    sigmas: Fraction,
) -> bool:
    least = max(min_cases, 1)
    own = counts.get(official, 0)
    if own < least:
        return False
    peers = [who for who, n in counts.items() if who != official and n >= least]
    k = len(peers)
    if k < max(min_peers, 1):
        return False
    clear = _clear_verdict(sums, counts, official, peers, sigmas)
    if clear is not None:
        return clear
    # Exact integer form of `peer_mean - mean > sigmas * sigma`: with every sum over one
    # common denominator D (S_w) and the peers' means over D * L (A_p, L = lcm of their
    # counts), gap = G / (k D L own) and variance = V / (k^3 D^2 L^2), so the test is
    # G > 0 and k G^2 den(sigmas)^2 > num(sigmas)^2 V own^2 (all denominators positive;
    # the test does not depend on D, so a denominator whose sum fell to 0 may stay).
    common = 1
    for who in (official, *peers):
        for d in sums[who]:
            common = lcm(common, d)

    def scaled(who: str) -> int:
        return sum(n * (common // d) for d, n in sums[who].items())

    span = 1
    for who in peers:
        span = lcm(span, counts[who])
    means = [scaled(who) * (span // counts[who]) for who in peers]
    total = sum(means)
    gap = own * total - k * span * scaled(official)
    if gap <= 0:
        return False
    spread = sum((k * a - total) ** 2 for a in means)
    num, den = sigmas.numerator, sigmas.denominator
    return k * gap * gap * den * den > num * num * spread * own * own


_MARGIN = 1e-6  # relative: float rounding here is below 1e-12 of the values' scale


def _clear_verdict(
    sums: dict[str, dict[int, int]],
    counts: dict[str, int],
    official: str,
    peers: list[str],
    sigmas: Fraction,
) -> bool | None:
    """The verdict when a floating-point estimate decides it by a wide margin (the rounding
    of these few sums and squares is many orders of magnitude below `_MARGIN`), else None:
    the exact computation decides. So the answer is always the exact one; the estimate only
    spares the big-integer arithmetic when the test is far from its boundary."""
    try:
        scale = 1.0  # bounds every mean's and partial sum's magnitude (so the rounding)
        means = []
        for who in (official, *peers):
            parts = [n / d for d, n in sums[who].items()]
            means.append(sum(parts) / counts[who])
            scale = max(scale, sum(map(abs, parts)) / counts[who])
        mean = means.pop(0)
        k = len(means)
        peer_mean = sum(means) / k
        variance = sum((m - peer_mean) ** 2 for m in means) / k
        s2 = float(sigmas) ** 2
    except (OverflowError, ZeroDivisionError):
        return None
    if not math.isfinite(scale * scale + variance + s2):
        return None
    gap = peer_mean - mean
    if gap < -_MARGIN * scale:
        return False  # the peers' mean is clearly not above the official's
    if gap <= _MARGIN * scale:
        return None  # too close to call
    slack = _MARGIN * scale * scale * (1.0 + s2)
    if gap * gap + slack < s2 * variance:
        return False
    if gap * gap - slack > s2 * variance:
        return True
    return None
