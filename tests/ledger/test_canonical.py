"""Properties of `ledger.canonical`: RFC 8785 bytes, the fast path, and strict parsing.

The fast path (`_fast_form`) may only ever *accept* bytes that `rfc8785` itself produces; the
properties below pin it to `rfc8785.dumps` wherever it is used (no 4-byte UTF-8 sequence, where
code-point and UTF-16 key orders agree) and check that `rfc8785` decides everywhere else.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ledger.canonical import (
    MAX_DEPTH,
    MAX_SAFE_INT,
    _check_value,
    _fast_form,
    canonical_bytes,
    parse_canonical,
    parse_strict,
    require_canonical,
)
from ledger.errors import MalformedInput
from ledger.reasons import ReasonCode

FOUR_BYTE_UTF8 = re.compile(rb"[\xf0-\xf4]")

# characters where encoders disagree most often: controls and their short escapes, quote,
# backslash, solidus, DEL, line/paragraph separators, BOM, the edges of the BMP (U+E000…U+FFFF
# sort after astral characters in UTF-16), astral characters, CJK, a decomposable letter
SPECIAL = [
    "\x00", "\x01", "\x07", "\b", "\t", "\n", "\x0b", "\f", "\r", "\x1b", "\x1f", " ", '"',
    "\\", "/", "\x7f", "\x80", "\x9f", "\u00e9", "\u0301", "\u2028", "\u2029", "\ud7ff",
    "\ue000", "\ufeff", "\uffef", "\uffff", "\U00010000", "\U0001f600", "\U0010ffff", "中",
    "e\u0301", "\u212b",
]  # fmt: skip


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


texts = (
    st.lists(
        st.sampled_from(SPECIAL) | st.text(st.characters(exclude_categories=("Cs",)), max_size=3),
        max_size=6,
    )
    .map("".join)
    .map(nfc)
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INT, MAX_SAFE_INT)
    | st.sampled_from([0, -1, MAX_SAFE_INT, -MAX_SAFE_INT, 2**31, 2**32, -(2**63) // 2**11])
    | texts
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(texts, children, max_size=6),
    max_leaves=30,
)


def same(a: Any, b: Any) -> bool:
    """Equal with types (so True is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def reason(raw: bytes, parse: Any = parse_strict) -> ReasonCode:
    with pytest.raises(MalformedInput) as caught:
        parse(raw)
    return caught.value.reason


# -- canonical bytes -------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(json_values)
@example({"\uffff": 1, "\U00010000": 2})
@example({"\ue000": [], "\U0001f600": {"\u00e9": "e\u0301"[:1]}})
@example(["\u2028\u2029\x7f\x1f\x00"])
def test_canonical_bytes_is_rfc8785_and_round_trips(value: Any) -> None:
    raw = canonical_bytes(value)
    assert raw == bytes(rfc8785.dumps(value))
    parsed = parse_strict(raw)
    assert same(parsed, value)
    require_canonical(raw, parsed)
    assert same(parse_canonical(raw), value)
    assert same(parse_canonical(raw, check_values=False), value)


# Values the rules forbid as well as allow: floats, integers past the I-JSON range, text that is
# not NFC, deep nesting. `parse_canonical` skips its value walk when the bytes prove it safe;
# it MUST decide exactly as the careful path (strict parse, then the canonical comparison).
hostile_leaves = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.sampled_from(["a", "e", "\u0301", "\u00e9", "1", ".", "E", '"', "\\"])),
    st.booleans(),
    st.none(),
)
hostile_values = st.recursive(
    hostile_leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=40,
)


def _careful(raw: bytes) -> Any:
    value = parse_strict(raw)
    require_canonical(raw, value)
    return value


