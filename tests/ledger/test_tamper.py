"""Tamper evidence: every edit of the stored events is reported by `verify` (DESIGN.md
"Verification and evidence").

One small demo ledger is built per module; each example tampers with a byte-exact copy of it
(SQLite backup API), as someone with write access to the database file would, and checks the
verdict, the finding kinds expected for the edited region, and where the findings point.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import canonical_bytes
from ledger.envelope import HEADER_LEN, KEY_ID_LEN, RECORD_MAGIC, SignedRecord
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.registry import REGISTRY_STREAM, KeyScope
from ledger.verify import VerifyReport
from ops.pipeline import enrol_demo_producers, run_simulation
from tests.ledger._support import (
    NEIKONG,
    REPO,
    Db,
    Row,
    body_of,
    copy_ledger,
    kinds,
    read_rows,
    verify_dir,
)

EVENTS = 300
SEED = 20261102
OTHER_SYSTEM = "4499-other"

MAGIC_END = len(RECORD_MAGIC)
KEY_END = MAGIC_END + KEY_ID_LEN


class Base:
    """The module's demo ledger (not a dataclass: Hypothesis prints it with every falsifying
    example, and a dataclass is printed field by field, ~300 kB)."""

    def __init__(self, directory: Path, rows: list[Row], signers: dict[str, Signer]) -> None:
        self.directory = directory
        self.rows = rows
        self.signers = signers  # every enrolled producer system's key, incl. OTHER_SYSTEM

    def __repr__(self) -> str:
        return f"Base({self.directory}, {len(self.rows)} rows)"

    def matter_rows(self) -> list[Row]:
        return [r for r in self.rows if r.stream.startswith("matter/")]

    def by_stream(self) -> dict[str, list[Row]]:
        out: dict[str, list[Row]] = {}
        for r in self.matter_rows():
            out.setdefault(r.stream, []).append(r)
        return out

    def by_system(self) -> dict[str, list[Row]]:
        out: dict[str, list[Row]] = {}
        for r in self.matter_rows():
            out.setdefault(r.system, []).append(r)
        return out

    def stream_successor(self, row: Row) -> Row | None:
        return next(
            (r for r in self.rows if r.stream == row.stream and r.stream_seq == row.stream_seq + 1),
            None,
        )

    def producer_successor(self, row: Row) -> Row | None:
        return next(
            (
                r
                for r in self.rows
                if r.system == row.system and r.producer_seq == row.producer_seq + 1
            ),
            None,
        )


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    directory = tmp_path_factory.mktemp("tamper") / "ledger"
    with Ledger.init(directory) as ledger:
        signers = enrol_demo_producers(ledger)
        # a second system's key, enrolled before the events it will be misused on
        ledger.enrol_key(
            "other", "producer", KeyScope(OTHER_SYSTEM, ("matter/4499-ot/",), ("matter.*",))
        )
        signers[OTHER_SYSTEM] = Signer.from_file(ledger.key_path("other"))
        stats = run_simulation(ledger, signers, events=EVENTS, seed=SEED, workers=0)
        assert stats.outcomes == {"appended": EVENTS}
    rows = read_rows(directory / "ledger.db")
    assert [r.position for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0].type == "ledger.genesis"
    assert len({r.stream for r in rows}) > 50
    return Base(directory, rows, signers)


@contextlib.contextmanager
def tampered(base: Base) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tampered-") as scratch:
        yield copy_ledger(base.directory, Path(scratch) / "ledger")


def at(report: VerifyReport, position: int) -> set[str]:
    return {f.kind.value for f in report.findings if f.position == position}


def flip(state: bytes, index: int, xor: int) -> bytes:
    return state[:index] + bytes([state[index] ^ xor]) + state[index + 1 :]


def region(index: int) -> str:
    if index < MAGIC_END:
        return "magic"
    if index < KEY_END:
        return "key_id"
    if index < HEADER_LEN:
        return "signature"
    return "body"


def genesis_root_key_span(state: bytes) -> range:
    start = state.index(b'"root_key":{')
    return range(start, state.index(b"}", start) + 1)


# what a failed registry event drags along: keys it enrols are unknown, a lost genesis
# leaves no trusted root; a record that cannot be read at all leaves holes in its stream
# and producer sequence
REGISTRY_FALLOUT = {"unknown_key", "bad_genesis"}
UNREADABLE_FALLOUT = {"gap", "producer_gap"}

EXPECTED: dict[str, tuple[set[str], set[str]]] = {
    # region: (some finding at the edited position is one of these, all findings among these)
    "magic": ({"corrupt_record"}, {"corrupt_record"} | UNREADABLE_FALLOUT | REGISTRY_FALLOUT),
    "key_id": ({"unknown_key", "bad_genesis"}, REGISTRY_FALLOUT),
    "signature": ({"bad_signature"}, {"bad_signature"} | REGISTRY_FALLOUT),
    "body": (
        {
            "bad_signature",
            "corrupt_record",
            "non_canonical",
            "schema_invalid",
            "bad_genesis",
            "registry_invalid",
        },
        {
            "bad_signature",
            "corrupt_record",
            "non_canonical",
            "schema_invalid",
            "misfiled",
            "out_of_scope",
            "registry_invalid",
            "chain_break",
            "gap",
            "fork",
            "reorder",
            "post_closure_append",
            "bad_final_seq",
            "producer_gap",
            "producer_seq_duplicate",
        }
        | REGISTRY_FALLOUT,
    ),
}


# -- the untouched ledger --------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_untouched_ledger_is_intact(base: Base, workers: int) -> None:
    report = verify_dir(base.directory, workers=workers)
    assert report.intact, report.findings
    assert report.findings == []
    assert report.events == report.max_position == len(base.rows)
    assert report.streams == len({r.stream for r in base.rows})
    systems = {r.system for r in base.rows}
    assert report.producers == {
        s: max(r.producer_seq for r in base.rows if r.system == s) for s in systems
    }


def _cli_verify(directory: Path) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [str(NEIKONG), "verify", "--ledger", str(directory), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {
        "stderr": done.stderr
    }


def test_cli_exit_codes_intact_then_tampered(base: Base) -> None:
    with tampered(base) as copy:
        code, report = _cli_verify(copy)
        assert (code, report.get("verdict"), report.get("finding_counts")) == (0, "intact", {})
        target = base.matter_rows()[len(base.matter_rows()) // 2]
        with Db(copy) as db:
            db.set_state(target.position, flip(db.state(target.position), HEADER_LEN - 1, 0x01))
        code, report = _cli_verify(copy)
        assert (code, report.get("verdict")) == (1, "tamper_evidence"), report
        assert report["finding_counts"] == {"bad_signature": 1}
        [finding] = report["findings"]  # type: ignore[misc]
        assert (finding["kind"], finding["position"]) == ("bad_signature", target.position)


# -- (a) one changed byte anywhere -----------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    pick=st.integers(0, 2**20),
    place=st.sampled_from(["header", "anywhere", "focus"]),
    offset=st.integers(0, 2**20),
    xor=st.integers(1, 255),
    workers=st.sampled_from([1, 2]),
)
def test_any_changed_byte_is_tamper_evidence(
    base: Base, pick: int, place: str, offset: int, xor: int, workers: int
) -> None:
    # the few registry rows (genesis, enrolments) carry the most weight: about half the rows
    # picked are registry rows
    registry = [r for r in base.rows if r.stream == REGISTRY_STREAM]
    candidates = registry * (len(base.rows) // len(registry)) + base.rows
    row = candidates[pick % len(candidates)]
    # the header is small, so it gets its own range; "focus" is the body, or for the genesis
    # the root key it names
    span = {
        "header": range(HEADER_LEN),
        "anywhere": range(len(row.state)),
        "focus": genesis_root_key_span(row.state)
        if row.type == "ledger.genesis"
        else range(HEADER_LEN, len(row.state)),
    }[place]
    index = span[offset % len(span)]
    where = region(index)
    with tampered(base) as copy:
        with Db(copy) as db:
            db.set_state(row.position, flip(row.state, index, xor))
        report = verify_dir(copy, workers=workers)
    assert not report.intact
    at_row, allowed = EXPECTED[where]
    if row.type == "ledger.genesis":  # its key id and signature are checked against each other
        at_row, allowed = at_row | {"bad_signature"}, allowed | {"bad_signature"}
    assert at(report, row.position) & at_row, (where, report.findings[:5])
    assert kinds(report) <= allowed, (where, report.finding_counts)


# -- (b) a deleted row -----------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_deleted_row_is_missing_position_and_a_hole(base: Base, data: st.DataObject) -> None:
    row = data.draw(st.sampled_from(base.rows[:-1]), label="row")
    with tampered(base) as copy:
        with Db(copy) as db:
            db.delete(row.position)
        report = verify_dir(copy, workers=data.draw(st.sampled_from([1, 2]), label="workers"))
    assert not report.intact
    assert "missing_position" in at(report, row.position)
    follower = base.stream_successor(row)
    if follower is not None:
        assert "gap" in at(report, follower.position)
    next_in_producer = base.producer_successor(row)
    if next_in_producer is not None:
        assert "producer_gap" in at(report, next_in_producer.position)
    assert kinds(report) <= {"missing_position", "gap", "producer_gap"} | REGISTRY_FALLOUT


# -- (c) swapped rows ------------------------------------------------------------------------


def _pair(rows: list[Row], data: st.DataObject) -> tuple[Row, Row]:
    i, j = data.draw(
        st.lists(st.integers(0, len(rows) - 1), min_size=2, max_size=2, unique=True).map(sorted),
        label="pair",
    )
    return rows[i], rows[j]


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_states_swapped_within_a_stream(base: Base, data: st.DataObject) -> None:
    streams = {s: rs for s, rs in base.by_stream().items() if len(rs) >= 2}
    stream = data.draw(st.sampled_from(sorted(streams)), label="stream")
    first, second = _pair(streams[stream], data)
    with tampered(base) as copy:
        with Db(copy) as db:
            db.set_state(first.position, second.state)
            db.set_state(second.position, first.state)
        report = verify_dir(copy)
    assert "misfiled" in at(report, first.position)
    assert "misfiled" in at(report, second.position)
    assert {"gap", "reorder"} <= kinds(report), report.finding_counts
    assert kinds(report) <= {
        "misfiled",
        "gap",
        "reorder",
        "chain_break",
        "fork",
        "post_closure_append",
        "producer_gap",
    }


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_rows_swapped_within_a_stream_is_reorder(base: Base, data: st.DataObject) -> None:
    streams = {s: rs for s, rs in base.by_stream().items() if len(rs) >= 2}
    stream = data.draw(st.sampled_from(sorted(streams)), label="stream")
    first, second = _pair(streams[stream], data)
    with tampered(base) as copy:
        with Db(copy) as db:
            db.swap_rows(first.position, second.position)
        report = verify_dir(copy, workers=2)
    assert "reorder" in kinds(report), report.finding_counts
    assert any(f.kind.value == "reorder" and f.stream == stream for f in report.findings)
    assert kinds(report) <= {"reorder", "producer_gap"}


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_rows_of_one_producer_swapped_is_reorder_and_producer_gap(
    base: Base, data: st.DataObject
) -> None:
    system = data.draw(st.sampled_from(sorted(base.by_system())), label="system")
    rows = base.by_system()[system]
    first, second = _pair(rows, data)
    if first.stream == second.stream:
        return  # covered above
    with tampered(base) as copy:
        with Db(copy) as db:
            db.swap_rows(first.position, second.position)
        report = verify_dir(copy)
    assert "producer_gap" in at(report, first.position), report.findings
    assert {"reorder", "producer_gap"} <= kinds(report) <= {"reorder", "producer_gap"}


# -- (d) a duplicated row --------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_duplicated_row_is_reported(base: Base, data: st.DataObject) -> None:
    row = data.draw(st.sampled_from(base.rows), label="row")
    with tampered(base) as copy:
        with Db(copy) as db:
            position = db.insert(row.stream_id, db.max_version(row.stream_id) + 1, row.state)
        report = verify_dir(copy, workers=data.draw(st.sampled_from([1, 2]), label="workers"))
    assert not report.intact
    here = at(report, position)
    assert {"misfiled", "producer_seq_duplicate"} <= here, report.findings
    last_of_stream = max(r.stream_seq for r in base.rows if r.stream == row.stream)
    assert ("fork" if row.stream_seq == last_of_stream else "reorder") in here
    # a copied registry event cannot apply twice; a copied genesis is not at position 1
    assert kinds(report) <= {
        "misfiled",
        "producer_seq_duplicate",
        "fork",
        "reorder",
        "post_closure_append",
        "registry_invalid",
        "bad_genesis",
    }
    if row.stream != REGISTRY_STREAM:
        assert kinds(report) <= {
            "misfiled",
            "producer_seq_duplicate",
            "fork",
            "reorder",
            "post_closure_append",
        }


# -- (e) re-signed by a key that is out of scope ---------------------------------------------

AMENDABLE = ("matter.accepted", "matter.step_completed", "matter.concluded")


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_altered_body_resigned_out_of_scope(base: Base, data: st.DataObject) -> None:
    row = data.draw(
        st.sampled_from([r for r in base.matter_rows() if r.type in AMENDABLE]), label="row"
    )
    thief = data.draw(
        st.sampled_from(sorted(s for s in base.signers if s != row.system)), label="signing system"
    )
    value = body_of(row.state)
    value["data"]["amount"] = "999999.99" if value["data"].get("amount") != "999999.99" else "1.00"
    forged = base.signers[thief].sign(canonical_bytes(value)).encode()
    with tampered(base) as copy:
        with Db(copy) as db:
            db.set_state(row.position, forged)
        report = verify_dir(copy)
    assert not report.intact
    assert at(report, row.position) == {"out_of_scope"}, report.findings
    follower = base.stream_successor(row)
    expected = {"out_of_scope"} | ({"chain_break"} if follower else set())
    assert kinds(report) == expected
    if follower is not None:
        assert at(report, follower.position) == {"chain_break"}


def test_forged_record_really_carries_a_valid_signature(base: Base) -> None:
    """The premise of (e): the forgery is signed correctly, only by the wrong key."""
    row = next(r for r in base.matter_rows() if r.type == "matter.accepted")
    signer = base.signers[OTHER_SYSTEM]
    forged = SignedRecord.decode(signer.sign(SignedRecord.decode(row.state).body).encode())
    signer.private_key.public_key().verify(forged.signature, forged.signing_message)
    assert forged.key_id == hashlib.sha256(signer.public_raw).digest()
    assert REGISTRY_STREAM not in forged.body.decode()


@pytest.mark.parametrize("field", ["stream", "event_id", "stream_seq"])
def test_signed_body_with_a_field_of_the_wrong_type_is_schema_invalid(
    base: Base, field: str
) -> None:
    """A key holder writing straight into the store a canonical, correctly signed body whose
    `stream`, `event_id` or `stream_seq` has the wrong JSON type: verify names it, it does
    not crash on it."""
    row = next(r for r in base.matter_rows() if r.type == "matter.accepted")
    value = body_of(row.state)
    value[field] = {"stream": 4403, "event_id": 7, "stream_seq": "1"}[field]
    forged = base.signers[row.system].sign(canonical_bytes(value)).encode()
    with tampered(base) as copy:
        with Db(copy) as db:
            db.set_state(row.position, forged)
        report = verify_dir(copy)
    assert "schema_invalid" in at(report, row.position), report.findings
