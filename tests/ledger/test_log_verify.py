"""Tamper evidence in the Merkle log: each attack on records, tiles or checkpoints is reported
by `verify_log` with its finding kind, and an intact sealed ledger yields no finding."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.canonical import canonical_bytes, parse_strict
from ledger.checkpoints import list_checkpoints
from ledger.envelope import SignedRecord
from ledger.findings import Finding
from ledger.keys import Signer
from ledger.ledger import CONFIG_FILE, Ledger
from ledger.log_verify import (
    BAD_CHECKPOINT_SIGNATURE,
    INCONSISTENT_CHECKPOINTS,
    ROOT_MISMATCH,
    TILE_MISMATCH,
    TRUNCATED,
    verify_ledger_log,
)
from ledger.merkle import leaf_hash, root_from_leaf_hashes
from ledger.note import Checkpoint, SignedNote, sign_note
from ledger.registry import KeyScope
from ledger.sealer import Sealer, ensure_checkpoint_key
from ops.pipeline import enrol_demo_producers, run_simulation

EVENTS = 1000
EVERY = 250


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sealed demo ledger: checkpoints every 250 entries and at the end."""
    directory = tmp_path_factory.mktemp("base") / "ledger"
    with Ledger.init(directory) as ledger:
        signer = ensure_checkpoint_key(ledger)
        run_simulation(ledger, enrol_demo_producers(ledger), events=EVENTS, seed=9, workers=0)
        with Sealer(ledger, signer, every_entries=EVERY, durable=False) as sealer:
            sealer.seal_once()
    return directory


