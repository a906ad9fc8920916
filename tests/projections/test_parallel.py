"""A parallel rebuild (one group of projections per process, the heaviest projection split into
shards) equals a serial one, byte for byte, on SQLite and PostgreSQL."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.errors import NeikongError
from ledger.store import StoreConfig
from projections.base import Doc, LoggedEvent
from projections.case_history import CaseHistory
from projections.parallel import partition, rebuild_parallel
from projections.read_model import TrackingConflict
from projections.registry import all_projections
from projections.runner import ProjectionRunner
from projections.shards import shard_heavy
from tests.conftest import require_pg
from tests.projections._support import (
    append,
    close_all,
    drop_pg_schema,
    dump,
    empty_ledger,
    log_reader,
    open_model,
    pg_schema_url,
    signed_records,
)


@pytest.fixture
def closing() -> Iterator[None]:
    yield
    close_all()


def test_partition_balances_by_cost() -> None:
    projections = all_projections()
    groups = partition(projections, 2)
    assert sorted(n for g in groups for n in g) == sorted(p.name for p in projections)
    cost = {p.name: getattr(p, "cost", 1) for p in projections}
    loads = [sum(cost[n] for n in g) for g in groups]
    assert max(loads) - min(loads) <= max(cost.values())  # balanced by cost
    assert partition(projections, 1) == [sorted(p.name for p in projections)]
    assert len(partition(projections, 16)) == len(projections)


def test_parallel_rebuild_equals_serial(tmp_path: Path, closing: None) -> None:
    ledger = empty_ledger(tmp_path / "ledger")
    append(ledger, signed_records(ledger, 3000, seed=11))
    names = [p.name for p in all_projections()]
    store = StoreConfig(f"sqlite:///{ledger / 'ledger.db'}")
    serial_url = f"sqlite:///{tmp_path / 'serial.db'}"
    ProjectionRunner(log_reader(ledger), open_model(serial_url), all_projections()).rebuild(
        batch=700
    )
    seen: list[int] = []
    parallel_url = f"sqlite:///{tmp_path / 'parallel.db'}"
    size = rebuild_parallel(
        store, parallel_url, names, workers=2, batch=500, progress=seen.append, min_events=0
    )
    assert size == log_reader(ledger).max_position()
    assert sum(seen) == size
    assert dump(open_model(parallel_url), names) == dump(open_model(serial_url), names)
    # and again over a model that already holds documents: a rebuild starts from zero
    rebuild_parallel(store, parallel_url, names, workers=2, min_events=0)
    assert dump(open_model(parallel_url), names) == dump(open_model(serial_url), names)


class Exploding:
    """A light projection (cost 1: rebuilt by a spawned worker) whose fold fails."""

    name = "exploding"
    version = 1
    columns: tuple[tuple[str, str], ...] = ()
    types = ("matter.",)

    def route(self, event: LoggedEvent) -> tuple[str, ...]:
        return (event.stream,)

    def fold(self, doc: Doc | None, event: LoggedEvent, key: str) -> Doc:
        raise NeikongError(f"fold failed at position {event.position}")

    def index(self, key: str, doc: Doc) -> dict[str, str | int | None]:
        return {}


def test_a_workers_failure_fails_the_rebuild(tmp_path: Path, closing: None) -> None:
    ledger = empty_ledger(tmp_path / "ledger")
    append(ledger, signed_records(ledger, 600, seed=3))
    store = StoreConfig(f"sqlite:///{ledger / 'ledger.db'}")
    projections = [*all_projections(), Exploding()]
    groups = partition(projections, 2)
    assert not any("exploding" in g and "case_history" in g for g in groups)  # runs elsewhere
    assert pickle.loads(pickle.dumps(Exploding())).name == "exploding"  # in a spawned worker
    with pytest.raises(NeikongError, match="fold failed at position"):
        rebuild_parallel(
            store,
            f"sqlite:///{tmp_path / 'model.db'}",
            [p.name for p in projections],
            projections=projections,
            workers=2,
            min_events=0,
        )


def test_unknown_projection_is_refused(tmp_path: Path) -> None:
    ledger = empty_ledger(tmp_path / "ledger")
    store = StoreConfig(f"sqlite:///{ledger / 'ledger.db'}")
    with pytest.raises(NeikongError, match="no registered projection"):
        rebuild_parallel(store, f"sqlite:///{tmp_path / 'm.db'}", ["nope"])


def test_the_heaviest_projection_is_sharded_and_merged(tmp_path: Path, closing: None) -> None:
    """case_history costs more than a fair share of two workers: it is rebuilt as two shards
    (disjoint keys, documents byte for byte its own) merged into it, with its indexes."""
    projections = all_projections()
    planned, parts = shard_heavy(projections, 2)
    assert parts == {"case_history": ["case_history_s0", "case_history_s1"]}
    shards = [p for p in planned if p.name in parts["case_history"]]
    keys = [f"matter/r-{i}" for i in range(200)]
    assert all(sum(s.mine(k) for s in shards) == 1 for k in keys)  # type: ignore[attr-defined]
    assert all(any(s.mine(k) for k in keys) for s in shards)  # type: ignore[attr-defined]
    assert shard_heavy(projections, 1) == (projections, {})

    ledger = empty_ledger(tmp_path / "ledger")
    append(ledger, signed_records(ledger, 1500, seed=4))
    names = [p.name for p in projections]
    store = StoreConfig(f"sqlite:///{ledger / 'ledger.db'}")
    serial = open_model(f"sqlite:///{tmp_path / 'serial.db'}")
    ProjectionRunner(log_reader(ledger), serial, all_projections()).rebuild(batch=300)
    url = f"sqlite:///{tmp_path / 'parallel.db'}"
    model = open_model(url)
    model.reset_all([shards[1]], indexes=False)  # a stray shard of a crashed rebuild
    rebuild_parallel(store, url, names, workers=2, min_events=0, shard=True)
    assert dump(model, names) == dump(serial, names)
    assert set(model.tracking()) == set(names)  # shards merged and dropped
    assert dump(model, ["case_history"])["case_history"]["rows"], "the log holds matters"
    cur = model.conn.cursor()
    cur.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'proj_case_history'")
    found = {r[0] for r in cur.fetchall()}
    assert {f"proj_case_history_{c}" for c, _ in CaseHistory.columns} <= found


def test_merge_refuses_shards_at_different_positions(tmp_path: Path, closing: None) -> None:
    model = open_model(f"sqlite:///{tmp_path / 'm.db'}")
    proj = CaseHistory()
    planned, parts = shard_heavy([proj, *all_projections()[:1]], 2)
    shards = [p for p in planned if p.name in parts["case_history"]]
    model.ensure([proj, *shards])
    cur = model.conn.cursor()
    cur.execute("UPDATE proj_tracking SET position = 5 WHERE projection = 'case_history_s0'")
    with pytest.raises(TrackingConflict, match="cannot merge"):
        model.merge_parts(proj, parts["case_history"])
    assert model.position("case_history") == 0


def test_parallel_sharded_rebuild_on_postgres_equals_serial(tmp_path: Path, closing: None) -> None:
    dsn = require_pg()
    ledger = empty_ledger(tmp_path / "ledger")
    append(ledger, signed_records(ledger, 1200, seed=6))
    names = [p.name for p in all_projections()]
    store = StoreConfig(f"sqlite:///{ledger / 'ledger.db'}")
    serial = open_model(f"sqlite:///{tmp_path / 'serial.db'}")
    ProjectionRunner(log_reader(ledger), serial, all_projections()).rebuild(batch=300)
    url, schema = pg_schema_url(dsn)
    try:
        for _ in range(2):  # twice: the second over a model that holds documents
            rebuild_parallel(store, url, names, workers=2, min_events=0, shard=True)
            model = open_model(url)
            assert dump(model, names) == dump(serial, names)
            assert set(model.tracking()) == set(names)
            model.close()
    finally:
        drop_pg_schema(dsn, schema)


def test_own_stream_types_are_routed_to_their_stream_only() -> None:
    """What lets a shard decline a record unparsed: every catalogue example of an
    `own_stream_types` type is routed to its own stream and nowhere else."""
    from tests.catalogue_examples import EXAMPLES
    from tests.projections.test_type_hints import _logged

    checked = 0
    for proj in all_projections():
        own = tuple(getattr(proj, "own_stream_types", ()))
        for event_type in sorted(EXAMPLES):
            if own and event_type.startswith(own):
                event = _logged(event_type)
                assert list(proj.route(event)) == [event.stream], (proj.name, event_type)
                checked += 1
    assert checked, "the case history declares matter.* own-stream types"
    shard = shard_heavy(all_projections(), 2)[0]
    s0 = next(p for p in shard if p.name == "case_history_s0")
    event = _logged(next(t for t in sorted(EXAMPLES) if t.startswith("matter.")))
    from ledger.store import stream_id_hex

    sid = stream_id_hex(event.stream)
    assert s0.skips_record(event.type, sid) is not s0.mine(event.stream)  # type: ignore[attr-defined]
    assert not s0.skips_record("decision.collective_recorded", sid)  # type: ignore[attr-defined]
