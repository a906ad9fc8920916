"""The projection contract, run against every read-model backend (SQLite, PostgreSQL) and every
projection (the test projections of tests/projections/_support.py plus every registered one).

- rebuild == incremental, byte for byte, whatever the append and catch-up batch splits;
- a SIGKILLed catch-up resumes to exactly the rebuild's bytes, with no duplicate ref;
- two runners on one model leave it equal to a rebuild;
- `doc_at(name, key, size)` equals a rebuild stopped at `size`;
- queries (where / order / limit / offset / count) agree with the documents;
- SQLite and PostgreSQL hold the same bytes and give the same answers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.base import encode_doc
from projections.read_model import ReadModel
from projections.runner import ProjectionRunner
from tests.conftest import require_pg
from tests.projections._support import (
    append,
    clone_ledger,
    close_all,
    drop_pg_schema,
    dump,
    empty_ledger,
    every_projection,
    log_reader,
    open_model,
    pg_schema_url,
    signed_records,
)

REPO = Path(__file__).resolve().parents[2]
SEEDS = (3, 5)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return empty_ledger(tmp_path_factory.mktemp("proj-base") / "ledger")


class Records(dict[int, list[bytes]]):
    """Signed records per seed (a short repr: Hypothesis prints the arguments it failed on)."""

    def __repr__(self) -> str:
        return f"Records(seeds={sorted(self)})"


@pytest.fixture(scope="module")
def records(base: Path) -> Records:
    return Records({seed: signed_records(base, 400, seed) for seed in SEEDS})


@pytest.fixture(scope="module")
def full_ledger(base: Path, records: Records, tmp_path_factory) -> Path:
    ledger = clone_ledger(base, tmp_path_factory.mktemp("proj-full") / "ledger")
    append(ledger, records[SEEDS[0]])
    return ledger


@pytest.fixture(autouse=True)
def closing() -> Iterator[None]:
    yield
    close_all()


class Models:
    """Fresh read-model URLs of one backend; PostgreSQL ones in private schemas."""

    def __init__(self, backend: str, directory: Path) -> None:
        self.backend = backend
        self.directory = directory
        self.dsn = require_pg() if backend == "postgres" else None
        self.schemas: list[str] = []

    def url(self) -> str:
        if self.dsn is None:
            return f"sqlite:///{self.directory / f'proj-{uuid.uuid4().hex[:8]}.db'}"
        url, schema = pg_schema_url(self.dsn)
        self.schemas.append(schema)
        return url

    def cleanup(self) -> None:
        for schema in self.schemas:
            assert self.dsn is not None
            drop_pg_schema(self.dsn, schema)


@pytest.fixture(params=["sqlite", "postgres"])
def models(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Models]:
    m = Models(request.param, tmp_path)
    yield m
    m.cleanup()


def _names() -> list[str]:
    return [p.name for p in every_projection()]


def _rebuilt(ledger: Path, url: str, stop_at: int | None = None) -> Any:
    model = open_model(url)
    ProjectionRunner(log_reader(ledger), model, every_projection()).rebuild(
        batch=10_000, stop_at=stop_at
    )
    return model


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.sampled_from(SEEDS),
    n=st.integers(1, 400),
    cuts=st.lists(st.floats(0, 1), max_size=4),
    batches=st.lists(st.integers(1, 150), min_size=5, max_size=5),
)
def test_rebuild_equals_incremental(models, base, records, tmp_path, n, seed, cuts, batches):
    ledger = clone_ledger(base, tmp_path / f"l-{uuid.uuid4().hex[:8]}")
    stream = records[seed][:n]
    points = sorted({int(c * n) for c in cuts} | {n})
    incremental = open_model(models.url())
    done = 0
    for i, point in enumerate(points):
        if point > done:
            append(ledger, stream[done:point])
            done = point
        runner = ProjectionRunner(log_reader(ledger), incremental, every_projection())
        runner.catch_up(batch=batches[i % len(batches)])
    fresh = _rebuilt(ledger, models.url())
    assert dump(incremental, _names()) == dump(fresh, _names())
    assert incremental.position("t_streams") == log_reader(ledger).max_position()
    incremental.close()
    fresh.close()


_CRASH_CHILD = """
import sys, time
from ledger.log_reader import LogReader
from ledger.store import StoreConfig
from projections.read_model import ReadModel
from projections.runner import ProjectionRunner
from tests.projections._support import every_projection
log = LogReader(StoreConfig(sys.argv[1]))
runner = ProjectionRunner(log, ReadModel(sys.argv[2]), every_projection())
runner.catch_up(batch=7, progress=lambda n: time.sleep(0.02))
print("finished", flush=True)
"""


def _killed_after_commits(script: str, full_ledger: Path, url: str) -> ReadModel:
    """Run `script` (catching up the model at `url` from `full_ledger`) in a child process and
    SIGKILL it once every projection has committed position 60 or more; return the model."""
    child = subprocess.Popen(
        [sys.executable, "-c", script, f"sqlite:///{full_ledger / 'ledger.db'}", url],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
    )
    model = open_model(url)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:  # wait until some batches are committed
            tracking = model.tracking() if child.poll() is None else {}
            if tracking and min(p for _, p in tracking.values()) >= 60:
                break
            assert child.poll() is None, "the child finished or failed before the kill"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    return model


def test_sigkill_mid_catch_up_resumes_exactly(models, full_ledger):
    model = _killed_after_commits(_CRASH_CHILD, full_ledger, models.url())
    total = log_reader(full_ledger).max_position()
    positions = {p for _, p in model.tracking().values()}
    assert all(0 < p < total for p in positions), positions
    ProjectionRunner(log_reader(full_ledger), model, every_projection()).catch_up(batch=50)
    assert dump(model, _names()) == dump(_rebuilt(full_ledger, models.url()), _names())
    cur = model.conn.cursor()
    cur.execute(
        "SELECT COUNT(*), COUNT(DISTINCT projection || '|' || key || '|' || position)"
        " FROM proj_refs"
    )
    count, distinct = cur.fetchone()
    assert count == distinct > 0


def test_two_runners_on_one_model_equal_a_rebuild(models, full_ledger):
    url = models.url()
    open_model(url).close()  # tables exist before the race
    errors: list[BaseException] = []
    conflicts: list[int] = []

    def run(batch: int) -> None:
        try:
            model = open_model(url)
            runner = ProjectionRunner(log_reader(full_ledger), model, every_projection())
            runner.catch_up(batch=batch, progress=lambda n: time.sleep(0.001))
            conflicts.append(runner.conflicts)
            model.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(b,)) for b in (13, 17)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    model = open_model(url)
    ProjectionRunner(log_reader(full_ledger), model, every_projection())
    assert dump(model, _names()) == dump(_rebuilt(full_ledger, models.url()), _names())


def test_doc_at_equals_a_rebuild_stopped_at_that_size(models, full_ledger):
    live = _rebuilt(full_ledger, models.url())
    runner = ProjectionRunner(log_reader(full_ledger), live, every_projection())
    total = log_reader(full_ledger).max_position()
    for size in (1, 6, 57, total // 2, total - 1, total):
        past = _rebuilt(full_ledger, models.url(), stop_at=size)
        for name in _names():
            expected = dict(past.iter_docs(name))
            for key, _ in live.iter_docs(name):
                got = runner.doc_at(name, key, size)
                if key in expected:
                    assert got is not None, (name, key, size)
                    assert encode_doc(got) == expected[key], (name, key, size)
                else:
                    assert got is None, (name, key, size)
        past.close()


def test_queries_agree_with_the_documents(models, full_ledger):
    model = _rebuilt(full_ledger, models.url())
    runner = ProjectionRunner(log_reader(full_ledger), model, every_projection())
    for p in every_projection():
        docs = {k: orjson.loads(v) for k, v in model.iter_docs(p.name)}
        assert runner.count(p.name) == len(docs)
        assert [k for k, _ in runner.query(p.name)] == sorted(docs, key=str.encode)
        for column, kind in p.columns:
            values = {p.index(k, d)[column] for k, d in docs.items()}
            for value in sorted(values, key=repr)[:3]:
                want = sorted(k for k, d in docs.items() if p.index(k, d)[column] == value)
                got = runner.query(p.name, {column: value})
                assert [k for k, _ in got] == want
                assert runner.count(p.name, {column: value}) == len(want)
            if kind == "int":
                ordered = runner.query(p.name, order_by=f"-{column}", limit=5, offset=2)
                want_keys = sorted(docs, key=lambda k: (-(p.index(k, docs[k])[column] or 0), k))
                assert [k for k, _ in ordered] == want_keys[2:7]


def test_version_change_rebuilds_from_zero(models, full_ledger):
    url = models.url()
    model = _rebuilt(full_ledger, url)
    before = dump(model, ["t_streams"])
    model.set_doc("t_streams", before["t_streams"]["rows"][0][0], b'{"forged":true}')

    class Bumped(type(every_projection()[0])):  # type: ignore[misc]
        version = 2

    runner = ProjectionRunner(log_reader(full_ledger), model, [Bumped()])
    assert runner.reset_on_open == ["t_streams"]
    assert model.tracking()["t_streams"] == (2, 0)
    runner.catch_up()
    assert dump(model, ["t_streams"]) == before


def test_sqlite_and_postgres_hold_the_same_bytes(full_ledger, tmp_path):
    dsn = require_pg()
    pg = Models("postgres", tmp_path)
    pg.dsn = dsn
    try:
        lite = _rebuilt(full_ledger, f"sqlite:///{tmp_path / 'p.db'}")
        post = _rebuilt(full_ledger, pg.url())
        assert dump(lite, _names()) == dump(post, _names())
        for name in _names():
            assert list(lite.iter_docs(name, page=7)) == list(post.iter_docs(name, page=7))
        post.close()
    finally:
        pg.cleanup()


_REBUILD_CHILD = """
import sys, time
from ledger.log_reader import LogReader
from ledger.store import StoreConfig
from projections.read_model import ReadModel
from projections.runner import ProjectionRunner
from tests.projections._support import every_projection
log = LogReader(StoreConfig(sys.argv[1]))
runner = ProjectionRunner(log, ReadModel(sys.argv[2]), every_projection())
runner.rebuild(batch=7, flush_every=21, progress=lambda n: time.sleep(0.05))
print("finished", flush=True)
"""


def _indexes(model: Any, name: str) -> set[str]:
    cur = model.conn.cursor()
    if model.dialect == "sqlite":
        cur.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?",
            (f"proj_{name}",),
        )
    else:
        cur.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s"
            " AND schemaname = current_schema()",
            (f"proj_{name}",),
        )
    return {
        str(r[0])
        for r in cur.fetchall()
        if not str(r[0]).startswith(("sqlite_", "proj_" + name + "_pkey"))
    }


def test_sigkill_mid_rebuild_resumes_exactly_and_restores_the_indexes(models, full_ledger):
    """A rebuild commits every `flush_every` positions, without secondary indexes: killed
    between two commits, a new runner creates the indexes and resumes to the rebuild's bytes."""
    model = _killed_after_commits(_REBUILD_CHILD, full_ledger, models.url())
    total = log_reader(full_ledger).max_position()
    positions = {p for _, p in model.tracking().values()}
    assert all(0 < p < total and p % 21 == 0 for p in positions), positions
    indexed = [p for p in every_projection() if p.columns]
    assert all(not _indexes(model, p.name) for p in indexed)  # deferred to the rebuild's end
    ProjectionRunner(log_reader(full_ledger), model, every_projection()).catch_up(batch=50)
    for p in indexed:
        assert _indexes(model, p.name) == {f"proj_{p.name}_{c}" for c, _ in p.columns}
    assert dump(model, _names()) == dump(_rebuilt(full_ledger, models.url()), _names())