@pytest.fixture
def copy(base: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ledger"
    shutil.copytree(base, target)
    config = json.loads((target / CONFIG_FILE).read_text("utf-8"))
    config["store_url"] = f"sqlite:///{target / 'ledger.db'}"
    (target / CONFIG_FILE).write_text(json.dumps(config), "utf-8")
    return target


@pytest.fixture
def db(copy: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(copy / "ledger.db")
    yield conn
    conn.close()


def findings(directory: Path) -> list[Finding]:
    with Ledger.open(directory) as ledger:
        return verify_ledger_log(ledger)


def kinds(found: list[Finding]) -> Counter[str]:
    return Counter(str(f.kind) for f in found)


def sizes(directory: Path) -> list[int]:
    return list_checkpoints(directory)


def signed_note(body: bytes, name: str, signer: Signer) -> bytes:
    return SignedNote(body, (sign_note(body, name, signer.private_key),)).encode()


def origin_of(directory: Path) -> str:
    return str(json.loads((directory / CONFIG_FILE).read_text("utf-8"))["origin"])


def test_an_intact_sealed_log_has_no_findings(copy: Path) -> None:
    assert sizes(copy)[-1] > 4 * EVERY
    assert findings(copy) == []


def test_a_ledger_never_sealed_has_no_findings(tmp_path: Path) -> None:
    with Ledger.init(tmp_path / "l") as ledger:
        assert verify_ledger_log(ledger) == []


def test_new_kinds_serialise_as_their_names(copy: Path, db: sqlite3.Connection) -> None:
    with db:
        db.execute("DELETE FROM stored_events WHERE rowid > 990")
    (finding,) = findings(copy)
    assert finding.to_json()["kind"] == "truncated"


# --- the stored log -------------------------------------------------------------------------


def test_truncation_is_reported(copy: Path, db: sqlite3.Connection) -> None:
    largest = sizes(copy)[-1]
    with db:
        db.execute("DELETE FROM stored_events WHERE rowid > ?", (largest - 5,))
    found = findings(copy)
    assert kinds(found) == {TRUNCATED: 1}
    assert found[0].position == largest - 4
    assert f"checkpoint {largest} was signed" in found[0].detail


def test_rollback_to_an_earlier_checkpoint_is_reported(copy: Path, db: sqlite3.Connection) -> None:
    with db:  # back to the state of checkpoint 500, as a restored backup would be
        db.execute("DELETE FROM stored_events WHERE rowid > 500")
    found = findings(copy)
    assert kinds(found) == {TRUNCATED: 1}
    assert found[0].position == 501


def test_rollback_then_new_history_is_reported(copy: Path, db: sqlite3.Connection) -> None:
    with db:
        db.execute("DELETE FROM stored_events WHERE rowid > 600")
    with Ledger.open(copy) as ledger:  # grow a different history past the old checkpoints
        scope = KeyScope("4499-x", ("matter/4499/",), ("matter.*",))
        for i in range(sizes(copy)[-1] - 600 + 3):
            ledger.enrol_key(f"regrown{i}", "producer", scope)
    found = findings(copy)
    assert {f.position for f in found if f.kind == ROOT_MISMATCH} == {
        s for s in sizes(copy) if s > 600
    }
    assert TRUNCATED not in kinds(found)
    assert kinds(found)[TILE_MISMATCH] >= 1  # tile/0/002 and bundle 002 hold the old entries


def resign(record: bytes, signer: Signer) -> bytes:
    """The same event with one data field changed, validly re-signed by its producer key."""
    signed = SignedRecord.decode(record)
    value = parse_strict(signed.body)
    value["occurred_at"] = "2026-01-01T00:00:00Z"
    return signer.sign(canonical_bytes(value)).encode()


def producer_row(db: sqlite3.Connection, after: int) -> tuple[int, bytes, str]:
    for position, state in db.execute(
        "SELECT rowid, state FROM stored_events WHERE rowid > ? ORDER BY rowid", (after,)
    ):
        value = parse_strict(SignedRecord.decode(bytes(state)).body)
        if value["stream"].startswith("matter/"):
            return position, bytes(state), value["producer"]["system"]
    raise AssertionError("no producer event")


def test_a_resigned_record_breaks_every_later_checkpoint(
    copy: Path, db: sqlite3.Connection
) -> None:
    position, record, system = producer_row(db, 600)
    forged = resign(record, Signer.from_file(copy / "keys" / f"{system}.key"))
    with db:
        db.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (forged, position))
    found = findings(copy)
    mismatched = {f.position for f in found if f.kind == ROOT_MISMATCH}
    assert mismatched == {s for s in sizes(copy) if s >= position}
    tiles = {f.detail.split()[0] for f in found if f.kind == TILE_MISMATCH}
    index = (position - 1) // 256
    assert f"tile/0/{index:03d}" in tiles
    assert f"tile/entries/{index:03d}" in tiles
    assert INCONSISTENT_CHECKPOINTS not in kinds(found)  # the tiles still prove the old tree


def test_a_forked_and_resealed_history_is_reported(copy: Path, db: sqlite3.Connection) -> None:
    """The operator rewrites a record, rebuilds tiles and signs new checkpoints with the real
    checkpoint key, but the old checkpoints were kept (or published): the fork shows."""
    position, record, system = producer_row(db, 600)
    forged = resign(record, Signer.from_file(copy / "keys" / f"{system}.key"))
    with db:
        db.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (forged, position))
    old = copy / "checkpoints.old"
    (copy / "checkpoints").rename(old)
    shutil.rmtree(copy / "tiles")
    with (
        Ledger.open(copy) as ledger,
        Sealer(
            ledger, Signer.from_file(copy / "keys/checkpoint.key"), every_entries=300, durable=False
        ) as sealer,
    ):
        sealer.seal_once()
    for kept in old.iterdir():
        if not (copy / "checkpoints" / kept.name).exists():
            shutil.copy(kept, copy / "checkpoints" / kept.name)
    found = kinds(findings(copy))
    assert found[ROOT_MISMATCH] >= 1
    assert found[INCONSISTENT_CHECKPOINTS] >= 1
    assert BAD_CHECKPOINT_SIGNATURE not in found  # every note is validly signed: only the log lies


def test_two_checkpoints_of_one_size_with_different_roots(copy: Path) -> None:
    largest = sizes(copy)[-1]
    forged = Checkpoint(origin_of(copy), largest, b"\x05" * 32).body()
    signer = Signer.from_file(copy / "keys/checkpoint.key")
    (copy / "tiles/checkpoint").write_bytes(signed_note(forged, origin_of(copy), signer))
    found = findings(copy)
    assert kinds(found)[INCONSISTENT_CHECKPOINTS] >= 1
    evidence = next(
        f for f in found if f.kind == INCONSISTENT_CHECKPOINTS and f.position == largest
    )
    assert "BQUF" in evidence.detail  # both signed notes are quoted
    assert kinds(found)[ROOT_MISMATCH] == 1


