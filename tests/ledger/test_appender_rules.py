"""Every append rule (DESIGN.md "Ledger append rules"), one reason code each.

Each rejection test checks the outcome's status and `ReasonCode`, that nothing was appended,
and that the record's exact bytes sit in the dead-letter table under that reason. A baseline
test shows the same builders produce records that are appended, so each rejection is caused by
the one defect the test introduces.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.appender import AppendConfig, Appender, Outcome
from ledger.canonical import canonical_bytes, parse_strict
from ledger.envelope import HEADER_LEN, SIGNING_PREFIX, SignedRecord, b64
from ledger.keys import Signer, generate_private_key
from ledger.ledger import Ledger
from ledger.reasons import ReasonCode
from ledger.registry import KeyScope
from tests.ledger._support import (
    FP_PREFIX,
    FP_SCOPE,
    FP_SYSTEM,
    Feed,
    body_of,
    digest_b64,
    registry_body,
    signed,
    verify_dir,
)

# -- helpers ---------------------------------------------------------------------------------


def submit(ledger: Ledger, *records: bytes) -> list[Outcome]:
    return ledger.appender().submit(list(records))


def dead_letter_reasons(ledger: Ledger, record: bytes) -> list[str]:
    return [d["reason"] for d in ledger.store.dead_letters(limit=100_000) if d["record"] == record]


def assert_rejected(ledger: Ledger, record: bytes, reason: ReasonCode) -> Outcome:
    before = ledger.store.max_position()
    [outcome] = submit(ledger, record)
    assert (outcome.status, outcome.reason) == ("rejected", reason), outcome
    assert ledger.store.max_position() == before, "a rejected record was appended"
    assert dead_letter_reasons(ledger, record) == [reason.value]
    return outcome


def assert_appended(ledger: Ledger, record: bytes) -> int:
    [outcome] = submit(ledger, record)
    assert outcome.status == "appended", outcome
    assert outcome.position == ledger.store.max_position()
    return outcome.position


def stored_records(ledger: Ledger, stream: str) -> list[bytes]:
    return [record for _, record in ledger.store.stream_rows(stream)]


def reshape(body: bytes, old: bytes, new: bytes) -> bytes:
    assert body.count(old) == 1, (old, body)
    return body.replace(old, new)


# -- baseline --------------------------------------------------------------------------------


def test_a_well_formed_record_is_appended_byte_for_byte(ledger: Ledger, feed: Feed) -> None:
    record = feed.next("2026-000001")
    position = assert_appended(ledger, record)
    assert ledger.store.stream_rows(FP_PREFIX + "2026-000001") == [(position, record)]
    assert ledger.store.dead_letters() == []


# -- size and framing ------------------------------------------------------------------------


def test_too_large_is_judged_on_the_whole_record_at_the_exact_limit(tmp_path: Path) -> None:
    def withdrawn_of_size(feed: Feed, size: int, name: str) -> bytes:
        probe = feed.record(feed.body(name, "matter.withdrawn", {"reason": "x", "final_seq": 1}))
        reason = "x" * (1 + size - len(probe))
        record = feed.record(
            feed.body(name, "matter.withdrawn", {"reason": reason, "final_seq": 1})
        )
        assert len(record) == size
        return record

    # a record of this shape (signed by any key) with a one-character reason is this long;
    # the limit is set so that it is reached within the schema's 500-character reason
    scratch = Feed(FP_SYSTEM, Signer(generate_private_key()), FP_PREFIX)
    shortest = len(
        scratch.record(
            scratch.body("2026-000001", "matter.withdrawn", {"reason": "x", "final_seq": 1})
        )
    )
    limit = shortest + 300
    with Ledger.init(tmp_path / "small", max_record_bytes=limit) as small:
        small.enrol_key("fp", "producer", FP_SCOPE)
        feed = Feed(FP_SYSTEM, Signer.from_file(small.key_path("fp")), FP_PREFIX)
        assert_appended(small, withdrawn_of_size(feed, limit, "2026-000001"))
        assert_rejected(
            small, withdrawn_of_size(feed, limit + 1, "2026-000002"), ReasonCode.TOO_LARGE
        )


def test_too_large_default_limit(ledger: Ledger, feed: Feed) -> None:
    body = feed.body("big", "matter.withdrawn", {"reason": "x" * 70_000, "final_seq": 1})
    assert_rejected(ledger, feed.record(body), ReasonCode.TOO_LARGE)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda r: b"NKE2" + r[4:], id="wrong_magic"),
        pytest.param(lambda r: r[4:], id="no_magic"),
        pytest.param(lambda r: r[:HEADER_LEN], id="header_without_body"),
        pytest.param(lambda r: r[:60], id="truncated_header"),
        pytest.param(lambda r: b"", id="empty"),
        pytest.param(lambda r: r[HEADER_LEN:], id="bare_body"),
    ],
)
def test_bad_framing(ledger: Ledger, feed: Feed, mangle: Callable[[bytes], bytes]) -> None:
    assert_rejected(ledger, mangle(feed.record(feed.body("2026-000001"))), ReasonCode.BAD_FRAMING)


# -- parse and canonical form ----------------------------------------------------------------

MALFORMED: dict[str, Callable[[bytes], bytes]] = {
    "duplicate_key": lambda b: b[:-1] + b',"v":1}',
    "duplicate_nested_key": lambda b: reshape(
        b, b'"role":"handler"', b'"role":"handler","role":"approver"'
    ),
    "float": lambda b: reshape(b, b'"v":1}', b'"v":1.0}'),
    "float_exponent": lambda b: reshape(b, b'"stream_seq":1,', b'"stream_seq":1e0,'),
    "nan": lambda b: reshape(b, b'"v":1}', b'"v":NaN}'),
    "infinity": lambda b: reshape(b, b'"v":1}', b'"v":-Infinity}'),
    "lone_high_surrogate": lambda b: reshape(b, b'"unit":"4403-01"', b'"unit":"\\ud800"'),
    "lone_low_surrogate": lambda b: reshape(b, b'"unit":"4403-01"', b'"unit":"x\\udc00y"'),
    "high_surrogate_then_ascii": lambda b: reshape(
        b, b'"unit":"4403-01"', b'"unit":"\\ud83d\\u0041"'
    ),
    "integer_2_53": lambda b: reshape(b, b'"stream_seq":1,', b'"stream_seq":9007199254740992,'),
    "integer_above_2_53": lambda b: reshape(
        b, b'"stream_seq":1,', b'"stream_seq":9007199254740993,'
    ),
    "negative_integer_below_range": lambda b: reshape(
        b, b'"channel":"hall"', b'"channel":-9007199254740992'
    ),
    "invalid_utf8": lambda b: reshape(b, b'"unit":"4403-01"', b'"unit":"4403-\xff1"'),
    "overlong_utf8": lambda b: reshape(b, b'"unit":"4403-01"', b'"unit":"\xc0\xaf"'),
    "truncated": lambda b: b[:-1],
    "trailing_garbage": lambda b: b + b"x",
    "nested_too_deep": lambda b: reshape(
        b, b'"channel":"hall"', b'"channel":' + b"[" * 40 + b"]" * 40
    ),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_json(ledger: Ledger, feed: Feed, name: str) -> None:
    body = MALFORMED[name](feed.body("2026-000001"))
    assert_rejected(ledger, feed.record(body), ReasonCode.MALFORMED_JSON)


def _json(value: object, **kwargs: object) -> bytes:
    return json.dumps(value, **kwargs).encode()  # type: ignore[arg-type]


def _withdrawn_with_reason(feed: Feed, reason: str) -> dict[str, object]:
    value = body_of(
        feed.record(
            feed.body("2026-000001", "matter.withdrawn", {"reason": "placeholder", "final_seq": 1})
        )
    )
    value["data"]["reason"] = reason  # type: ignore[index]
    return value


NON_CANONICAL: dict[str, Callable[[Feed], bytes]] = {
    "space_after_colon": lambda f: reshape(f.body("m"), b'"v":1}', b'"v": 1}'),
    "leading_space": lambda f: b" " + f.body("m"),
    "trailing_newline": lambda f: f.body("m") + b"\n",
    "pretty_printed": lambda f: _json(parse_strict(f.body("m")), indent=2, sort_keys=True),
    "unsorted_keys": lambda f: _json(
        dict(reversed(parse_strict(f.body("m")).items())), separators=(",", ":"), ensure_ascii=False
    ),
    "unsorted_nested_keys": lambda f: reshape(
        f.body("m"),
        b'"actor":{"official":"4403-00001","role":"handler","unit":"4403-01"}',
        b'"actor":{"unit":"4403-01","official":"4403-00001","role":"handler"}',
    ),
    "non_nfc_text": lambda f: _json(
        _withdrawn_with_reason(f, "de\u0301cision"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ),
    "escaped_non_ascii": lambda f: _json(
        _withdrawn_with_reason(f, "d\u00e9cision"), sort_keys=True, separators=(",", ":")
    ),
    "escaped_ascii": lambda f: reshape(f.body("m"), b'"role":"handler"', b'"role":"h\\u0061ndler"'),
    "escaped_solidus": lambda f: reshape(f.body("m"), b'"stream":"matter/', b'"stream":"matter\\/'),
    "minus_zero": lambda f: reshape(
        f.body("m", "matter.extension_approved"), b'"days":10', b'"days":-0'
    ),
}


@pytest.mark.parametrize("name", sorted(NON_CANONICAL))
def test_non_canonical(ledger: Ledger, feed: Feed, name: str) -> None:
    body = NON_CANONICAL[name](feed)
    parse_strict_ok = name != "non_nfc_text"
    if parse_strict_ok:  # same value as some canonical body: only the bytes are wrong
        assert canonical_bytes(parse_strict(body)) != body
    assert_rejected(ledger, feed.record(body), ReasonCode.NON_CANONICAL)


def test_nfc_text_in_canonical_form_is_appended(ledger: Ledger, feed: Feed) -> None:
    """The control for the two text cases above: NFC text, raw UTF-8, is fine."""
    body = canonical_bytes(_withdrawn_with_reason(feed, "d\u00e9cision 撤回 \U0001f600"))
    assert_appended(ledger, feed.record(body))


# -- schema ----------------------------------------------------------------------------------


def _drop(field: str) -> Callable[[Feed], bytes]:
    def build(f: Feed) -> bytes:
        value = parse_strict(f.body("m"))
        del value[field]
        return canonical_bytes(value)

    return build


def _set(path: tuple[str, ...], new: object) -> Callable[[Feed], bytes]:
    def build(f: Feed) -> bytes:
        value = parse_strict(f.body("m"))
        target = value
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = new
        return canonical_bytes(value)

    return build


SCHEMA_INVALID: dict[str, Callable[[Feed], bytes]] = {
    "missing_actor": _drop("actor"),
    "missing_data": _drop("data"),
    "missing_prev": _drop("prev"),
    "version_2": _set(("v",), 2),
    "stream_seq_0": _set(("stream_seq",), 0),
    "stream_seq_string": _set(("stream_seq",), "1"),
    "producer_seq_0": _set(("producer", "seq"), 0),
    "event_id_not_uuid": _set(("event_id",), "not-a-uuid"),
    "occurred_at_not_utc": _set(("occurred_at",), "2026-11-02 09:30:00+08:00"),
    "stream_without_slash": _set(("stream",), "matter"),
    "extra_envelope_field": _set(("colour",), "red"),
    "extra_data_field": _set(("data", "colour"), "red"),
    "enum_violated": _set(("data", "matter_type"), "teleportation"),
    "prev_at_seq_1": lambda f: f.body("m", prev=digest_b64(b"anything")),
    "prev_null_at_seq_2": lambda f: f.body("m", stream_seq=2, prev=None),
    "concluded_without_final_seq": lambda f: f.body(
        "m", "matter.concluded", {"outcome": "granted"}
    ),
    "unknown_type_with_bad_envelope": lambda f: canonical_bytes(
        {
            k: v
            for k, v in parse_strict(f.body("m", "matter.teleported", {})).items()
            if k != "actor"
        }
    ),
    "array_not_object": lambda f: b"[]",
    "number_not_object": lambda f: b"1",
}


@pytest.mark.parametrize("name", sorted(SCHEMA_INVALID))
def test_schema_invalid(ledger: Ledger, feed: Feed, name: str) -> None:
    body = SCHEMA_INVALID[name](feed)
    assert canonical_bytes(parse_strict(body)) == body  # canonical: the schema is the defect
    assert_rejected(ledger, feed.record(body), ReasonCode.SCHEMA_INVALID)


def test_unknown_type(ledger: Ledger, feed: Feed) -> None:
    record = feed.record(feed.body("2026-000001", "matter.teleported", {}))
    assert_rejected(ledger, record, ReasonCode.UNKNOWN_TYPE)


# -- keys and signatures ---------------------------------------------------------------------


def test_unknown_key(ledger: Ledger, feed: Feed) -> None:
    stranger = Signer(generate_private_key())
    assert_rejected(ledger, feed.record(feed.body("2026-000001"), stranger), ReasonCode.UNKNOWN_KEY)


def test_revoked_key(ledger: Ledger, feed: Feed) -> None:
    old_id = ledger.enrol_key("fp-old", "producer", FP_SCOPE)
    old = Signer.from_file(ledger.key_path("fp-old"))
    assert_appended(ledger, feed.next("2026-000001"))
    ledger.revoke_key(old_id, "compromised")
    assert_rejected(ledger, feed.record(feed.body("2026-000002"), old), ReasonCode.REVOKED_KEY)
    # the same body, signed by the key still in force, is fine
    body = feed.body("2026-000002")
    assert_appended(ledger, feed.record(body))


OUT_OF_SCOPE: dict[str, dict[str, object]] = {
    "other_producer_system": {"system": "4403-ctais"},
    "stream_outside_prefix": {"stream": "matter/4403-zg/2026-000001"},
    "prefix_is_not_a_substring_match": {"stream": "other/matter/4403-fp/2026-000001"},
    "registry_stream": {
        "stream": "ledger/keys",
        "type": "key.revoked",
        "data": {"key_id": "0" * 64, "reason": "retired"},
    },
}


@pytest.mark.parametrize("name", sorted(OUT_OF_SCOPE))
def test_out_of_scope(ledger: Ledger, feed: Feed, name: str) -> None:
    override = dict(OUT_OF_SCOPE[name])
    type_ = str(override.pop("type", "matter.accepted"))
    data = override.pop("data", None)
    body = feed.body("2026-000001", type_, data, **override)  # type: ignore[arg-type]
    assert_rejected(ledger, feed.record(body), ReasonCode.OUT_OF_SCOPE)


def test_out_of_scope_event_type(ledger: Ledger) -> None:
    ledger.enrol_key("acc", "producer", KeyScope(FP_SYSTEM, (FP_PREFIX,), ("matter.accepted",)))
    feed = Feed(FP_SYSTEM, Signer.from_file(ledger.key_path("acc")), FP_PREFIX)
    assert_appended(ledger, feed.next("2026-000001"))
    assert_rejected(
        ledger,
        feed.record(feed.body("2026-000001", "matter.step_completed")),
        ReasonCode.OUT_OF_SCOPE,
    )


def _flip_bit(signature: bytes) -> bytes:
    return signature[:13] + bytes([signature[13] ^ 1]) + signature[14:]


BAD_SIGNATURES: dict[str, Callable[[Feed, bytes], bytes]] = {
    "one_bit_flipped": lambda f, body: SignedRecord(
        f.signer.key_id, _flip_bit(f.signer.sign(body).signature), body
    ).encode(),
    "zero_signature": lambda f, body: SignedRecord(f.signer.key_id, bytes(64), body).encode(),
    "another_key_under_this_key_id": lambda f, body: SignedRecord(
        f.signer.key_id, Signer(generate_private_key()).sign(body).signature, body
    ).encode(),
    "signature_of_another_body": lambda f, body: SignedRecord(
        f.signer.key_id, f.signer.sign(f.body("other")).signature, body
    ).encode(),
    "no_domain_separation_prefix": lambda f, body: SignedRecord(
        f.signer.key_id, f.signer.private_key.sign(body), body
    ).encode(),
    "prefix_of_another_domain": lambda f, body: SignedRecord(
        f.signer.key_id, f.signer.private_key.sign(b"neikong/checkpoint/v1\n" + body), body
    ).encode(),
}


@pytest.mark.parametrize("name", sorted(BAD_SIGNATURES))
def test_bad_signature(ledger: Ledger, feed: Feed, name: str) -> None:
    body = feed.body("2026-000001")
    assert SIGNING_PREFIX == b"neikong/event/v1\n"
    assert_rejected(ledger, BAD_SIGNATURES[name](feed, body), ReasonCode.BAD_SIGNATURE)
    assert_appended(ledger, feed.record(body))  # control: the body itself was fine


def test_first_broken_rule_names_the_reason(ledger: Ledger, feed: Feed) -> None:
    stranger = Signer(generate_private_key())
    cases = [
        # non-canonical and unknown key: the canonical check comes first
        (feed.record(feed.body("m") + b"\n", stranger), ReasonCode.NON_CANONICAL),
        # schema-invalid and bad signature
        (
            SignedRecord(feed.signer.key_id, bytes(64), SCHEMA_INVALID["version_2"](feed)).encode(),
            ReasonCode.SCHEMA_INVALID,
        ),
        # out of scope and bad signature: the key check comes first
        (
            SignedRecord(
                feed.signer.key_id, bytes(64), feed.body("m", system="4403-ctais")
            ).encode(),
            ReasonCode.OUT_OF_SCOPE,
        ),
        # too large and not even framed
        (b"X" * (70 * 1024), ReasonCode.TOO_LARGE),
    ]
    outcomes = submit(ledger, *(record for record, _ in cases))
    assert [(o.status, o.reason) for o in outcomes] == [("rejected", r) for _, r in cases]


# -- idempotency, streams, producers ---------------------------------------------------------


def test_event_id_conflict_same_stream_and_seq(ledger: Ledger, feed: Feed) -> None:
    first = feed.body("2026-000001")
    assert_appended(ledger, feed.record(first))
    value = parse_strict(first)
    value["occurred_at"] = "2026-11-02T01:31:00Z"
    assert_rejected(ledger, feed.record(canonical_bytes(value)), ReasonCode.EVENT_ID_CONFLICT)


def test_event_id_conflict_in_another_stream(ledger: Ledger, feed: Feed) -> None:
    first = feed.next("2026-000001")
    assert_appended(ledger, first)
    reused = feed.body("2026-000002", event_id=body_of(first)["event_id"])
    assert_rejected(ledger, feed.record(reused), ReasonCode.EVENT_ID_CONFLICT)


def test_event_id_conflict_within_one_batch(ledger: Ledger, feed: Feed) -> None:
    first = feed.body("2026-000001")
    clash = feed.body("2026-000002", event_id=parse_strict(first)["event_id"])
    outcomes = submit(ledger, feed.record(first), feed.record(clash))
    assert [(o.status, o.reason) for o in outcomes] == [
        ("appended", None),
        ("rejected", ReasonCode.EVENT_ID_CONFLICT),
    ]
    assert dead_letter_reasons(ledger, feed.record(clash)) == ["event_id_conflict"]


def test_event_id_conflict_with_a_parked_record(ledger: Ledger, feed: Feed) -> None:
    early = feed.body("2026-000001", stream_seq=3, prev=digest_b64(b"two"))
    [parked] = submit(ledger, feed.record(early))
    assert parked.status == "parked"
    clash = feed.body("2026-000009", event_id=parse_strict(early)["event_id"])
    assert_rejected(ledger, feed.record(clash), ReasonCode.EVENT_ID_CONFLICT)


def test_fork_same_stream_and_seq_other_bytes(ledger: Ledger, feed: Feed) -> None:
    assert_appended(ledger, feed.next("2026-000001"))
    assert_appended(ledger, feed.next("2026-000001", "matter.step_completed"))
    rival = feed.body("2026-000001", stream_seq=1, prev=None, data={"matter_type": "penalty"})
    outcome = assert_rejected(ledger, feed.record(rival), ReasonCode.FORK)
    assert outcome.stream == FP_PREFIX + "2026-000001"
    assert len(stored_records(ledger, FP_PREFIX + "2026-000001")) == 2


def test_fork_within_one_batch(ledger: Ledger, feed: Feed) -> None:
    one = feed.body("2026-000001")
    rival = feed.body("2026-000001", producer_seq=2, data={"matter_type": "penalty"})
    outcomes = submit(ledger, feed.record(one), feed.record(rival))
    assert [(o.status, o.reason) for o in outcomes] == [
        ("appended", None),
        ("rejected", ReasonCode.FORK),
    ]


def test_chain_break(ledger: Ledger, feed: Feed) -> None:
    assert_appended(ledger, feed.next("2026-000001"))
    wrong_prev = feed.body("2026-000001", "matter.step_completed", prev=digest_b64(b"forged"))
    assert_rejected(ledger, feed.record(wrong_prev), ReasonCode.CHAIN_BREAK)
    # prev naming the right digest of the wrong encoding (the whole record, not the body)
    record_digest = feed.body(
        "2026-000001",
        "matter.step_completed",
        prev=digest_b64(stored_records(ledger, FP_PREFIX + "2026-000001")[0]),
    )
    assert_rejected(ledger, feed.record(record_digest), ReasonCode.CHAIN_BREAK)
    assert_appended(ledger, feed.next("2026-000001", "matter.step_completed"))


def test_post_closure_append(ledger: Ledger, feed: Feed) -> None:
    assert_appended(ledger, feed.next("2026-000001"))
    assert_appended(ledger, feed.next("2026-000001", "matter.concluded"))
    assert_rejected(
        ledger,
        feed.record(feed.body("2026-000001", "matter.step_completed")),
        ReasonCode.POST_CLOSURE,
    )
    # a later seq after the closure is rejected too, not parked as a gap
    assert_rejected(
        ledger,
        feed.record(
            feed.body("2026-000001", "matter.step_completed", stream_seq=5, prev=digest_b64(b"x"))
        ),
        ReasonCode.POST_CLOSURE,
    )
    assert ledger.store.parked() == []


@pytest.mark.parametrize("terminal", ["matter.concluded", "matter.withdrawn"])
@pytest.mark.parametrize("final_seq", [1, 3])
def test_bad_final_seq(ledger: Ledger, feed: Feed, terminal: str, final_seq: int) -> None:
    assert_appended(ledger, feed.next("2026-000001"))
    data = {"outcome": "granted"} if terminal == "matter.concluded" else {"reason": "withdrawn"}
    body = feed.body("2026-000001", terminal, {**data, "final_seq": final_seq})
    assert_rejected(ledger, feed.record(body), ReasonCode.BAD_FINAL_SEQ)
    # the stream stays open: the right terminal event closes it
    assert_appended(ledger, feed.next("2026-000001", terminal, {**data, "final_seq": 2}))


def test_producer_seq_reused(ledger: Ledger, feed: Feed) -> None:
    assert_appended(ledger, feed.next("2026-000001"))
    assert_appended(ledger, feed.next("2026-000002"))
    for seq in (1, 2):
        assert_rejected(
            ledger,
            feed.record(feed.body("2026-000003", producer_seq=seq)),
            ReasonCode.PRODUCER_SEQ_REUSED,
        )
    assert_appended(ledger, feed.next("2026-000003"))


def test_registry_invalid(ledger: Ledger, fp_signer: Signer) -> None:
    admin = ledger.admin_signer()
    again = registry_body(
        ledger,
        "key.enrolled",
        {
            "key": {"key_id": fp_signer.key_id.hex(), "public_key": b64(fp_signer.public_raw)},
            "purpose": "producer",
            "scope": FP_SCOPE.to_json(),
        },
    )
    assert_rejected(ledger, signed(admin, again), ReasonCode.REGISTRY_INVALID)
    root_revoked = registry_body(
        ledger, "key.revoked", {"key_id": ledger.config.root_key_id, "reason": "retired"}
    )
    assert_rejected(ledger, signed(admin, root_revoked), ReasonCode.REGISTRY_INVALID)


def test_park_limit(ledger: Ledger, feed: Feed) -> None:
    appender = Appender(ledger.store, ledger.registry, AppendConfig(park_limit=1))
    first = feed.body("2026-000001", stream_seq=3, prev=digest_b64(b"2"), producer_seq=3)
    second = feed.body("2026-000002", stream_seq=3, prev=digest_b64(b"2"), producer_seq=4)
    outcomes = appender.submit([feed.record(first), feed.record(second)])
    assert [(o.status, o.reason) for o in outcomes] == [
        ("parked", None),
        ("rejected", ReasonCode.PARK_LIMIT),
    ]
    assert dead_letter_reasons(ledger, feed.record(second)) == ["park_limit"]


# -- duplicates and gaps ---------------------------------------------------------------------


def test_same_record_twice_is_a_duplicate_and_stored_once(ledger: Ledger, feed: Feed) -> None:
    record = feed.next("2026-000001")
    later = feed.next("2026-000001", "matter.step_completed")
    in_batch = submit(ledger, record, record)
    assert [o.status for o in in_batch] == ["appended", "duplicate"]
    top = ledger.store.max_position()
    assert [o.status for o in submit(ledger, record)] == ["duplicate"]
    assert_appended(ledger, later)
    assert [o.status for o in submit(ledger, record, later, record)] == ["duplicate"] * 3
    assert ledger.store.max_position() == top + 1
    assert stored_records(ledger, FP_PREFIX + "2026-000001") == [record, later]
    assert ledger.store.dead_letters() == []


def test_stream_gap_is_parked_then_appended_in_order(ledger: Ledger, feed: Feed) -> None:
    stream = FP_PREFIX + "2026-000001"
    one, two, three = (
        feed.next("2026-000001", t)
        for t in ("matter.accepted", "matter.step_completed", "matter.step_completed")
    )
    assert_appended(ledger, one)
    [outcome] = submit(ledger, three)
    assert outcome.status == "parked"
    assert "stream gap" in outcome.detail
    assert [p.record for p in ledger.store.parked()] == [three]
    assert [o.status for o in submit(ledger, three)] == ["parked"]  # resent while parked
    assert len(ledger.store.parked()) == 1
    assert stored_records(ledger, stream) == [one]

    assert [o.status for o in submit(ledger, two)] == ["appended"]
    rows = ledger.store.stream_rows(stream)
    assert [r for _, r in rows] == [one, two, three]
    assert [p for p, _ in rows] == sorted(p for p, _ in rows)
    assert ledger.store.parked() == []
    assert [o.status for o in submit(ledger, three)] == ["duplicate"]


def test_producer_gap_is_parked_then_appended(ledger: Ledger, feed: Feed) -> None:
    a = feed.body("2026-000001")
    b = feed.body("2026-000002", producer_seq=2)
    [outcome] = submit(ledger, feed.record(b))
    assert outcome.status == "parked"
    assert "producer gap" in outcome.detail
    assert [o.status for o in submit(ledger, feed.record(a))] == ["appended"]
    positions = {
        body_of(r)["producer"]["seq"]: p
        for p, r in ledger.store.stream_rows(FP_PREFIX + "2026-000001")
        + ledger.store.stream_rows(FP_PREFIX + "2026-000002")
    }
    assert positions[1] < positions[2]
    assert ledger.store.parked() == []


def test_parked_records_survive_a_restart(tmp_path: Path) -> None:
    directory = tmp_path / "restart"
    with Ledger.init(directory) as first:
        first.enrol_key("fp", "producer", FP_SCOPE)
        feed = Feed(FP_SYSTEM, Signer.from_file(first.key_path("fp")), FP_PREFIX)
        one, two = feed.next("2026-000001"), feed.next("2026-000001", "matter.step_completed")
        assert [o.status for o in first.appender().submit([two])] == ["parked"]
    with Ledger.open(directory) as second:
        assert [o.status for o in second.appender().submit([one])] == ["appended"]
        assert stored_records(second, FP_PREFIX + "2026-000001") == [one, two]
        assert second.store.parked() == []
    assert verify_dir(directory).intact


# -- nothing rejected is lost ----------------------------------------------------------------


def test_every_rejection_in_one_batch_is_dead_lettered_byte_for_byte(
    ledger: Ledger, feed: Feed
) -> None:
    revoked_id = ledger.enrol_key("old", "producer", FP_SCOPE)
    old = Signer.from_file(ledger.key_path("old"))
    ledger.revoke_key(revoked_id, "retired")
    open_one = feed.next("2026-000001")
    closed_one, closed_two = feed.next("2026-000002"), feed.next("2026-000002", "matter.concluded")
    assert [o.status for o in submit(ledger, open_one, closed_one, closed_two)] == ["appended"] * 3

    stranger = Signer(generate_private_key())
    e = feed.body  # every body below is built against the state above, not advanced
    bad: list[tuple[bytes, ReasonCode]] = [
        (b"X" * (65 * 1024), ReasonCode.TOO_LARGE),
        (b"NKE0" + bytes(200), ReasonCode.BAD_FRAMING),
        (feed.record(MALFORMED["duplicate_key"](e("2026-000010"))), ReasonCode.MALFORMED_JSON),
        (feed.record(e("2026-000010") + b" "), ReasonCode.NON_CANONICAL),
        (feed.record(SCHEMA_INVALID["version_2"](feed)), ReasonCode.SCHEMA_INVALID),
        (feed.record(e("2026-000010", "matter.teleported", {})), ReasonCode.UNKNOWN_TYPE),
        (feed.record(e("2026-000010"), stranger), ReasonCode.UNKNOWN_KEY),
        (feed.record(e("2026-000010"), old), ReasonCode.REVOKED_KEY),
        (feed.record(e("2026-000010", system="4403-ctais")), ReasonCode.OUT_OF_SCOPE),
        (BAD_SIGNATURES["zero_signature"](feed, e("2026-000010")), ReasonCode.BAD_SIGNATURE),
        (
            feed.record(e("2026-000010", event_id=body_of(open_one)["event_id"])),
            ReasonCode.EVENT_ID_CONFLICT,
        ),
        (feed.record(e("2026-000001", stream_seq=1, prev=None)), ReasonCode.FORK),
        (
            feed.record(e("2026-000001", "matter.step_completed", prev=digest_b64(b"x"))),
            ReasonCode.CHAIN_BREAK,
        ),
        (feed.record(e("2026-000002", "matter.step_completed")), ReasonCode.POST_CLOSURE),
        (
            feed.record(
                e("2026-000001", "matter.concluded", {"outcome": "granted", "final_seq": 9})
            ),
            ReasonCode.BAD_FINAL_SEQ,
        ),
        (feed.record(e("2026-000011", producer_seq=2)), ReasonCode.PRODUCER_SEQ_REUSED),
    ]
    good = feed.next("2026-000001", "matter.step_completed")
    outcomes = submit(ledger, *(record for record, _ in bad), good)
    assert [(o.status, o.reason) for o in outcomes] == [
        *(("rejected", r) for _, r in bad),
        ("appended", None),
    ]

    letters = ledger.store.dead_letters(limit=100_000)
    assert sorted((d["record"], d["reason"]) for d in letters) == sorted(
        (record, reason.value) for record, reason in bad
    )
    assert stored_records(ledger, FP_PREFIX + "2026-000001") == [open_one, good]
    assert verify_dir(ledger.directory).intact


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_corrupted_records_are_rejected_and_kept_never_raised(
    ledger: Ledger, feed: Feed, data: st.DataObject
) -> None:
    """A single corrupted byte anywhere: `submit` returns (never raises), nothing is
    appended, and the corrupted bytes are in the dead-letter table under the outcome's reason."""
    body = feed.body(
        f"2026-{data.draw(st.integers(1, 999_999)):06d}",
        data.draw(st.sampled_from(["matter.accepted", "matter.withdrawn"])),
    )
    record = feed.record(body)
    index = data.draw(st.integers(0, len(record) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    corrupted = record[:index] + bytes([record[index] ^ flip]) + record[index + 1 :]
    before = ledger.store.max_position()
    [outcome] = submit(ledger, corrupted)
    assert outcome.status == "rejected", outcome
    assert outcome.reason is not None
    assert ledger.store.max_position() == before
    assert outcome.reason.value in dead_letter_reasons(ledger, corrupted)
