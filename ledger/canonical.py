"""Strict JSON parsing and RFC 8785 canonical bytes.

Guarantees:
- `parse_strict` MUST reject: invalid UTF-8, duplicate object keys, floats (any number with a
  fraction or exponent), NaN/Infinity, integers outside the I-JSON range ±(2**53-1), lone
  surrogates, text that is not NFC-normalised, and nesting deeper than `MAX_DEPTH`.
- `canonical_bytes` is RFC 8785 (JCS) via the `rfc8785` package; it is what producers sign.
- `require_canonical(raw)` accepts `raw` only if it equals the canonical encoding of its own
  parse; `parse_canonical(raw)` does both in one step (the hot path).
- Fast path: orjson with sorted keys (compact, raw UTF-8, short escapes for b t n f r,
  lowercase u00xx for other controls) produces exactly the RFC 8785 form for values that
  pass `_check_value` (strings, integers in the I-JSON range, booleans, null, arrays, objects)
  as long as the output has no 4-byte UTF-8 sequence (only then can UTF-16 key order differ
  from code-point order). Outside that case `rfc8785` decides. A Hypothesis property pins
  the fast path to `rfc8785`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import orjson
import rfc8785

from ledger.errors import MalformedInput
from ledger.reasons import ReasonCode

__all__ = [
    "MAX_DEPTH",
    "MAX_SAFE_INT",
    "canonical_bytes",
    "parse_canonical",
    "parse_strict",
    "require_canonical",
]

MAX_SAFE_INT = 2**53 - 1
MAX_DEPTH = 32


def _reject_float(text: str) -> Any:
    raise MalformedInput(ReasonCode.MALFORMED_JSON, f"floats are not allowed: {text[:40]}")


def _reject_constant(text: str) -> Any:
    raise MalformedInput(ReasonCode.MALFORMED_JSON, f"{text} is not allowed")


def _parse_int(text: str) -> int:
    if len(text) > 17:  # beyond ±(2**53-1) for sure; also spares int() a 4300-digit error
        raise MalformedInput(ReasonCode.MALFORMED_JSON, f"integer out of I-JSON range: {text[:40]}")
    value = int(text)
    if abs(value) > MAX_SAFE_INT:
        raise MalformedInput(ReasonCode.MALFORMED_JSON, f"integer out of I-JSON range: {text[:40]}")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise MalformedInput(ReasonCode.MALFORMED_JSON, f"duplicate key {dup!r}")
    return obj


_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates,
    parse_float=_reject_float,
    parse_constant=_reject_constant,
    parse_int=_parse_int,
)


def _check_value(value: Any, depth: int = 0) -> None:
    """Reject what I-JSON and our rules forbid inside an already-parsed value.

    Leaves are checked inline (this runs for every record on the hot path).
    """
    if depth > MAX_DEPTH:
        raise MalformedInput(ReasonCode.MALFORMED_JSON, f"nesting deeper than {MAX_DEPTH}")
    kind = type(value)
    if kind is dict:
        items: Any = value.items()
    elif kind is list:
        items = enumerate(value)
    else:
        _check_leaf(value)
        return
    for key, item in items:
        if type(key) is str and not key.isascii():
            _check_str(key)
        kind = type(item)
        if kind is str:
            if not item.isascii():
                _check_str(item)
        elif kind is dict or kind is list:
            _check_value(item, depth + 1)
        else:
            _check_leaf(item)


def _check_leaf(value: Any) -> None:
    kind = type(value)
    if kind is str:
        if not value.isascii():
            _check_str(value)
    elif kind is int:
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise MalformedInput(ReasonCode.MALFORMED_JSON, "integer out of I-JSON range")
    elif value is not None and kind is not bool:
        raise MalformedInput(
            ReasonCode.MALFORMED_JSON,
            f"{kind.__name__} is not allowed (no floats; integers only within ±(2**53-1))",
        )


def _check_str(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedInput(ReasonCode.MALFORMED_JSON, "lone surrogate in text") from None
    if not unicodedata.is_normalized("NFC", text):
        raise MalformedInput(ReasonCode.NON_CANONICAL, "text is not NFC-normalised")


def parse_strict(raw: bytes) -> Any:
    """Parse `raw` as strict I-JSON (see module docstring) or raise `MalformedInput`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedInput(ReasonCode.MALFORMED_JSON, f"not UTF-8: {exc.reason}") from None
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise MalformedInput(ReasonCode.MALFORMED_JSON, "nesting too deep") from None
    except json.JSONDecodeError as exc:
        raise MalformedInput(ReasonCode.MALFORMED_JSON, f"invalid JSON: {exc.msg}") from None
    _check_value(value)  # the careful path: always walk (depth, NFC, surrogates, range)
    return value