def test_a_hole_in_the_positions_is_reported(copy: Path, db: sqlite3.Connection) -> None:
    with db:
        db.execute("DELETE FROM stored_events WHERE rowid = 400")
    found = kinds(findings(copy))
    assert found[ROOT_MISMATCH] == len([s for s in sizes(copy) if 400 <= s < sizes(copy)[-1]])
    assert found[TRUNCATED] == 1  # 1005 entries remain under checkpoint 1006
    assert found[TILE_MISMATCH] >= 1


# --- tiles ----------------------------------------------------------------------------------


def test_a_swapped_tile_is_reported(copy: Path) -> None:
    a, b = copy / "tiles/tile/0/001", copy / "tiles/tile/0/002"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    found = findings(copy)
    assert kinds(found) == {TILE_MISMATCH: 2}
    assert sorted((f.position, f.detail.split()[0]) for f in found) == [
        (257, "tile/0/001"),
        (513, "tile/0/002"),
    ]


@pytest.mark.parametrize(
    "rel", ["tile/entries/000", "tile/1/000.p/3", "tile/0/003.p/232", "tile/entries/001"]
)
def test_an_edited_tile_or_bundle_is_reported(copy: Path, rel: str) -> None:
    path = copy / "tiles" / rel
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x40
    path.write_bytes(bytes(data))
    found = findings(copy)
    assert kinds(found) == {TILE_MISMATCH: 1}
    assert found[0].detail.startswith(rel)


def test_a_missing_tile_is_reported(copy: Path) -> None:
    (copy / "tiles/tile/0/002").unlink()
    found = findings(copy)
    assert kinds(found) == {TILE_MISMATCH: 1}
    assert "missing" in found[0].detail


# --- checkpoint signatures ------------------------------------------------------------------


def test_a_checkpoint_signed_by_a_wrong_key_is_reported(copy: Path) -> None:
    size = sizes(copy)[1]
    path = copy / "checkpoints" / str(size)
    body = SignedNote.parse(path.read_bytes()).body
    producer = Signer.from_file(copy / "keys/4403-fapiao.key")  # enrolled, but not for this
    path.write_bytes(signed_note(body, origin_of(copy), producer))
    found = findings(copy)
    assert kinds(found) == {BAD_CHECKPOINT_SIGNATURE: 1}
    assert found[0].position == size
    assert "by no checkpoint key" in found[0].detail


def test_a_checkpoint_under_another_name_or_origin_is_reported(copy: Path) -> None:
    signer = Signer.from_file(copy / "keys/checkpoint.key")
    first, second = sizes(copy)[:2]
    path = copy / "checkpoints" / str(first)
    body = SignedNote.parse(path.read_bytes()).body
    path.write_bytes(signed_note(body, "someone-else", signer))
    other = copy / "checkpoints" / str(second)
    cp = Checkpoint.parse_body(SignedNote.parse(other.read_bytes()).body)
    body = Checkpoint("example.com/other-log", cp.size, cp.root).body()
    other.write_bytes(signed_note(body, "example.com/other-log", signer))
    found = findings(copy)
    assert kinds(found) == {BAD_CHECKPOINT_SIGNATURE: 2}
    assert any("names another log" in f.detail for f in found)


def test_a_checkpoint_before_the_key_existed_is_reported(
    copy: Path, db: sqlite3.Connection
) -> None:
    (state,) = db.execute("SELECT state FROM stored_events WHERE rowid = 1").fetchone()
    body = Checkpoint(origin_of(copy), 1, root_from_leaf_hashes([leaf_hash(state)])).body()
    signer = Signer.from_file(copy / "keys/checkpoint.key")  # enrolled at position 2
    (copy / "checkpoints/1").write_bytes(signed_note(body, origin_of(copy), signer))
    found = findings(copy)
    assert kinds(found) == {BAD_CHECKPOINT_SIGNATURE: 1}
    assert "not valid at that size" in found[0].detail


def test_a_malformed_checkpoint_file_is_reported(copy: Path) -> None:
    size = sizes(copy)[0]
    path = copy / "checkpoints" / str(size)
    path.write_bytes(path.read_bytes().replace(b"\n\n", b"\n"))
    found = findings(copy)
    assert kinds(found) == {BAD_CHECKPOINT_SIGNATURE: 1}
    assert found[0].position == size
