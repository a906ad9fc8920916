"""Tampering with the key registry (`ledger/keys`) must be *reported* by `verify`, never crash it,
and never pass as intact.

Each test builds a small ledger, edits its registry rows as someone with write access to the
database could, and runs `verify` (library and CLI).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ledger.canonical import canonical_bytes
from ledger.envelope import SignedRecord, b64
from ledger.keys import Signer, generate_private_key
from ledger.ledger import Ledger
from ledger.registry import REGISTRY_STREAM
from ledger.store import stream_uuid
from ops.pipeline import enrol_demo_producers, run_simulation
from tests.ledger._support import (
    NEIKONG,
    REPO,
    Db,
    Row,
    body_of,
    digest_b64,
    read_rows,
    verify_dir,
)


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    directory = tmp_path / "ledger"
    with Ledger.init(directory) as ledger:
        run_simulation(ledger, enrol_demo_producers(ledger), events=60, seed=5, workers=0)
    assert verify_dir(directory).intact
    return directory


def _registry_rows(directory: Path) -> list[Row]:
    return [r for r in read_rows(directory / "ledger.db") if r.stream == REGISTRY_STREAM]


def _replace_in_body(state: bytes, old: bytes, new: bytes) -> bytes:
    """Edit the body in place, keeping the header (key id and the now-stale signature)."""
    assert state.count(old) == 1
    assert len(old) == len(new)
    return state.replace(old, new)


def test_genesis_naming_a_substituted_root_key_is_not_intact(demo: Path) -> None:
    """Defect (fixed in 2cb86fe): verify said INTACT when the genesis body named another root
    key while its header still named the trusted one; the genesis signature was checked only
    if the header's key was in the folded registry (it was not: the substituted key was), so
    the substituted key then signed every registry change, i.e. could enrol any producer key.
    """
    attacker = Signer(generate_private_key())
    rows = _registry_rows(demo)
    prev = None
    with Db(demo) as db:
        for row in rows:
            header = SignedRecord.decode(row.state)
            value = body_of(row.state)
            value["prev"] = prev
            if value["type"] == "ledger.genesis":
                value["data"]["root_key"] = {
                    "key_id": attacker.key_id.hex(),
                    "public_key": b64(attacker.public_raw),
                }
                body = canonical_bytes(value)
                # the header still names the trusted root; the signature is the attacker's
                forged = SignedRecord(header.key_id, attacker.sign(body).signature, body)
            else:
                body = canonical_bytes(value)
                forged = attacker.sign(body)
            db.set_state(row.position, forged.encode())
            prev = digest_b64(body)
    report = verify_dir(demo)
    assert not report.intact
    assert {f.kind.value for f in report.findings if f.position == 1} & {
        "bad_genesis",
        "bad_signature",
    }


@pytest.mark.parametrize("field", ["public_key", "key_id"])
def test_altered_genesis_root_key_is_reported_not_raised(demo: Path, field: str) -> None:
    """Defect (fixed in 2cb86fe): verify_ledger raised RegistryError: the genesis was folded
    without a signature check and KeyRegistry.apply raised on a public key that does not hash
    to the stated key_id."""
    genesis = _registry_rows(demo)[0]
    start = genesis.state.index(f'"{field}":"'.encode(), genesis.state.index(b'"root_key"'))
    index = start + len(field) + 6
    old = genesis.state[index : index + 1]
    new = b"A" if old != b"A" else b"B"
    if field == "key_id":
        new = b"a" if old != b"a" else b"b"
    with Db(demo) as db:
        db.set_state(
            1,
            _replace_in_body(
                genesis.state,
                genesis.state[index - 3 : index + 1],
                genesis.state[index - 3 : index] + new,
            ),
        )
    report = verify_dir(demo)
    assert not report.intact
    assert {f.kind.value for f in report.findings if f.position == 1} & {
        "bad_genesis",
        "bad_signature",
    }


def test_duplicated_genesis_is_reported_not_raised(demo: Path) -> None:
    """Defect (fixed in 2cb86fe): verify_ledger raised TypeError (cannot pickle
    Ed25519PublicKey): checking a second genesis cached an OpenSSL key object in the registry
    that is then sent to the worker processes."""
    genesis = _registry_rows(demo)[0]
    with Db(demo) as db:
        position = db.insert(
            stream_uuid(REGISTRY_STREAM).hex,
            db.max_version(stream_uuid(REGISTRY_STREAM).hex) + 1,
            genesis.state,
        )
    report = verify_dir(demo)
    assert "bad_genesis" in {f.kind.value for f in report.findings if f.position == position}


def test_cli_reports_an_altered_enrolment_instead_of_crashing(demo: Path) -> None:
    """Defect (fixed in 2cb86fe): `neikong verify` died with a RegistryError traceback and no
    report: Ledger.open folded the registry without checking signatures and applying the
    inconsistent key raised."""
    enrolment = _registry_rows(demo)[1]
    assert enrolment.type == "key.enrolled"
    index = enrolment.state.index(b'"public_key":"') + len(b'"public_key":"') + 2
    old = enrolment.state[index - 2 : index + 1]
    new = old[:2] + (b"A" if old[2:] != b"A" else b"B")
    with Db(demo) as db:
        db.set_state(enrolment.position, _replace_in_body(enrolment.state, old, new))
    assert "bad_signature" in verify_dir(demo).finding_counts  # the library is fine
    done = subprocess.run(
        [str(NEIKONG), "verify", "--ledger", str(demo), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.returncode == 1
    assert json.loads(done.stdout)["verdict"] == "tamper_evidence"