def _outcome(fn: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return "ok", fn(raw)
    except MalformedInput as exc:
        return "rejected", exc.reason


@settings(max_examples=300, deadline=None)
@given(hostile_values, st.integers(min_value=0, max_value=40))
@example(1.5, 0)
@example({"a": 2**53}, 0)
@example({"a": "e\u0301"}, 0)
@example([], 35)
def test_parse_canonical_decides_as_the_careful_path(value: Any, wrap: int) -> None:
    for _ in range(wrap):
        value = [value]
    raw = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    fast, careful = _outcome(parse_canonical, raw), _outcome(_careful, raw)
    assert fast == careful if fast[0] == "rejected" else fast[0] == careful[0], raw
    if fast[0] == "ok":
        assert same(fast[1], careful[1])


@settings(max_examples=150, deadline=None)
@given(json_values)
@example({"\uffff": 1, "\U00010000": 2})
@example({"a\U0001f600": 0, "a\uff00": 0})
def test_fast_form_agrees_with_rfc8785_without_four_byte_utf8(value: Any) -> None:
    reference = bytes(rfc8785.dumps(value))
    fast = _fast_form(value)
    if not FOUR_BYTE_UTF8.search(reference):
        assert fast == reference
    # whatever the fast form is, it is accepted only if it is the reference form
    if fast == reference:
        require_canonical(fast, value)
    else:
        with pytest.raises(MalformedInput) as caught:
            require_canonical(fast, value)
        assert caught.value.reason is ReasonCode.NON_CANONICAL


def test_utf16_key_order_is_decided_by_rfc8785() -> None:
    """U+FFFF sorts before U+10000 by code point, after it by UTF-16 code units (RFC 8785)."""
    value = {"\uffff": 1, "\U00010000": 2}
    code_point_order = '{"\uffff":1,"\U00010000":2}'.encode()
    utf16_order = '{"\U00010000":2,"\uffff":1}'.encode()
    assert canonical_bytes(value) == utf16_order == bytes(rfc8785.dumps(value))
    require_canonical(utf16_order, value)
    assert same(parse_canonical(utf16_order), value)
    with pytest.raises(MalformedInput) as caught:
        require_canonical(code_point_order, value)
    assert caught.value.reason is ReasonCode.NON_CANONICAL
    assert reason(code_point_order, parse_canonical) is ReasonCode.NON_CANONICAL


VARIANTS = {
    "ascii_escapes": lambda v: json.dumps(v, sort_keys=True, separators=(",", ":")).encode(),
    "spaces": lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False).encode(),
    "indent": lambda v: json.dumps(v, sort_keys=True, indent=1, ensure_ascii=False).encode(),
    "reversed_keys": lambda v: json.dumps(
        _reverse(v), separators=(",", ":"), ensure_ascii=False
    ).encode(),
    "trailing_space": lambda v: canonical_bytes(v) + b" ",
}


def _reverse(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reverse(value[k]) for k in sorted(value, reverse=True)}
    if isinstance(value, list):
        return [_reverse(x) for x in value]
    return value


@settings(max_examples=100, deadline=None)
@given(json_values, st.sampled_from(sorted(VARIANTS)))
def test_only_the_canonical_bytes_are_accepted(value: Any, variant: str) -> None:
    raw = VARIANTS[variant](value)
    reference = canonical_bytes(value)
    if raw == reference:
        require_canonical(raw, value)
        assert same(parse_canonical(raw), value)
        return
    with pytest.raises(MalformedInput) as caught:
        require_canonical(raw, value)
    assert caught.value.reason is ReasonCode.NON_CANONICAL
    assert reason(raw, parse_canonical) is ReasonCode.NON_CANONICAL


# -- strict parsing: what must be rejected ---------------------------------------------------

floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**6), 10**6).flatmap(
        lambda i: st.sampled_from([f"{i}.0", f"{i}e0", f"{i}E+1", f"{i}e-1", f"{i}.5", f"{i}.0e2"])
    ),
    st.sampled_from(["-0.0", "0.0", "1E400", "-1e-400", "5e-324", "1.7976931348623157e308"]),
)


def _in_document(token: str) -> bytes:
    return f'{{"a":[1,{token}],"b":"x"}}'.encode()


@settings(max_examples=100, deadline=None)
@given(floats)
def test_floats_are_rejected(token: str) -> None:
    raw = _in_document(token)
    assert reason(raw) is ReasonCode.MALFORMED_JSON
    assert reason(raw, parse_canonical) is ReasonCode.MALFORMED_JSON


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "nan", "inf"])
def test_nan_and_infinity_are_rejected(token: str) -> None:
    assert reason(_in_document(token)) is ReasonCode.MALFORMED_JSON
    assert reason(_in_document(token), parse_canonical) is ReasonCode.MALFORMED_JSON


@settings(max_examples=100, deadline=None)
@given(texts, st.sampled_from(["flat", "nested", "escaped_spelling"]))
def test_duplicate_keys_are_rejected(key: str, where: str) -> None:
    k = json.dumps(key, ensure_ascii=False)
    if where == "flat":
        raw = f"{{{k}:1,{k}:1}}"
    elif where == "nested":
        raw = f'{{"outer":[{{{k}:true,"z":0,{k}:false}}]}}'
    else:  # the same key spelt once raw and once \u-escaped
        raw = f"{{{k}:1,{json.dumps(key, ensure_ascii=True)}:2}}"
    assert reason(raw.encode()) is ReasonCode.MALFORMED_JSON
    assert reason(raw.encode(), parse_canonical) is ReasonCode.MALFORMED_JSON


@settings(max_examples=100, deadline=None)
@given(st.integers(0xD800, 0xDFFF), st.sampled_from(["alone", "before_ascii", "reversed"]))
def test_lone_surrogates_are_rejected(code: int, where: str) -> None:
    escape = f"\\u{code:04x}"
    text = {
        "alone": escape,
        "before_ascii": escape + "\\u0041",
        # a low surrogate then a high one is not a pair either
        "reversed": f"\\u{0xDC00 | (code & 0x3FF):04x}\\u{0xD800 | (code & 0x3FF):04x}",
    }[where]
    raw = f'{{"k":"x{text}y"}}'.encode()
    assert reason(raw) is ReasonCode.MALFORMED_JSON
    assert reason(raw, parse_canonical) is ReasonCode.MALFORMED_JSON
    as_key = f'{{"{text}":1}}'.encode()
    assert reason(as_key) is ReasonCode.MALFORMED_JSON


