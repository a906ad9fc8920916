"""Two appenders on one ledger (two ingest processes sharing a topic's partitions)."""

from __future__ import annotations

from pathlib import Path

from ledger.appender import Appender
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.store import LedgerStore, StoreConfig
from tests.ledger._support import FP_PREFIX, FP_SCOPE, FP_SYSTEM, Feed, verify_dir


def test_a_record_parked_by_one_writer_is_appended_when_the_other_fills_its_gap(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "ledger"
    with Ledger.init(directory) as ledger:
        ledger.enrol_key(FP_SYSTEM, "producer", FP_SCOPE)
        feed = Feed(FP_SYSTEM, Signer.from_file(ledger.key_path(FP_SYSTEM)), FP_PREFIX)
        first = feed.next("2026-000001")  # producer seq 1, stream A
        second = feed.next("2026-000002")  # producer seq 2, stream B
        config = ledger.store.config
    store_b = LedgerStore(StoreConfig(config.url))
    with Ledger.open(directory) as ledger_a:
        a = ledger_a.appender()
        b = Appender(store_b, Ledger.open(directory).registry)
        try:
            # A gets producer seq 2 first: it must wait for seq 1
            assert [o.status for o in a.submit([second])] == ["parked"]
            # B (the other partition's ingester) appends seq 1
            assert [o.status for o in b.submit([first])] == ["appended"]
            # A, idle, looks at its parked records again
            assert a.retry_parked() == 1
            assert ledger_a.store.parked() == []
            assert ledger_a.store.max_position() == 4  # genesis, enrolment, two events
        finally:
            b.close()
            store_b.close()
    assert verify_dir(directory).intact


def test_a_restarted_writer_releases_records_whose_gap_was_filled_meanwhile(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "ledger"
    with Ledger.init(directory) as ledger:
        ledger.enrol_key(FP_SYSTEM, "producer", FP_SCOPE)
        feed = Feed(FP_SYSTEM, Signer.from_file(ledger.key_path(FP_SYSTEM)), FP_PREFIX)
        first, second, third = (feed.next(f"2026-00000{i}") for i in (1, 2, 3))
        assert [o.status for o in ledger.appender().submit([second])] == ["parked"]
    other = LedgerStore(StoreConfig(f"sqlite:///{directory / 'ledger.db'}"))
    with Ledger.open(directory) as ledger:
        writer = Appender(other, ledger.registry)
        assert [o.status for o in writer.submit([first])] == ["appended"]
        writer.close()
    other.close()
    with Ledger.open(directory) as ledger:  # restart: the first batch releases `second`
        assert [o.status for o in ledger.appender().submit([third])] == ["appended"]
        assert ledger.store.parked() == []
        assert ledger.store.max_position() == 5
    assert verify_dir(directory).intact
