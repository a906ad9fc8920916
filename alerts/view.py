"""The event view rules read, and the dotted field paths into it (shared by every rule module)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["MISSING", "View", "as_decimal", "field"]

MISSING: Any = object()

View = Mapping[str, Any]


def field(view: View, path: str) -> Any:
    """The value at a dotted path, or `MISSING`."""
    value: Any = view
    for part in path.split("."):
        try:
            value = value[part]
        except (KeyError, TypeError, IndexError):
            return MISSING
    return value


def as_decimal(value: Any) -> Decimal | None:
    """An integer or decimal string as an exact `Decimal` (never a float); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return None
