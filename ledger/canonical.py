"""Strict JSON parsing and RFC 8785 canonical bytes.

Guarantees:
- `parse_strict` MUST reject: invalid UTF-8, duplicate object keys, floats (any number with a
  fraction or exponent), NaN/Infinity, integers outside the I-JSON range ±(2**53-1), lone
  surrogates, text that is not NFC-normalised, and nesting deeper than `MAX_DEPTH`.
- `canonical_bytes` is RFC 8785 (JCS) via the `rfc8785` package; it is what producers sign.
- `require_canonical(raw)` accepts `raw` only if it equals the canonical encoding of its own
  parse. A fast path (`json.dumps` with sorted keys) is used only to *accept* bytes that it
  reproduces exactly and that contain no 4-byte UTF-8 sequence (where UTF-16 key order and
  code-point key order could differ); any other case is decided by `rfc8785` itself. A property
  test pins the fast path to `rfc8785` on the accepted domain.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import rfc8785

from ledger.errors import MalformedInput
from ledger.reasons import ReasonCode

__all__ = ["MAX_DEPTH", "MAX_SAFE_INT", "canonical_bytes", "parse_strict", "require_canonical"]

MAX_SAFE_INT = 2**53 - 1
MAX_DEPTH = 32


def _reject_float(text: str) -> Any:
    raise MalformedInput(ReasonCode.MALFORMED_JSON, f"floats are not allowed: {text[:40]}")


def _reject_constant(text: str) -> Any:
    raise MalformedInput(ReasonCode.MALFORMED_JSON, f"{text} is not allowed")


def _parse_int(text: str) -> int:
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
    """Reject what I-JSON and our rules forbid inside an already-parsed value."""
    if depth > MAX_DEPTH:
        raise MalformedInput(ReasonCode.MALFORMED_JSON, f"nesting deeper than {MAX_DEPTH}")
    if isinstance(value, str):
        if not value.isascii():
            _check_str(value)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INT:
            raise MalformedInput(ReasonCode.MALFORMED_JSON, "integer out of I-JSON range")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise MalformedInput(ReasonCode.MALFORMED_JSON, "object keys must be strings")
            if not key.isascii():
                _check_str(key)
            _check_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_value(item, depth + 1)
    else:
        raise MalformedInput(
            ReasonCode.MALFORMED_JSON, f"{type(value).__name__} is not allowed (no floats)"
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
    if not raw.isascii() or b"\\u" in raw:
        _check_value(value)  # ASCII without escapes can hold only ASCII strings
    return value


_FOUR_BYTE_UTF8 = re.compile(rb"[\xf0-\xf4]")


def _fast_form(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 canonical bytes of `value` (which MUST satisfy `parse_strict`'s rules).

    Uses the fast form when it provably equals RFC 8785 (see the module docstring), else
    `rfc8785` itself.
    """
    _check_value(value)
    fast = _fast_form(value)
    if not _FOUR_BYTE_UTF8.search(fast):
        return fast
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
        raise MalformedInput(ReasonCode.MALFORMED_JSON, f"cannot canonicalise: {exc}") from None


def require_canonical(raw: bytes, value: Any) -> None:
    """Raise `MalformedInput(NON_CANONICAL)` unless `raw` is the RFC 8785 form of `value`."""
    if raw == _fast_form(value) and not _FOUR_BYTE_UTF8.search(raw):
        return
    if raw != canonical_bytes(value):
        raise MalformedInput(ReasonCode.NON_CANONICAL, "bytes are not the RFC 8785 canonical form")