def test_a_surrogate_pair_is_one_astral_character() -> None:
    assert parse_strict(b'["\\ud83d\\ude00"]') == ["\U0001f600"]
    assert reason(b'["\\ud83d\\ude00"]', parse_canonical) is ReasonCode.NON_CANONICAL
    assert parse_canonical('["\U0001f600"]'.encode()) == ["\U0001f600"]


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=MAX_SAFE_INT + 1, max_value=10**40)
    | st.integers(max_value=-MAX_SAFE_INT - 1, min_value=-(10**40))
)
@example(MAX_SAFE_INT + 1)
@example(-MAX_SAFE_INT - 1)
@example(2**64)
@example(-(2**63) - 1)
def test_integers_outside_the_i_json_range_are_rejected(number: int) -> None:
    raw = _in_document(str(number))
    assert reason(raw) is ReasonCode.MALFORMED_JSON
    assert reason(raw, parse_canonical) is ReasonCode.MALFORMED_JSON
    with pytest.raises(MalformedInput):
        canonical_bytes({"a": number})


@pytest.mark.parametrize("number", [MAX_SAFE_INT, -MAX_SAFE_INT, 0, -1])
def test_integers_at_the_edge_of_the_range_are_accepted(number: int) -> None:
    raw = _in_document(str(number))
    assert parse_strict(raw) == {"a": [1, number], "b": "x"}
    assert parse_canonical(raw) == {"a": [1, number], "b": "x"}


@settings(max_examples=100, deadline=None)
@given(
    st.text(
        alphabet="e\u0301\u0327\u00e9\u212b\u1e9b\u0323A\u030a\u0041\u0308", min_size=1, max_size=8
    ).filter(lambda s: not unicodedata.is_normalized("NFC", s))
)
def test_text_that_is_not_nfc_is_non_canonical(text: str) -> None:
    for raw in (
        json.dumps({"k": text}, ensure_ascii=False).encode(),
        json.dumps({text: 0}, ensure_ascii=False).encode(),
        json.dumps([text]).encode(),
    ):  # escaped spelling too
        assert reason(raw) is ReasonCode.NON_CANONICAL
        assert reason(raw, parse_canonical) is ReasonCode.NON_CANONICAL
    with pytest.raises(MalformedInput):
        canonical_bytes([text])


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff",
        b'"\xc3"',
        b'"\xed\xa0\x80"',
        b'"\xc0\xaf"',
        b'{"a":1',
        b"",
        b"[1,]",
        b"{'a':1}",
        b'{"a":01}',
        b"\x00",
        b'{"a":1}\x00',
    ],
    ids=[
        "lone_ff",
        "truncated_utf8",
        "encoded_surrogate",
        "overlong",
        "unterminated",
        "empty",
        "trailing_comma",
        "single_quotes",
        "leading_zero",
        "nul",
        "trailing_nul",
    ],
)
def test_malformed_bytes_are_rejected(raw: bytes) -> None:
    assert reason(raw) is ReasonCode.MALFORMED_JSON
    assert reason(raw, parse_canonical) is ReasonCode.MALFORMED_JSON


TOO_DEEP = b"[" * (MAX_DEPTH + 5) + b"]" * (MAX_DEPTH + 5)
JUST_DEEP_ENOUGH = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)


def test_nesting_deeper_than_max_depth_is_rejected_on_the_append_path() -> None:
    assert reason(TOO_DEEP, parse_canonical) is ReasonCode.MALFORMED_JSON
    assert reason(b'{"a":' + TOO_DEEP + b"}", parse_canonical) is ReasonCode.MALFORMED_JSON
    assert parse_canonical(JUST_DEEP_ENOUGH) is not None
    assert parse_strict(JUST_DEEP_ENOUGH) is not None


def test_parse_strict_rejects_nesting_deeper_than_max_depth() -> None:
    assert reason(TOO_DEEP) is ReasonCode.MALFORMED_JSON


@settings(max_examples=300, deadline=None)
@given(hostile_values)
@example({"a": 1.0})
@example({"a": -(2**53)})
@example({"a": "\ud800"})
@example({"a": "e\u0301"})
def test_canonical_bytes_refuses_exactly_what_the_rules_forbid(value: Any) -> None:
    expected: ReasonCode | None = None
    try:
        _check_value(value)
    except MalformedInput as exc:
        expected = exc.reason
    if expected is None:
        assert canonical_bytes(value) == bytes(rfc8785.dumps(value))
    else:
        with pytest.raises(MalformedInput) as caught:
            canonical_bytes(value)
        assert caught.value.reason is expected


def test_canonical_bytes_refuses_dates_and_subclasses() -> None:
    import datetime as dt

    class Text(str):
        pass

    for bad in ({"a": dt.datetime(2026, 1, 1)}, {"a": Text("x")}, {1: "x"}):
        with pytest.raises(MalformedInput):
            canonical_bytes(bad)
