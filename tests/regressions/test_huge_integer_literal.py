"""An integer literal longer than Python's int-parsing limit (4300 digits, CPython >= 3.11)
must be rejected like any integer outside the I-JSON range: `malformed_json`, dead-lettered;
`submit` MUST NOT raise because of input, and `parse_strict` raises only `MalformedInput`.

Defect (fixed in 2cb86fe): int(text) in canonical._parse_int raised ValueError ("Exceeds the
limit (4300 digits) for integer string conversion") inside the JSON decoder; nothing caught it,
so it escaped parse_strict, Appender.submit (the ingester crashed on input) and verify.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger.canonical import parse_canonical, parse_strict
from ledger.errors import MalformedInput
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.reasons import ReasonCode
from tests.ledger._support import FP_PREFIX, FP_SCOPE, FP_SYSTEM, Feed

HUGE = b"9" * 5000  # fits easily in a 64 KiB record


@pytest.mark.parametrize("parse", [parse_strict, parse_canonical])
def test_parsers_reject_a_huge_integer_as_malformed(parse: Callable[[bytes], Any]) -> None:
    with pytest.raises(MalformedInput) as caught:
        parse(b'{"a":' + HUGE + b"}")
    assert caught.value.reason is ReasonCode.MALFORMED_JSON


def test_submit_dead_letters_a_record_with_a_huge_integer(tmp_path: Path) -> None:
    ledger = Ledger.init(tmp_path / "ledger")
    ledger.enrol_key("fp", "producer", FP_SCOPE)
    feed = Feed(FP_SYSTEM, Signer.from_file(ledger.key_path("fp")), FP_PREFIX)
    body = feed.body("2026-000001").replace(b'"stream_seq":1,', b'"stream_seq":' + HUGE + b",")
    record = feed.record(body)
    try:
        [outcome] = ledger.appender().submit([record])
        assert (outcome.status, outcome.reason) == ("rejected", ReasonCode.MALFORMED_JSON)
        assert [d["record"] for d in ledger.store.dead_letters()] == [record]
    finally:
        ledger.close()
