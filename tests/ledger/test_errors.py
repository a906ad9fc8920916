"""Third-party exceptions are translated at the boundary; every one is mapped."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import eventsourcing.persistence as es
import pytest

from ledger.errors import (
    Backpressure,
    ConflictError,
    KeyFileError,
    MalformedInput,
    NeikongError,
    StoreError,
    VerificationError,
)
from ledger.keys import generate_private_key, load_private_key, write_private_key
from ledger.reasons import ReasonCode
from ledger.store import LedgerStore, StoreConfig, _translate

PERSISTENCE_ERRORS = [
    cls
    for _, cls in inspect.getmembers(es, inspect.isclass)
    if issubclass(cls, es.PersistenceError)
]


@pytest.mark.parametrize("cls", PERSISTENCE_ERRORS, ids=lambda c: c.__name__)
def test_every_eventsourcing_persistence_error_is_mapped(cls: type[Exception]) -> None:
    translated = _translate(cls("boom"))
    assert isinstance(translated, StoreError)
    if issubclass(cls, es.IntegrityError):
        assert isinstance(translated, ConflictError)


def test_errors_also_inherit_the_matching_builtin() -> None:
    assert issubclass(MalformedInput, ValueError)
    assert issubclass(KeyFileError, OSError)
    assert issubclass(Backpressure, TimeoutError)
    assert issubclass(VerificationError, ValueError)
    for cls in (MalformedInput, KeyFileError, Backpressure, VerificationError, StoreError):
        assert issubclass(cls, NeikongError)
    assert MalformedInput(ReasonCode.FORK, "x").reason is ReasonCode.FORK


def test_unreachable_database_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the event store"):
        LedgerStore(StoreConfig(f"sqlite:///{tmp_path}/no/such/dir/ledger.db"))


def test_key_files_refuse_loose_permissions_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    write_private_key(path, generate_private_key())
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    load_private_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_private_key(path)
    bad = tmp_path / "bad.key"
    bad.write_bytes(b"not a key")
    os.chmod(bad, 0o600)
    with pytest.raises(KeyFileError, match="not an unencrypted PEM"):
        load_private_key(bad)
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        write_private_key(path, generate_private_key())
    with pytest.raises(KeyFileError, match="not found"):
        load_private_key(tmp_path / "missing.key")
