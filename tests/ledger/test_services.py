"""The ledger's own services sign with least-scope keys enrolled by the admin on first use."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.errors import NeikongError
from ledger.ledger import SERVICES, Ledger
from ledger.registry import ADMIN_SYSTEM
from tests.ledger._support import kinds, verify_dir

ROOT = "0" * 64


def _root(log_size: int) -> dict[str, object]:
    return {
        "projection": "case_history",
        "version": 1,
        "log_size": log_size,
        "root": ROOT,
        "rows": 0,
    }


def test_append_as_enrols_the_service_key_once_and_chains_its_stream(tmp_path: Path) -> None:
    with Ledger.init(tmp_path / "l") as ledger:
        actor = {"official": "neikong-projector", "role": "service"}
        first = ledger.append_as(
            "projector",
            "projection/case_history",
            "projection.root_published",
            actor=actor,
            data=_root(1),
        )
        second = ledger.append_as(
            "projector",
            "projection/case_history",
            "projection.root_published",
            actor=actor,
            data=_root(2),
        )
        assert (first.stream_seq, second.stream_seq) == (1, 2)
        assert second.position == first.position + 1
        key = ledger.key_path("svc-projector")
        assert key.exists()
        assert oct(key.stat().st_mode & 0o777) == "0o600"
        enrolled = [
            k for k in ledger.registry.keys.values() if k.scope.system == "neikong-projector"
        ]
        assert len(enrolled) == 1
        assert enrolled[0].scope == SERVICES["projector"]
        assert ledger.store.producer_heads()["neikong-projector"] == 2
        assert ledger.store.producer_heads()[ADMIN_SYSTEM] == 2  # genesis + one enrolment
    report = verify_dir(tmp_path / "l")
    assert kinds(report) == set()


def test_a_service_cannot_write_outside_its_scope(tmp_path: Path) -> None:
    with Ledger.init(tmp_path / "l") as ledger:
        with pytest.raises(NeikongError, match="not appended"):
            ledger.append_as(
                "projector",
                "pii/4403-00012",
                "projection.root_published",
                actor={"official": "x", "role": "service"},
                data=_root(1),
            )
        with pytest.raises(NeikongError, match="unknown service"):
            ledger.append_as(
                "nobody",
                "projection/x",
                "projection.root_published",
                actor={"official": "x", "role": "service"},
                data=_root(1),
            )
