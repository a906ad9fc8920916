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
  machine and in every replay.

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


def outlier_verdict(
    cases: Sequence[Sequence[Any]],
    official: str,
    *,
    min_cases: int,
    min_peers: int,
    sigmas: Fraction,
) -> list[str] | None:
    values: dict[str, list[Fraction]] = {}
    ids: list[str] = []
    for _ts, event_id, who, raw in cases:
        value = _value(raw)
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
