"""`verify`'s stream-id check computes UUIDv5 without the uuid module: it MUST agree with it."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import verify_checks
from ledger.store import STREAM_NAMESPACE


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_stream_hex_is_uuid5_of_the_stream_name(name: str) -> None:
    verify_checks._LAST_STREAM[0] = "\0not-a-stream"
    try:
        expected = uuid.uuid5(STREAM_NAMESPACE, name).hex
    except UnicodeEncodeError:  # lone surrogates cannot name a stream
        return
    assert verify_checks._stream_hex(name) == expected
    assert verify_checks._stream_hex(name) == expected  # remembered
