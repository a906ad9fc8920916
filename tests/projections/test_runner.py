"""The runner on the embedded backend: stop_at, progress, bounded cache, doc_at errors, refs,
bad routes, stale code versions, the default read-model URL, and two runner processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from ledger.errors import ConflictError, NeikongError
from projections.base import LoggedEvent
from projections.read_model import BatchWrite, TrackingConflict, UnknownProjection, read_model_url
from projections.runner import ProjectionBehind, ProjectionRunner
from tests.projections._support import (
    EventsPerStream,
    append,
    clone_ledger,
    close_all,
    dump,
    empty_ledger,
    log_reader,
    open_model,
    sample_projections,
    signed_records,
)

REPO = Path(__file__).resolve().parents[2]
NAMES = [p.name for p in sample_projections()]


@pytest.fixture(autouse=True)
def closing() -> Iterator[None]:
    yield
    close_all()


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = empty_ledger(tmp_path_factory.mktemp("runner") / "base")
    directory = clone_ledger(base, tmp_path_factory.mktemp("runner") / "ledger")
    append(directory, signed_records(base, 300, 4))
    return directory


def runner_on(ledger: Path, url: str, projections=None, **kw) -> ProjectionRunner:
    return ProjectionRunner(
        log_reader(ledger), open_model(url), projections or sample_projections(), **kw
    )


def test_stop_at_progress_and_resume(ledger, tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    runner = runner_on(ledger, url)
    seen: list[int] = []
    assert runner.catch_up(batch=40, stop_at=100, progress=seen.append) == 100
    assert sum(seen) == 100
    assert max(seen) <= 40
    assert {p for _, p in runner.model.tracking().values()} == {100}
    total = runner.log.max_position()
    assert runner.catch_up(batch=1000) == total - 100
    assert runner.catch_up() == 0
    fresh = runner_on(ledger, f"sqlite:///{tmp_path / 'q.db'}")
    fresh.rebuild()
    assert dump(runner.model, NAMES) == dump(fresh.model, NAMES)


def test_a_tiny_cache_gives_the_same_bytes(ledger, tmp_path):
    small = runner_on(ledger, f"sqlite:///{tmp_path / 'a.db'}", cache_cap=4)
    small.catch_up(batch=9)
    assert sum(len(c) for c in small._cache.values()) <= 4 + 3 * 9 * 2
    big = runner_on(ledger, f"sqlite:///{tmp_path / 'b.db'}")
    big.catch_up(batch=10_000)
    assert dump(small.model, NAMES) == dump(big.model, NAMES)


def test_doc_at_needs_a_caught_up_model_and_knows_the_projection(ledger, tmp_path):
    runner = runner_on(ledger, f"sqlite:///{tmp_path / 'p.db'}")
    runner.catch_up(stop_at=50)
    key = runner.query("t_streams", limit=1)[0][0]
    with pytest.raises(ProjectionBehind, match="caught up to 50"):
        runner.doc_at("t_streams", key, 51)
    assert runner.doc_at("t_streams", key, 50) == runner.doc("t_streams", key)
    assert runner.doc_at("t_streams", key, 0) is None
    with pytest.raises(UnknownProjection, match="no projection 'nope'"):
        runner.doc("nope", key)
    assert runner.refs("t_streams", key) == sorted(set(runner.refs("t_streams", key)))
    assert runner.refs("t_streams", key, upto=runner.refs("t_streams", key)[0]) == [
        runner.refs("t_streams", key)[0]
    ]


def test_query_rejects_unknown_columns(ledger, tmp_path):
    runner = runner_on(ledger, f"sqlite:///{tmp_path / 'p.db'}")
    runner.catch_up()
    with pytest.raises(NeikongError, match="no index column 'x; DROP'"):
        runner.query("t_streams", {"x; DROP": 1})
    with pytest.raises(NeikongError, match="no index column"):
        runner.query("t_streams", order_by="-doc")
    assert runner.count("t_streams", {"family": "matter"}) > 0


class NulKeys(EventsPerStream):
    name: ClassVar[str] = "t_nul"

    def route(self, event: LoggedEvent) -> Iterable[str]:
        return (f"{event.stream}\x00",)


def test_a_key_with_nul_is_refused_and_nothing_is_committed(ledger, tmp_path):
    runner = runner_on(ledger, f"sqlite:///{tmp_path / 'p.db'}", [NulKeys()])
    with pytest.raises(NeikongError, match="NUL"):
        runner.catch_up()
    assert runner.model.position("t_nul") == 0
    assert runner.count("t_nul") == 0


def test_a_stale_compare_and_set_writes_nothing(ledger, tmp_path):
    runner = runner_on(ledger, f"sqlite:///{tmp_path / 'p.db'}")
    runner.catch_up(stop_at=10)
    stale = BatchWrite(
        rows={"t_types": [("forged", b"{}", "forged")]},
        refs=[("t_types", "forged", 11)],
        moves={"t_types": (3, 11)},
    )
    with pytest.raises(TrackingConflict) as caught:
        runner.model.commit_batch(stale)
    assert isinstance(caught.value, ConflictError)
    assert runner.doc("t_types", "forged") is None
    assert runner.refs("t_types", "forged") == []
    assert runner.model.position("t_types") == 10


def test_runner_with_other_code_version_refuses_to_write(ledger, tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    old = runner_on(ledger, url)
    old.catch_up(stop_at=20)

    class Newer(EventsPerStream):
        version = 2

    runner_on(ledger, url, [Newer()])  # resets t_streams to version 2
    with pytest.raises(NeikongError, match="stored at version 2, this code has 1"):
        old.catch_up()


def test_default_read_model_url(tmp_path):
    assert read_model_url(tmp_path, f"sqlite:///{tmp_path}/ledger.db") == (
        f"sqlite:///{tmp_path / 'projections.db'}"
    )
    pg = "postgresql://u:p@h:5432/db"
    assert read_model_url(tmp_path, pg) == pg


_CHILD = """
import sys
from ledger.log_reader import LogReader
from ledger.store import StoreConfig
from projections.read_model import ReadModel
from projections.runner import ProjectionRunner
from tests.projections._support import sample_projections
runner = ProjectionRunner(LogReader(StoreConfig(sys.argv[1])), ReadModel(sys.argv[2]),
                          sample_projections())
runner.catch_up(batch=int(sys.argv[3]))
print(runner.conflicts)
"""


def test_two_runner_processes_on_one_file(ledger, tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    open_model(url)
    args = [sys.executable, "-c", _CHILD, f"sqlite:///{ledger / 'ledger.db'}", url]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    children = [
        subprocess.Popen([*args, str(b)], cwd=REPO, env=env, stdout=subprocess.PIPE) for b in (3, 5)
    ]
    for child in children:
        child.communicate(timeout=120)
        assert child.returncode == 0
    fresh = runner_on(ledger, f"sqlite:///{tmp_path / 'q.db'}")
    fresh.rebuild()
    model = open_model(url)
    model.ensure(sample_projections())
    assert dump(model, NAMES) == dump(fresh.model, NAMES)


def test_gc_paused_restores_the_collector_state() -> None:
    import gc

    from ledger.gc_pause import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()
    with pytest.raises(ValueError, match="failing fold"), gc_paused():
        raise ValueError("a failing fold")
    assert gc.isenabled()
