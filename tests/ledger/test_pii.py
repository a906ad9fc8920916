"""The erasable PII store: commitments open only to their value; erasure leaves nothing behind."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.canonical import canonical_bytes
from ledger.errors import NeikongError
from ledger.pii import PiiStore, PiiTampered, commitment
from tests.conftest import _fresh_pg_schema_url, require_pg

SALT = bytes(range(32))


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PiiStore]:
    if request.param == "sqlite":
        location: str | Path = tmp_path / "pii.db"
    else:
        location = next(_fresh_pg_schema_url(require_pg()))
    with PiiStore(location) as opened:
        yield opened


def test_commitment_is_sha256_of_salt_and_canonical_value() -> None:
    value = {"area_m2": "96.50", "owners": ["spouse", "self"]}
    expected = base64.b64encode(hashlib.sha256(SALT + canonical_bytes(value)).digest()).decode()
    assert commitment(value, SALT) == expected
    assert commitment(value, bytes(32)) != expected  # the salt matters
    assert commitment({"owners": ["spouse", "self"], "area_m2": "96.50"}, SALT) == expected


def test_commit_then_get_returns_the_checked_value(store: PiiStore) -> None:
    made = store.commit("4403-00012", "i3_1_spouse_name", "王芳", SALT)
    assert made == commitment("王芳", SALT)
    got = store.get(made)
    assert got is not None
    assert (got.official, got.field, got.value) == ("4403-00012", "i3_1_spouse_name", "王芳")
    assert store.commit("4403-00012", "i3_1_spouse_name", "王芳", SALT) == made  # idempotent
    assert store.get(commitment("李四", SALT)) is None


def test_random_salts_differ(store: PiiStore) -> None:
    a = store.commit("4403-00012", "f", "same value")
    b = store.commit("4403-00012", "f", "same value")
    assert a != b
    with pytest.raises(NeikongError, match="32 bytes"):
        store.commit("4403-00012", "f", "x", b"short")


def test_erase_removes_every_value_of_one_official(store: PiiStore) -> None:
    mine = [store.commit("4403-00012", f"f{i}", f"value {i}") for i in range(3)]
    other = store.commit("4403-00013", "f0", "kept")
    erased = store.erase("4403-00012")
    assert sorted(c for c, _ in erased) == sorted(mine)
    assert all(store.get(c) is None for c in mine)
    assert store.get(other) is not None
    assert store.fields_of("4403-00012") == []
    assert store.erase("4403-00012") == []


def test_an_altered_value_is_refused_not_shown(tmp_path: Path) -> None:
    path = tmp_path / "pii.db"
    with PiiStore(path) as store:
        made = store.commit("4403-00012", "i4_1_salary", "180000.00", SALT)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE nk_pii SET value = ? WHERE commitment = ?", ('"18000.00"', made))
    with PiiStore(path) as store, pytest.raises(PiiTampered, match="does not match"):
        store.get(made)


def test_sqlite_file_is_private_and_erased_bytes_leave_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pii.db"
    secret = "SECRET-SPOUSE-NAME-" + "x" * 200
    with PiiStore(path) as store:
        store.commit("4403-00012", "i3_1_spouse_name", secret)
        store.erase("4403-00012")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("pii.db"))
    assert secret.encode() not in on_disk


def test_values_committed_later_are_stored_at_flush_in_one_transaction(store: PiiStore) -> None:
    made = [store.commit_later("4403-00012", f"f{i}", f"v{i}", bytes([i]) * 32) for i in range(5)]
    assert made[0] == commitment("v0", bytes(32))
    assert store.get(made[0]) is None  # held, not yet written
    assert store.flush() == 5
    assert [store.get(m).value for m in made] == [f"v{i}" for i in range(5)]  # type: ignore[union-attr]
    assert store.flush() == 0
