"""A row deleted at the last position of a verify chunk (pass A walks positions in chunks of
`CHUNK`) must still be reported as `missing_position`.

The ledger is shaped so that nothing else gives a deletion away: around the chunk boundary sit
three events that are each the only event of their stream and of their producer system, and
events of a busy system follow them. Building the 4000-event ledger takes a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.registry import KeyScope
from ledger.verify import CHUNK
from tests.ledger._support import Db, Feed, copy_ledger, verify_dir

pytestmark = pytest.mark.slow

LONELY = {CHUNK - 1: "inside", CHUNK: "last", CHUNK + 1: "first"}


@pytest.fixture(scope="module")
def boundary_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("chunk") / "ledger"
    with Ledger.init(directory) as ledger:
        ledger.enrol_key("busy", "producer", KeyScope("sys-busy", ("matter/busy/",), ("matter.*",)))
        busy = Feed("sys-busy", Signer.from_file(ledger.key_path("busy")), "matter/busy/")
        lonely = []
        for name in LONELY.values():
            ledger.enrol_key(
                name, "producer", KeyScope(f"sys-{name}", (f"matter/{name}/",), ("matter.*",))
            )
            lonely.append(
                Feed(f"sys-{name}", Signer.from_file(ledger.key_path(name)), f"matter/{name}/")
            )
        appender = ledger.appender()
        batch: list[bytes] = []
        for i in range(min(LONELY) - 1 - ledger.store.max_position()):
            batch.append(busy.next(f"m-{i:05d}"))
            if len(batch) == 1000:
                assert {o.status for o in appender.submit(batch)} == {"appended"}
                batch = []
        batch += [feed.next("only") for feed in lonely] + [busy.next("after")]
        assert {o.status for o in appender.submit(batch)} == {"appended"}
        for position, name in LONELY.items():
            assert ledger.store.stream_rows(f"matter/{name}/only")[0][0] == position
    assert verify_dir(directory, workers=2).intact
    return directory


@pytest.mark.parametrize(
    "position",
    [
        pytest.param(CHUNK - 1, id="inside_a_chunk"),
        pytest.param(CHUNK + 1, id="first_of_a_chunk"),
        # the defect (fixed in 2cb86fe): pass A compared each row only with the one before
        # it in the same chunk and never checked that a chunk reached its end, so this
        # deletion went unreported and verify said INTACT
        pytest.param(CHUNK, id="last_of_a_chunk"),
    ],
)
def test_deleted_row_is_a_missing_position(
    boundary_ledger: Path, tmp_path: Path, position: int
) -> None:
    copy = copy_ledger(boundary_ledger, tmp_path / "copy")
    with Db(copy) as db:
        db.delete(position)
    report = verify_dir(copy, workers=2)
    assert not report.intact
    assert [(f.kind.value, f.position) for f in report.findings] == [("missing_position", position)]
