"""Small helpers the register projections share (dates, subjects, event references).

Everything here is pure: no wall clock, no I/O. Dates are `YYYY-MM-DD` strings, compared as
`datetime.date` values.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from projections.base import LoggedEvent

__all__ = ["add_days", "event_ref", "official_of", "parse_date", "year_of"]


def parse_date(text: str) -> date:
    """`YYYY-MM-DD` (or the date part of a `YYYY-MM-DDTHH:MM:SSZ` timestamp) as a date."""
    return date.fromisoformat(text[:10])


def add_days(text: str, days: int) -> str:
    """The date `days` calendar days after `text`, as `YYYY-MM-DD`."""
    return (parse_date(text) + timedelta(days=days)).isoformat()


def year_of(text: str) -> int:
    return int(text[:4])


def official_of(event: LoggedEvent) -> str | None:
    """The official an event is about: `subject.official`, else the id in an
    `official/<id>`, `declaration/<id>` or `pii/<id>` stream name."""
    official = event.subject.get("official")
    if official:
        return official
    head, _, tail = event.stream.partition("/")
    if head in ("official", "declaration", "pii") and tail and "/" not in tail:
        return tail
    return None


def event_ref(event: LoggedEvent) -> dict[str, Any]:
    """Where an entry came from: enough to find and prove the event (position, id)."""
    return {"event_id": event.event_id, "position": event.position}
