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
  evaluated on squares in exact integer arithmetic (the rational test multiplied out): no
  floats, no square roots, the same answer on every machine and in every replay.

It returns the official's event ids in the window (the warning's triggers, oldest first), or
None. It is a statistical signal only: it never decides blame.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from math import lcm
from typing import Any

__all__ = ["outlier_verdict"]


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


def outlier_verdict(
    cases: Sequence[Sequence[Any]],
    official: str,
    *,
    min_cases: int,
    min_peers: int,
    sigmas: Fraction,
) -> list[str] | None:
    # Per official: the count of values and their sum, kept as integer numerators per
    # denominator (decimal values share a few denominators), so summing is integer addition.
    sums: dict[str, dict[int, int]] = {}
    counts: dict[str, int] = {}
    ids: list[str] = []
    for _ts, event_id, who, raw in cases:
        pair = _PARSED.get(raw) if raw.__class__ is str and raw in _PARSED else _parsed(raw)
        if pair is None:
            continue
        name = who if who.__class__ is str else str(who)
        by_denominator = sums.get(name)
        if by_denominator is None:
            by_denominator = sums[name] = {}
            counts[name] = 0
        n, d = pair
        by_denominator[d] = by_denominator.get(d, 0) + n
        counts[name] += 1
        if who == official:
            ids.append(event_id if event_id.__class__ is str else str(event_id))
    least = max(min_cases, 1)
    own = counts.get(official, 0)
    if own < least:
        return None
    peers = [who for who, n in counts.items() if who != official and n >= least]
    k = len(peers)
    if k < max(min_peers, 1):
        return None
    # Exact integer form of `peer_mean - mean > sigmas * sigma`: with every sum over one
    # common denominator D (S_w) and the peers' means over D * L (A_p, L = lcm of their
    # counts), gap = G / (k D L own) and variance = V / (k^3 D^2 L^2), so the test is
    # G > 0 and k G^2 den(sigmas)^2 > num(sigmas)^2 V own^2 (all denominators positive).
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
        return None
    spread = sum((k * a - total) ** 2 for a in means)
    num, den = sigmas.numerator, sigmas.denominator
    if k * gap * gap * den * den <= num * num * spread * own * own:
        return None
    return ids[-64:]
