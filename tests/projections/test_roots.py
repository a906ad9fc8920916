"""State roots: the leaf and tree definition, publishing a signed root, `neikong rebuild --check`
(published root and live model against a rebuild; a tampered row or a non-deterministic
projection exits 1), and the command's usage and operational exit codes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import orjson
import pytest
from click.testing import CliRunner

from ledger.errors import NeikongError
from ledger.ledger import Ledger
from ledger.merkle import EMPTY_ROOT, root_from_leaf_hashes
from ops.cli import main
from projections import registry
from projections.base import Doc, LoggedEvent
from projections.read_model import ReadModel
from projections.roots import latest_published, root_of_rows, state_leaf, state_root
from tests.ledger._support import verify_dir
from tests.projections._support import (
    EventsPerStream,
    append,
    clone_ledger,
    close_all,
    empty_ledger,
    sample_projections,
    signed_records,
)


@pytest.fixture(autouse=True)
def closing() -> Iterator[None]:
    yield
    close_all()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[bytes]]:
    base = empty_ledger(tmp_path_factory.mktemp("roots") / "ledger")
    return base, signed_records(base, 600, 9)


@pytest.fixture
def ledger(seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    base, records = seeded
    directory = clone_ledger(base, tmp_path / "ledger")
    append(directory, records[:400])
    monkeypatch.setattr(registry, "all_projections", sample_projections)
    return directory


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


# -- the definition ---------------------------------------------------------------------------


def test_root_is_rfc6962_over_key_nul_docdigest_leaves():
    rows = [("a", b"{}"), ("b/z", b"[]"), ("b/é", b'{"x":1}')]
    leaves = [
        hashlib.sha256(b"\x00" + k.encode() + b"\x00" + hashlib.sha256(d).digest()).digest()
        for k, d in rows
    ]
    assert root_of_rows(rows) == (root_from_leaf_hashes(leaves).hex(), 3)
    assert root_of_rows([]) == (EMPTY_ROOT.hex(), 0)
    # one leaf: the root is the leaf hash itself (RFC 6962 MTH of one entry)
    single = state_leaf("k", b"{}")
    assert root_of_rows([("k", b"{}")])[0] == hashlib.sha256(b"\x00" + single).hexdigest()


def test_rows_must_come_in_utf8_byte_order_without_nul():
    with pytest.raises(NeikongError, match="out of key order"):
        root_of_rows([("b", b"{}"), ("a", b"{}")])
    with pytest.raises(NeikongError, match="out of key order"):
        root_of_rows([("a", b"{}"), ("a", b"{}")])
    with pytest.raises(NeikongError, match="NUL"):
        root_of_rows([("a\x00b", b"{}")])
    # U+FFFD sorts after U+0800 by UTF-8 bytes and by code point alike; "Z" < "a" < "é"
    assert root_of_rows([("Z", b"1"), ("a", b"1"), ("é", b"1"), ("\ufffd", b"1")])[1] == 4


# -- publish and check ------------------------------------------------------------------------


def test_published_root_verifies_with_check(ledger: Path):
    assert cli("rebuild", "--ledger", str(ledger))[0] == 0
    code, out = cli("rebuild", "--ledger", str(ledger), "--publish", "--json")
    assert code == 0, out
    published = {p["projection"]: p for p in json.loads(out)["projections"]}
    assert set(published) == {"t_streams", "t_officials", "t_types"}
    with Ledger.open(ledger) as opened:
        for name, row in published.items():
            root = latest_published(opened, name)
            assert root is not None
            assert (root.root, root.rows, root.log_size) == (
                row["root"],
                row["rows"],
                row["log_size"],
            )
        size = published["t_streams"]["log_size"]
        model = ReadModel(f"sqlite:///{ledger / 'projections.db'}")
        assert state_root(model, "t_types")[1] == published["t_types"]["rows"]
        model.close()
        # every root event is signed by the projector key, after the size it certifies
        assert opened.store.max_position() > size
    assert verify_dir(ledger).intact
    code, out = cli("rebuild", "--ledger", str(ledger), "--check")
    assert code == 0, out
    assert "ALL EQUAL: 3 projections" in out


def test_check_after_more_events_compares_the_live_model_at_the_published_size(ledger, seeded):
    assert cli("rebuild", "--ledger", str(ledger), "--publish")[0] == 0
    append(ledger, seeded[1][400:])  # the log grows; the live model catches up past the root
    assert cli("rebuild", "--ledger", str(ledger))[0] == 0  # live model now past the roots
    code, out = cli("rebuild", "--ledger", str(ledger), "--check", "--json")
    assert code == 0, out
    report = {r["projection"]: r for r in json.loads(out)["projections"]}
    streams = report["t_streams"]
    assert streams["published"]["log_size"] < streams["live_position"]
    assert set(streams["comparisons"]) == {
        "published_vs_rebuild",
        "live_at_published_vs_rebuild",
        "live_vs_rebuild",
    }
    assert all(c["equal"] for c in streams["comparisons"].values())


def _tamper(ledger: Path, name: str, prefix: str) -> str:
    model = ReadModel(f"sqlite:///{ledger / 'projections.db'}")
    key, raw = next((k, d) for k, d in model.iter_docs(name) if k.startswith(prefix))
    doc = orjson.loads(raw)
    doc["events" if "events" in doc else "n" if "n" in doc else "acts"] += 1
    model.set_doc(name, key, orjson.dumps(doc, option=orjson.OPT_SORT_KEYS))
    model.close()
    return key


def test_a_tampered_read_model_row_makes_check_exit_1(ledger: Path):
    assert cli("rebuild", "--ledger", str(ledger), "--publish")[0] == 0
    key = _tamper(ledger, "t_streams", "matter/")
    code, out = cli("rebuild", "--ledger", str(ledger), "--check", "--json")
    assert code == 1, out
    report = {r["projection"]: r for r in json.loads(out)["projections"]}
    assert report["t_streams"]["verdict"] == "mismatch"
    assert "live_vs_rebuild" in report["t_streams"]["mismatches"]
    assert "live_at_published_vs_rebuild" in report["t_streams"]["mismatches"]
    assert report["t_officials"]["verdict"] == report["t_types"]["verdict"] == "ok"
    code, out = cli("rebuild", "--ledger", str(ledger), "--check")
    assert code == 1
    assert "TAMPER EVIDENCE" in out
    assert "t_streams" in out, key


class Drifting(EventsPerStream):
    """Not a pure fold: its documents depend on how many times fold ran in this process."""

    calls: ClassVar[list[int]] = [0]

    def fold(self, doc: Doc | None, event: LoggedEvent, key: str) -> Doc:
        doc = super().fold(doc, event, key)
        Drifting.calls[0] += 1
        doc["seen"] = Drifting.calls[0]
        return doc


def test_a_non_deterministic_projection_fails_check(ledger: Path, monkeypatch):
    monkeypatch.setattr(registry, "all_projections", lambda: [Drifting()])
    assert cli("rebuild", "--ledger", str(ledger), "--publish")[0] == 0
    code, out = cli("rebuild", "--ledger", str(ledger), "--check", "--json")
    assert code == 1, out
    (report,) = json.loads(out)["projections"]
    assert "published_vs_rebuild" in report["mismatches"]


def test_check_without_a_published_root_compares_the_live_model_only(ledger: Path):
    assert cli("rebuild", "--ledger", str(ledger))[0] == 0
    code, out = cli("rebuild", "--ledger", str(ledger), "--check", "--projection", "t_types")
    assert code == 0, out
    assert "no published root" in out


def test_usage_and_operational_exit_codes(ledger: Path, tmp_path: Path):
    code, out = cli("rebuild", "--ledger", str(ledger), "--check", "--publish")
    assert code == 2
    assert "exclusive" in out
    code, out = cli("rebuild", "--ledger", str(ledger), "--projection", "nope")
    assert code == 2
    assert "unknown projection nope" in out
    code, out = cli("rebuild", "--ledger", str(tmp_path / "missing"))
    assert code == 3
    assert "no ledger" in out


def test_a_sharded_rebuild_checks_equal(ledger: Path):
    code, out = cli("rebuild", "--ledger", str(ledger), "--shard", "--workers", "2")
    assert code == 0, out
    code, out = cli("rebuild", "--ledger", str(ledger), "--check")
    assert code == 0, out
    assert "ALL EQUAL: 3 projections" in out
