"""Compiled conditions and paths equal the interpreted ones (alerts.predicates / alerts.view)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.calendar import parse_ts
from alerts.compiled import compile_condition, compile_path
from alerts.predicates import evaluate
from alerts.view import MISSING, field

PATHS = [
    "type",
    "stream",
    "stream.x",
    "type.0",
    "data.x",
    "data.y",
    "data.n",
    "actor.official",
    "data.deep.z",
    "nope.a",
]
SCALARS = st.one_of(
    st.sampled_from(["a", "b", "10", "10.50", "-3", "", "x.y"]),
    st.integers(-20, 20),
    st.booleans(),
    st.none(),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.fixed_dictionaries({"param": st.sampled_from(["p_int", "p_list", "p_ratio"])}),
    st.fixed_dictionaries({"param_keys": st.just("p_table")}),
    st.fixed_dictionaries({"ref": st.sampled_from(PATHS)}),
    st.fixed_dictionaries({"bound": st.sampled_from(["official", "other"])}),
)
PARAMS = {"p_int": 5, "p_list": ["a", "10"], "p_ratio": "0.8", "p_table": {"a": 1, "b": 2}}


def _leaf() -> st.SearchStrategy[dict[str, Any]]:
    compare = st.builds(
        lambda op, path, value: {op: [path, value]},
        st.sampled_from(["eq", "ne", "in", "gte", "lte"]),
        st.sampled_from(PATHS),
        VALUES,
    )
    exists = st.builds(lambda p: {"exists": p}, st.sampled_from(PATHS))
    return st.one_of(compare, exists)


CONDITIONS = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.builds(lambda cs: {"all": cs}, st.lists(inner, max_size=3)),
        st.builds(lambda cs: {"any": cs}, st.lists(inner, max_size=3)),
        st.builds(lambda c: {"not": c}, inner),
    ),
    max_leaves=8,
)
DATA = st.dictionaries(
    st.sampled_from(["x", "y", "n", "deep"]),
    st.one_of(SCALARS, st.lists(SCALARS, max_size=2), st.fixed_dictionaries({"z": SCALARS})),
)
VIEWS = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["matter.accepted", "a"]),
        "stream": st.sampled_from(["matter/1", "10"]),
        "actor": st.fixed_dictionaries({"official": st.sampled_from(["a", "b", "o-1"])}),
        "data": DATA,
    }
)
BOUND = st.dictionaries(st.sampled_from(["official"]), SCALARS)


@settings(max_examples=400, deadline=None)
@given(CONDITIONS, VIEWS, BOUND)
def test_compiled_condition_equals_evaluate(cond: dict[str, Any], view: dict[str, Any], bound):
    def outcome(fn):
        try:
            return fn()
        except TypeError as exc:  # e.g. an object `in` an object: both MUST raise alike
            return type(exc)

    compiled = compile_condition(cond, PARAMS)
    assert outcome(lambda: compiled(view, bound)) == outcome(
        lambda: evaluate(cond, view, PARAMS, bound)
    )


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([*PATHS, "data", "data.x.y", "data.n.0"]), VIEWS)
def test_compiled_path_equals_field(path: str, view: dict[str, Any]):
    got, want = compile_path(path)(view), field(view, path)
    assert got is want or got == want


def test_known_answers():
    view = {"type": "t", "data": {"amount": "2000.00", "step": "review"}, "actor": {}}
    cond = {
        "all": [
            {"gte": ["data.amount", {"param": "fine"}]},
            {"in": ["data.step", ["accept", "review"]]},
            {"ne": ["actor.official", {"bound": "who"}]},
        ]
    }
    pred = compile_condition(cond, {"fine": "2000"})
    assert pred(view, {}) is True  # missing bound: ne holds
    assert pred(view, {"who": "x"}) is True  # actor.official missing: `ne` holds
    view["actor"] = {"official": "x"}
    assert pred(view, {"who": "x"}) is False
    assert pred({**view, "data": {"amount": "1999.99", "step": "review"}}, {}) is False
    assert compile_condition(None, {})(view, {}) is True
    assert compile_path("data.nope")(view) is MISSING


def test_parse_ts_cache_is_exact():
    for text in ["2026-12-01T01:00:00Z", "2026-12-01T23:59:59Z", "1970-01-01T00:00:00.5Z"]:
        assert parse_ts(text) == parse_ts(text)
    assert parse_ts("2026-12-01T01:00:00Z") == 1_796_086_800
    assert parse_ts("2026-12-02T00:00:01Z") - parse_ts("2026-12-01T00:00:01Z") == 86_400
