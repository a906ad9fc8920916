"""Conditions and field paths compiled once per rule into closures (the engine's hot path).

`compile_condition(cond, params)` returns `pred(view, bound) -> bool` that MUST give exactly
what `alerts.predicates.evaluate(cond, view, params, bound)` gives for every view and bound
(tests/alerts/test_compiled.py checks this on generated conditions and views); it only moves
the work that depends on the rule alone (splitting paths, resolving `{param: …}`, parsing
decimal literals, dispatching on the operator) out of the per-event path. Nothing is
evaluated from strings: a condition is still data, compiled into Python closures.

`compile_path(path)` returns `get(view) -> value | MISSING`, equal to `alerts.view.field`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from alerts.predicates import FACTS, evaluate
from alerts.view import MISSING, View, as_decimal, compare

__all__ = ["TRUE", "Getter", "Pred", "compile_condition", "compile_path"]

Getter = Callable[[View], Any]
Pred = Callable[[View, Mapping[str, Any]], bool]
_LOOKUP_ERRORS = (KeyError, TypeError, IndexError)


def compile_path(path: str) -> Getter:
    """A getter equal to `alerts.view.field(view, path)`."""
    parts = tuple(path.split("."))
    if len(parts) == 1:
        (only,) = parts

        def one(view: View) -> Any:
            try:
                return view[only]
            except _LOOKUP_ERRORS:
                return MISSING

        return one
    if len(parts) == 2:
        first, second = parts

        def two(view: View) -> Any:
            try:
                return view[first][second]
            except _LOOKUP_ERRORS:
                return MISSING

        return two

    def deep(view: View) -> Any:
        value: Any = view
        for part in parts:
            try:
                value = value[part]
            except _LOOKUP_ERRORS:
                return MISSING
        return value

    return deep


def _true(view: View, bound: Mapping[str, Any]) -> bool:
    return True


TRUE: Pred = _true  # the compiled absent condition: callers MAY skip calling it


def _right(raw: Any, params: Mapping[str, Any]) -> tuple[Any, Callable[..., Any] | None]:
    """(constant, None) when the right-hand value depends on the rule only, else (None, fn)."""
    if isinstance(raw, Mapping) and len(raw) == 1:
        ((op, arg),) = raw.items()
        if op == "param" and arg in params:
            return params[arg], None
        if op == "param_keys" and arg in params:
            return list(params[arg]), None
        if op == "ref":
            getter = compile_path(arg)
            return None, lambda view, bound: getter(view)
        if op == "bound":
            return None, lambda view, bound: bound.get(arg, MISSING)
        if op in ("param", "param_keys"):  # undeclared: fail at evaluation, as evaluate does
            return None, lambda view, bound: params[arg]
    return raw, None


def _short_comparison(op: str, path: str, right: Any) -> Pred | None:
    """`eq` / `in` against a constant on a path of one or two parts, with the lookup inline
    (the most common conditions: `type`, `data.step`, `data.matter_type`); else None."""
    parts = path.split(".")
    if op == "in" and not isinstance(right, list | tuple | Mapping):
        return None  # always false: the general form says so
    if op not in ("eq", "in") or len(parts) > 2:
        return None
    if len(parts) == 1:
        (only,) = parts
        if op == "eq":

            def eq1(view: View, bound: Mapping[str, Any]) -> bool:
                try:
                    left = view[only]
                except _LOOKUP_ERRORS:
                    return False
                return left is not MISSING and bool(left == right)

            return eq1

        def in1(view: View, bound: Mapping[str, Any]) -> bool:
            try:
                left = view[only]
            except _LOOKUP_ERRORS:
                return False
            return left is not MISSING and left in right

        return in1
    first, second = parts
    if op == "eq":

        def eq2(view: View, bound: Mapping[str, Any]) -> bool:
            try:
                left = view[first][second]
            except _LOOKUP_ERRORS:
                return False
            return left is not MISSING and bool(left == right)

        return eq2

    def in2(view: View, bound: Mapping[str, Any]) -> bool:
        try:
            left = view[first][second]
        except _LOOKUP_ERRORS:
            return False
        return left is not MISSING and left in right

    return in2


def _comparison(op: str, path: str, raw: Any, params: Mapping[str, Any]) -> Pred:
    get = compile_path(path)
    const, dynamic = _right(raw, params)
    if dynamic is not None:
        return lambda view, bound: compare(op, get(view), dynamic(view, bound))
    right = const
    if right is MISSING:
        return lambda view, bound: op == "ne"
    short = _short_comparison(op, path, right)
    if short is not None:
        return short
    if op == "eq":

        def eq(view: View, bound: Mapping[str, Any]) -> bool:
            left = get(view)
            return left is not MISSING and bool(left == right)

        return eq
    if op == "ne":

        def ne(view: View, bound: Mapping[str, Any]) -> bool:
            left = get(view)
            return left is MISSING or bool(left != right)

        return ne
    if op == "in":
        if not isinstance(right, list | tuple | Mapping):
            return lambda view, bound: False

        def in_(view: View, bound: Mapping[str, Any]) -> bool:
            left = get(view)
            return left is not MISSING and left in right

        return in_
    if op in ("gte", "lte"):
        b = as_decimal(right)
        if b is None:
            return lambda view, bound: False
        gte = op == "gte"

        def order(view: View, bound: Mapping[str, Any]) -> bool:
            left = get(view)
            if left is MISSING:
                return False
            a = as_decimal(left)
            if a is None:
                return False
            return a >= b if gte else a <= b

        return order
    return lambda view, bound: compare(op, get(view), right)


def _junction(op: str, parts: tuple[Pred, ...]) -> Pred:
    """`all` / `any` of compiled parts, short-circuiting in order as `evaluate` does; one or
    two parts (the common case) without a generator. Every `Pred` returns a bool."""
    if len(parts) == 1:
        (only,) = parts
        return lambda view, bound: bool(only(view, bound))
    if len(parts) == 2:
        first, second = parts
        if op == "all":
            return lambda view, bound: bool(first(view, bound) and second(view, bound))
        return lambda view, bound: bool(first(view, bound) or second(view, bound))
    if op == "all":
        return lambda view, bound: all(p(view, bound) for p in parts)
    return lambda view, bound: any(p(view, bound) for p in parts)


def compile_condition(cond: Mapping[str, Any] | None, params: Mapping[str, Any]) -> Pred:
    """A closure equal to `evaluate(cond, view, params, bound)` (an absent condition: true)."""
    if not cond:
        return _true
    if len(cond) != 1:  # malformed: keep evaluate's behaviour (it raises)
        return lambda view, bound: evaluate(cond, view, params, bound)
    ((op, arg),) = cond.items()
    if op in ("all", "any"):
        return _junction(op, tuple(compile_condition(c, params) for c in arg))
    if op == "not":
        inner = compile_condition(arg, params)
        return lambda view, bound: not inner(view, bound)
    if op == "exists":
        get = compile_path(arg)
        return lambda view, bound: get(view) is not MISSING
    if op == "fact":
        fact = FACTS.get(arg)
        if fact is None:  # unknown: fail at evaluation, as evaluate does
            return lambda view, bound: FACTS[arg](view, params)
        return lambda view, bound: fact(view, params)
    if not isinstance(arg, list | tuple) or len(arg) != 2:
        return lambda view, bound: evaluate(cond, view, params, bound)
    path, raw = arg
    return _comparison(op, path, raw, params)