# A number with a fraction or an exponent: a digit directly followed by ".", "e" or "E". Only
# numbers hold digits outside strings (true/false/null hold none).
_FLOAT_TOKEN = re.compile(rb"[0-9][.eE]")


def _walk_needed(raw: bytes) -> bool:
    """False when the bytes alone prove what `_check_value` would check of their parse: no
    escapes (so no lone surrogates), at most `MAX_DEPTH` containers in all, no float, and
    NFC text. True means "walk the value" (it may still be fine)."""
    if b"\\" in raw or raw.count(b"{") + raw.count(b"[") > MAX_DEPTH:
        return True
    # without escapes, strings are simply "…": every other piece between quotes is outside
    if _FLOAT_TOKEN.search(b"".join(raw.split(b'"')[0::2])) is not None:
        return True
    return not raw.isascii() and not unicodedata.is_normalized("NFC", raw.decode("utf-8"))


def _has_four_byte_utf8(raw: bytes) -> bool:
    return not raw.isascii() and max(raw) >= 0xF0


def _fast_form(value: Any) -> bytes:
    """orjson with sorted keys: compact, UTF-8, JCS string escapes (see module docstring)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER)


_STRICT_DUMPS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_STRICT_INTEGER
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 canonical bytes of `value` (which MUST satisfy `parse_strict`'s rules).

    Uses the fast form when it provably equals RFC 8785 (see the module docstring), else
    `rfc8785` itself. The value walk runs only when the encoded bytes do not prove the rules
    (`_walk_needed`); whatever orjson refuses to encode (a lone surrogate, an integer past the
    I-JSON range, a non-string key, a date, a dataclass, a subclass of str/int/dict/list) is
    refused here too.
    """
    try:
        fast = orjson.dumps(value, option=_STRICT_DUMPS)
    except orjson.JSONEncodeError as exc:
        _check_value(value)  # names the reason where it can
        raise MalformedInput(ReasonCode.MALFORMED_JSON, f"cannot canonicalise: {exc}") from None
    if _walk_needed(fast):
        _check_value(value)
    if not _has_four_byte_utf8(fast):
        return fast
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
        raise MalformedInput(ReasonCode.MALFORMED_JSON, f"cannot canonicalise: {exc}") from None


def parse_canonical(raw: bytes, *, check_values: bool = True) -> Any:
    """Parse `raw` and require it to be canonical: the hot path of stage one and `verify`.

    Equivalent to `parse_strict` followed by `require_canonical`, with the same reasons: bytes
    that equal the canonical form of their own parse cannot hold duplicate keys (the re-encoded
    object would have fewer members), so the strict parser only runs to name the reason when
    the fast check fails. orjson parses ~5× faster than the standard library here, and the
    value walk (floats, range, NFC, surrogates, depth) is skipped when the bytes prove it
    (`_walk_needed`; integers beyond ±(2**53-1) fail the strict-integer re-encoding, or do not
    re-encode to the same bytes).

    `check_values=False` (used by `verify` on records that were fully checked at append and are
    covered by a signature since) skips the walk for floats and integer range when the bytes
    are ASCII without escapes; the canonical comparison itself always runs.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = parse_strict(raw)  # raises with the precise reason
    if _walk_needed(raw) if check_values else (not raw.isascii() or b"\\u" in raw):
        try:
            _check_value(value)  # floats (orjson turns huge integers into floats), NFC, range
        except MalformedInput:
            parse_strict(raw)  # names the reason of the first broken rule, as parsing meets it
            raise
    try:
        fast = _fast_form(value)
    except orjson.JSONEncodeError:  # an integer beyond the I-JSON range
        raise MalformedInput(ReasonCode.MALFORMED_JSON, "integer out of I-JSON range") from None
    if raw == fast and not _has_four_byte_utf8(raw):
        return value
    value = parse_strict(raw)  # duplicate keys are reported as malformed here
    require_canonical(raw, value)
    return value


def require_canonical(raw: bytes, value: Any) -> None:
    """Raise `MalformedInput(NON_CANONICAL)` unless `raw` is the RFC 8785 form of `value`."""
    if raw == _fast_form(value) and not _has_four_byte_utf8(raw):
        return
    if raw != canonical_bytes(value):
        raise MalformedInput(ReasonCode.NON_CANONICAL, "bytes are not the RFC 8785 canonical form")
