"""A parallel rebuild (one group of projections per process) equals a serial one, byte for byte."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.errors import NeikongError
from ledger.store import StoreConfig
from projections.parallel import partition, rebuild_parallel
from projections.registry import all_projections
from projections.runner import ProjectionRunner
from tests.projections._support import (
    append,
    close_all,
    dump,
    empty_ledger,
    log_reader,
    open_model,
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


def test_unknown_projection_is_refused(tmp_path: Path) -> None:
    ledger = empty_ledger(tmp_path / "ledger")
    store = StoreConfig(f"sqlite:///{ledger / 'ledger.db'}")
    with pytest.raises(NeikongError, match="no registered projection"):
        rebuild_parallel(store, f"sqlite:///{tmp_path / 'm.db'}", ["nope"])