def test_a_rebuild_commits_rarely_and_builds_the_indexes(models, full_ledger):
    model = open_model(models.url())
    commits: list[int] = []
    real = model.commit_batch

    def counted(write: Any) -> None:
        commits.append(len(write.moves))
        real(write)

    model.commit_batch = counted  # type: ignore[method-assign]
    runner = ProjectionRunner(log_reader(full_ledger), model, every_projection())
    total = log_reader(full_ledger).max_position()
    runner.rebuild(batch=10)
    assert len(commits) == 1  # default flush: 250k positions or 50k documents
    runner.rebuild(batch=10, flush_every=100)
    assert len(commits) == 1 + -(-total // 100)
    runner.rebuild(batch=10, max_dirty=1)
    assert len(commits) > 1 + -(-total // 100) + total // 20
    for p in every_projection():
        assert _indexes(model, p.name) == {f"proj_{p.name}_{c}" for c, _ in p.columns}
    assert dump(model, _names()) == dump(_rebuilt(full_ledger, models.url()), _names())


def test_stream_keyed_refs_are_found_in_the_stream(models, full_ledger):
    """The case history stores no refs row for an event routed to its own stream; `refs`
    still lists exactly the positions whose events `route` sends to the key."""
    from projections.base import decode_record

    model = _rebuilt(full_ledger, models.url())
    runner = ProjectionRunner(log_reader(full_ledger), model, every_projection())
    proj = runner.projections["case_history"]
    assert getattr(proj, "stream_keyed", False)
    expected: dict[str, list[int]] = {}
    streams: dict[int, str] = {}
    for position, _, _, record in log_reader(full_ledger).by_position(1, 10**9):
        event = decode_record(position, record)
        streams[position] = event.stream
        for key in proj.route(event):
            expected.setdefault(key, []).append(position)
    assert expected, "the sample log holds matters"
    assert {k for k, _ in model.iter_docs("case_history")} == set(expected)
    for key, positions in expected.items():
        assert runner.refs("case_history", key) == positions
        stored = model.refs("case_history", key)
        assert all(streams[p] != key for p in stored)
        assert runner.refs("case_history", key, upto=positions[0]) == positions[:1]
    middle = log_reader(full_ledger).max_position() // 2
    touched = {k for k, ps in expected.items() if any(p > middle for p in ps)}
    assert runner.keys_touched_after("case_history", middle) == touched
