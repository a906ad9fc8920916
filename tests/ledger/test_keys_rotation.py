"""Key validity is judged at the log position where an event enters (DESIGN.md "Keys").

A key enrolled at position e signs validly at positions e < p < r, where r is the position of
its rotation or revocation. Events appended before r stay valid for ever (verify intact); events
entering after r are rejected at ingest (`revoked_key`) and flagged by `verify` if written into
the store behind the appender's back. Registry events need an admin key.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.envelope import b64
from ledger.findings import FindingKind
from ledger.keys import Signer, generate_private_key
from ledger.ledger import Ledger
from ledger.reasons import ReasonCode
from ledger.registry import ADMIN_SCOPE, ADMIN_SYSTEM, REGISTRY_STREAM, KeyScope
from ledger.store import stream_uuid
from tests.ledger._support import (
    FP_PREFIX,
    FP_SCOPE,
    FP_SYSTEM,
    Db,
    Feed,
    copy_ledger,
    registry_body,
    signed,
    verify_dir,
)


def statuses(ledger: Ledger, *records: bytes) -> list[tuple[str, ReasonCode | None]]:
    return [(o.status, o.reason) for o in ledger.appender().submit(list(records))]


def dead_reasons(ledger: Ledger, record: bytes) -> list[str]:
    return [d["reason"] for d in ledger.store.dead_letters() if d["record"] == record]


def end_key(ledger: Ledger, key_id: bytes, how: str) -> Signer:
    """Rotate (returning the successor) or revoke (enrolling a replacement) `key_id`."""
    if how == "rotate":
        new_id = ledger.rotate_key(key_id, "fp-next")
    else:
        ledger.revoke_key(key_id, "compromised")
        new_id = ledger.enrol_key("fp-next", "producer", FP_SCOPE)
    successor = Signer.from_file(ledger.key_path("fp-next"))
    assert successor.key_id == new_id
    return successor


@pytest.mark.parametrize("how", ["rotate", "revoke"])
def test_old_key_rejected_after_its_end_new_key_accepted_history_intact(
    ledger: Ledger, feed: Feed, how: str
) -> None:
    old = feed.signer
    before = [
        feed.next("2026-000001"),
        feed.next("2026-000002"),
        feed.next("2026-000001", "matter.step_completed"),
    ]
    assert statuses(ledger, *before) == [("appended", None)] * 3
    ended_at_least = ledger.store.max_position() + 1

    new = end_key(ledger, old.key_id, how)
    entry = ledger.registry.lookup(old.key_id)
    assert entry is not None
    assert entry.ended_at is not None
    assert entry.ended_at >= ended_at_least
    assert entry.end_reason == ("rotated" if how == "rotate" else "revoked")

    body = feed.body("2026-000001", "matter.concluded")
    by_old = feed.record(body, old)
    assert statuses(ledger, by_old) == [("rejected", ReasonCode.REVOKED_KEY)]
    assert dead_reasons(ledger, by_old) == ["revoked_key"]
    # a brand-new stream by the old key: rejected as well
    assert statuses(ledger, feed.record(feed.body("2026-000003"), old)) == [
        ("rejected", ReasonCode.REVOKED_KEY)
    ]

    assert statuses(ledger, feed.record(body, new)) == [("appended", None)]
    feed.commit(body)
    assert statuses(ledger, feed.record(feed.body("2026-000003"), new)) == [("appended", None)]

    report = verify_dir(ledger.directory, workers=2)
    assert report.intact, report.findings
    assert report.events == ledger.store.max_position()
    # the old key's events are still in the log, where they were
    stored = [r for _, r in ledger.store.stream_rows(FP_PREFIX + "2026-000001")]
    assert stored[:2] == [before[0], before[2]]


@pytest.mark.parametrize("how", ["rotate", "revoke"])
def test_verify_flags_an_old_key_event_written_after_the_end(
    ledger: Ledger, feed: Feed, tmp_path: Path, how: str
) -> None:
    """The record the appender refused, written straight into the store with a consistent
    chain: `verify` must judge the key at that position, not by the signature alone."""
    old = feed.signer
    assert statuses(ledger, feed.next("2026-000001")) == [("appended", None)]
    end_key(ledger, old.key_id, how)
    late = feed.body("2026-000001", "matter.step_completed")
    record = feed.record(late, old)
    assert statuses(ledger, record) == [("rejected", ReasonCode.REVOKED_KEY)]

    copy = copy_ledger(ledger.directory, tmp_path / "forged")
    with Db(copy) as db:
        position = db.insert(stream_uuid(FP_PREFIX + "2026-000001").hex, 2, record)
    report = verify_dir(copy)
    assert not report.intact
    assert set(report.finding_counts) == {"revoked_key"}, report.findings
    [finding] = report.findings
    assert (finding.kind, finding.position) == (FindingKind.REVOKED_KEY, position)
    assert verify_dir(ledger.directory).intact  # the original is untouched


def test_event_parked_before_rotation_is_judged_where_it_enters(ledger: Ledger, feed: Feed) -> None:
    """Signed by the old key while valid, but parked behind a gap until after the rotation:
    its position is after the rotation, so it is rejected then (and dead-lettered)."""
    old = feed.signer
    one = feed.next("2026-000001")
    two = feed.body("2026-000001", "matter.step_completed")
    feed.commit(two)
    three = feed.next("2026-000001", "matter.step_completed")
    assert statuses(ledger, one, three) == [("appended", None), ("parked", None)]

    new = end_key(ledger, old.key_id, "rotate")
    assert statuses(ledger, feed.record(two, new)) == [("appended", None)]
    assert dead_reasons(ledger, three) == ["revoked_key"]
    assert ledger.store.parked() == []
    assert len(ledger.store.stream_rows(FP_PREFIX + "2026-000001")) == 2
    assert verify_dir(ledger.directory).intact


def test_key_is_valid_only_after_its_enrolment_position_in_the_same_batch(
    ledger: Ledger,
) -> None:
    """An enrolment and events by the new key in one batch: before it, unknown; after, fine."""
    key = Signer(generate_private_key())
    enrolment = registry_body(
        ledger,
        "key.enrolled",
        {
            "key": {"key_id": key.key_id.hex(), "public_key": b64(key.public_raw)},
            "purpose": "producer",
            "scope": FP_SCOPE.to_json(),
        },
    )
    feed = Feed(FP_SYSTEM, key, FP_PREFIX)
    early = feed.body("2026-000001")
    feed.commit(early)
    late = feed.body("2026-000002", producer_seq=1)
    results = statuses(
        ledger, feed.record(early), signed(ledger.admin_signer(), enrolment), feed.record(late)
    )
    assert results == [("rejected", ReasonCode.UNKNOWN_KEY), ("appended", None), ("appended", None)]
    assert verify_dir(ledger.directory).intact


def _enrol_body(ledger: Ledger, purpose: str = "producer") -> bytes:
    newcomer = Signer(generate_private_key())
    return registry_body(
        ledger,
        "key.enrolled",
        {
            "key": {"key_id": newcomer.key_id.hex(), "public_key": b64(newcomer.public_raw)},
            "purpose": purpose,
            "scope": FP_SCOPE.to_json(),
        },
    )


def test_registry_events_signed_by_a_producer_key_are_rejected(ledger: Ledger, feed: Feed) -> None:
    assert statuses(ledger, feed.next("2026-000001")) == [("appended", None)]
    body = _enrol_body(ledger)
    assert statuses(ledger, signed(feed.signer, body)) == [("rejected", ReasonCode.OUT_OF_SCOPE)]
    revoke_self = registry_body(
        ledger, "key.revoked", {"key_id": feed.signer.key_id.hex(), "reason": "retired"}
    )
    assert statuses(ledger, signed(feed.signer, revoke_self)) == [
        ("rejected", ReasonCode.OUT_OF_SCOPE)
    ]
    # control: the same enrolment body signed by the root key is appended
    assert statuses(ledger, signed(ledger.admin_signer(), body)) == [("appended", None)]
    assert verify_dir(ledger.directory).intact


def test_a_producer_key_scoped_to_the_registry_still_cannot_sign_registry_events(
    ledger: Ledger,
) -> None:
    ledger.enrol_key("sneaky", "producer", KeyScope(ADMIN_SYSTEM, (REGISTRY_STREAM,), ("*",)))
    sneaky = Signer.from_file(ledger.key_path("sneaky"))
    body = _enrol_body(ledger)
    outcome = ledger.appender().submit([signed(sneaky, body)])[0]
    assert (outcome.status, outcome.reason) == ("rejected", ReasonCode.OUT_OF_SCOPE)
    assert "may not sign registry events" in outcome.detail


def test_an_enrolled_admin_key_signs_registry_events_until_revoked(ledger: Ledger) -> None:
    deputy_id = ledger.enrol_key("deputy", "admin", ADMIN_SCOPE)
    deputy = Signer.from_file(ledger.key_path("deputy"))
    assert statuses(ledger, signed(deputy, _enrol_body(ledger))) == [("appended", None)]
    ledger.revoke_key(deputy_id, "retired")
    assert statuses(ledger, signed(deputy, _enrol_body(ledger))) == [
        ("rejected", ReasonCode.REVOKED_KEY)
    ]
    assert verify_dir(ledger.directory).intact


def test_rotated_key_cannot_be_rotated_or_revoked_again(ledger: Ledger, feed: Feed) -> None:
    old_id = feed.signer.key_id
    ledger.rotate_key(old_id, "fp-next")
    admin = ledger.admin_signer()
    again = registry_body(ledger, "key.revoked", {"key_id": old_id.hex(), "reason": "retired"})
    assert statuses(ledger, signed(admin, again)) == [("rejected", ReasonCode.REGISTRY_INVALID)]
    key = Signer(generate_private_key())
    rerotate = registry_body(
        ledger,
        "key.rotated",
        {
            "old_key_id": old_id.hex(),
            "key": {"key_id": key.key_id.hex(), "public_key": b64(key.public_raw)},
        },
    )
    assert statuses(ledger, signed(admin, rerotate)) == [("rejected", ReasonCode.REGISTRY_INVALID)]


def test_rotation_survives_reopening_the_ledger(ledger: Ledger, feed: Feed) -> None:
    old = feed.signer
    assert statuses(ledger, feed.next("2026-000001")) == [("appended", None)]
    new = end_key(ledger, old.key_id, "rotate")
    directory = ledger.directory
    ledger.close()
    with Ledger.open(directory) as reopened:
        body = feed.body("2026-000001", "matter.step_completed")
        assert statuses(reopened, feed.record(body, old)) == [("rejected", ReasonCode.REVOKED_KEY)]
        assert statuses(reopened, feed.record(body, new)) == [("appended", None)]
