"""The event view rules read, and the dotted field paths into it (shared by every rule module)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["MISSING", "View", "as_decimal", "compare", "field"]

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


_DECIMALS: dict[str, Decimal | None] = {}  # decimal strings parsed (immutable: cached)
MAX_DECIMALS = 65_536


def as_decimal(value: Any) -> Decimal | None:
    """An integer or decimal string as an exact `Decimal` (never a float); None otherwise."""
    if value.__class__ is str:
        known: Decimal | None = _DECIMALS.get(value, MISSING)
        if known is not MISSING:
            return known
        try:
            parsed: Decimal | None = Decimal(value)
        except InvalidOperation:
            parsed = None
        if len(_DECIMALS) >= MAX_DECIMALS:
            _DECIMALS.clear()
        _DECIMALS[value] = parsed
        return parsed
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):  # a str subclass: not cached
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return None


def compare(op: str, left: Any, right: Any) -> bool:
    """One comparison of a condition: eq / ne / in, or gte / lte on integers and decimal strings
    (exact `Decimal`, never floats). A missing side makes every comparison false (`ne` true)."""
    if left is MISSING or right is MISSING:
        return op == "ne"
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    if op == "in":
        return isinstance(right, list | tuple | Mapping) and left in right
    a, b = as_decimal(left), as_decimal(right)
    if a is None or b is None:
        return False
    return a >= b if op == "gte" else a <= b
