"""Test projections, ledgers with simulated events, and table dumps for the projection tests.

The projections here are small but real folds (pure, several keys per event, index columns of
both kinds); the register projections come from `projections.registry.all_projections()`.
"""

from __future__ import annotations

import json
import random
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from ledger.keys import Signer
from ledger.ledger import CONFIG_FILE, Ledger
from ledger.log_reader import LogReader
from ledger.store import StoreConfig
from ledger.transport import InProcessChannel
from ops.pipeline import emit_simulated, enrol_demo_producers
from producers.producer import Producer
from producers.simulator import SYSTEMS, simulate
from projections.base import Doc, LoggedEvent, Projection
from projections.read_model import ReadModel
from projections.registry import all_projections


class EventsPerStream:
    """Per stream: event count, count per type, last position and the stream's family."""

    name: ClassVar[str] = "t_streams"
    version: ClassVar[int] = 1
    columns: ClassVar[tuple[tuple[str, str], ...]] = (("family", "text"), ("events", "int"))

    def route(self, event: LoggedEvent) -> Iterable[str]:
        return (event.stream,)

    def fold(self, doc: Doc | None, event: LoggedEvent, key: str) -> Doc:
        doc = doc or {"stream": key, "events": 0, "types": {}, "last": 0}
        doc["events"] += 1
        doc["types"][event.type] = doc["types"].get(event.type, 0) + 1
        doc["last"] = event.position
        return doc

    def index(self, key: str, doc: Doc) -> dict[str, str | int | None]:
        return {"family": key.split("/", 1)[0], "events": doc["events"]}


class OfficialActivity:
    """Per official (the actor, and the subject official when there is one): matters touched."""

    name: ClassVar[str] = "t_officials"
    version: ClassVar[int] = 1
    columns: ClassVar[tuple[tuple[str, str], ...]] = (("unit", "text"), ("acts", "int"))

    def route(self, event: LoggedEvent) -> Iterable[str]:
        keys = [event.actor.get("official", "")]
        if "official" in event.subject:
            keys.append(event.subject["official"])
        return [k for k in keys if k]

    def fold(self, doc: Doc | None, event: LoggedEvent, key: str) -> Doc:
        doc = doc or {"official": key, "unit": None, "acts": 0, "roles": [], "recent": []}
        if event.actor.get("official") == key:
            doc["acts"] += 1
            doc["unit"] = event.actor.get("unit", doc["unit"])
            role = event.actor.get("role")
            if role and role not in doc["roles"]:
                doc["roles"] = sorted([*doc["roles"], role])
        doc["recent"] = [*doc["recent"], [event.position, event.type]][-5:]
        return doc

    def index(self, key: str, doc: Doc) -> dict[str, str | int | None]:
        return {"unit": doc["unit"], "acts": doc["acts"]}


class TypeTally:
    """Per event type: how many, and the first and last event id (no index column of int)."""

    name: ClassVar[str] = "t_types"
    version: ClassVar[int] = 1
    columns: ClassVar[tuple[tuple[str, str], ...]] = (("family", "text"),)

    def route(self, event: LoggedEvent) -> Iterable[str]:
        return (event.type,)

    def fold(self, doc: Doc | None, event: LoggedEvent, key: str) -> Doc:
        if doc is None:
            doc = {"type": key, "n": 0, "first": event.event_id}
        doc["n"] += 1
        doc["last"] = event.event_id
        return doc

    def index(self, key: str, doc: Doc) -> dict[str, str | int | None]:
        return {"family": key.split(".", 1)[0]}


def sample_projections() -> list[Projection]:
    return [EventsPerStream(), OfficialActivity(), TypeTally()]


def every_projection() -> list[Projection]:
    """The test projections plus every registered one."""
    return [*sample_projections(), *all_projections()]


# -- ledgers ----------------------------------------------------------------------------------


def empty_ledger(directory: Path) -> Path:
    """A ledger with the demo producers enrolled (a few registry events), closed."""
    with Ledger.init(directory) as ledger:
        enrol_demo_producers(ledger)
    return directory


def clone_ledger(source: Path, target: Path) -> Path:
    """A copy of a (closed) SQLite ledger directory, its config pointing at the copy."""
    shutil.copytree(source, target)
    config = json.loads((target / CONFIG_FILE).read_text("utf-8"))
    config["store_url"] = f"sqlite:///{target / 'ledger.db'}"
    (target / CONFIG_FILE).write_text(json.dumps(config), "utf-8")
    return target


def signed_records(ledger_dir: Path, events: int, seed: int) -> list[bytes]:
    """`events` simulated records signed by the ledger's demo producer keys (not appended)."""
    channel = InProcessChannel()
    rng = random.Random(seed)
    with Ledger.open(ledger_dir) as ledger:
        producers = {
            s: Producer(s, Signer.from_file(ledger.key_path(s)), channel, rng=rng) for s in SYSTEMS
        }
    for _ in emit_simulated(producers, simulate(seed, events)):
        pass
    return list(channel.poll(len(channel)))


def append(ledger_dir: Path, records: list[bytes]) -> None:
    with Ledger.open(ledger_dir) as ledger:
        outcomes = ledger.appender(workers=0).submit(records)
    bad = [o for o in outcomes if o.status != "appended"]
    assert not bad, bad[:3]


_OPEN: list[LogReader | ReadModel] = []


def log_reader(ledger_dir: Path) -> LogReader:
    """A LogReader on the ledger, closed by `close_all` (the `closing` fixture)."""
    reader = LogReader(StoreConfig(f"sqlite:///{ledger_dir / 'ledger.db'}"))
    _OPEN.append(reader)
    return reader


def open_model(url: str) -> ReadModel:
    """A ReadModel, closed by `close_all` (the `closing` fixture)."""
    opened = ReadModel(url)
    _OPEN.append(opened)
    return opened


def close_all() -> None:
    while _OPEN:
        try:
            _OPEN.pop().close()
        except Exception:
            continue


# -- read models ------------------------------------------------------------------------------


def pg_schema_url(dsn: str) -> tuple[str, str]:
    """A URL whose search_path is a fresh private schema (other tests drop `public` tables)."""
    schema = f"h4_{uuid.uuid4().hex[:12]}"
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}options=-csearch_path%3D{schema}", schema


def drop_pg_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def dump(model: ReadModel, names: Iterable[str]) -> dict[str, Any]:
    """Every row of the named projections (docs, index columns), their refs and positions."""
    out: dict[str, Any] = {}
    tracking = model.tracking()
    for name in sorted(names):
        cur = model.conn.cursor()
        cur.execute(f"SELECT * FROM proj_{name} ORDER BY key")
        rows = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in cur]
        sql = "SELECT key, position FROM proj_refs WHERE projection = ? ORDER BY key, position"
        cur.execute(sql if model.dialect == "sqlite" else sql.replace("?", "%s"), (name,))
        refs = [tuple(r) for r in cur]
        cur.close()
        out[name] = {"rows": rows, "refs": refs, "position": tracking[name][1]}
    return out
