"""The stream id `verify` compares each row against is the store's: UUIDv5 of the stream name."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.store import STREAM_NAMESPACE, stream_id_hex


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_stream_id_hex_is_uuid5_of_the_stream_name(name: str) -> None:
    try:
        expected = uuid.uuid5(STREAM_NAMESPACE, name).hex
    except UnicodeEncodeError:  # lone surrogates cannot name a stream
        return
    assert stream_id_hex(name) == expected
    assert stream_id_hex(name) == expected  # cached
