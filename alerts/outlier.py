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
  evaluated on squares of `Fraction`s: no floats, no square roots, the same answer on every
  machine and in every replay (sums are exact, so the order of the peers does not matter).

It returns the official's event ids in the window (the warning's triggers, oldest first), or
None. It is a statistical signal only: it never decides blame.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

__all__ = ["outlier_verdict"]


def _value(text: Any) -> Fraction | None:
    try:
        return Fraction(Decimal(str(text)))
    except (InvalidOperation, ValueError):
        return None


_PARSED: dict[str, Fraction | None] = {}  # decimal string -> exact value (immutable: cached)


def _parsed(raw: Any) -> Fraction | None:
    if not isinstance(raw, str):
        return _value(raw)
    if raw in _PARSED:
        return _PARSED[raw]
    value = _value(raw)
    if len(_PARSED) < 100_000:
        _PARSED[raw] = value
    return value


def _total(by_denominator: dict[int, int]) -> Fraction:
    """The exact sum of values kept as numerator sums per denominator."""
    return sum((Fraction(n, d) for d, n in by_denominator.items()), Fraction(0))


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
        value = _parsed(raw)
        if value is None:
            continue
        name = str(who)
        by_denominator = sums.get(name)
        if by_denominator is None:
            by_denominator = sums[name] = {}
        d = value.denominator
        by_denominator[d] = by_denominator.get(d, 0) + value.numerator
        counts[name] = counts.get(name, 0) + 1
        if who == official:
            ids.append(str(event_id))
    least = max(min_cases, 1)
    own = counts.get(official, 0)
    if own < least:
        return None
    peers = [_total(sums[who]) / n for who, n in counts.items() if who != official and n >= least]
    if len(peers) < max(min_peers, 1):
        return None
    mean = _total(sums[official]) / own
    peer_mean = sum(peers, Fraction(0)) / len(peers)
    variance = sum(((p - peer_mean) ** 2 for p in peers), Fraction(0)) / len(peers)
    gap = peer_mean - mean
    if gap <= 0 or gap * gap <= sigmas * sigmas * variance:
        return None
    return ids[-64:]
