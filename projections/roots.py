"""Signed state roots of projections: publish one tied to a log size, check a read model by it.

The state root of a projection at log size N (what an auditor recomputes):

    rows     = every (key, doc) of the projection after folding log positions 1..N, where doc
               is the stored document bytes (`projections.base.encode_doc`: sorted keys, no
               whitespace, UTF-8), ordered by the UTF-8 bytes of key, ascending
    leaf(i)  = UTF-8(key) ‖ 0x00 ‖ SHA-256(doc)            (keys never contain NUL)
    root     = RFC 6962 Merkle tree hash over the leaves in that order
               (leaf hash SHA-256(0x00 ‖ leaf), node hash SHA-256(0x01 ‖ l ‖ r);
               the empty projection has root SHA-256(""))

Published as the event `projection.root_published` on stream `projection/<name>` with data
{projection, version, log_size, root (hex), rows}, signed by the ledger's projector service key
(scope: streams `projection/`, types `projection.*`). The ledger checked that signature and
scope at append; `neikong verify` proves the event is still the one appended.

Guarantees:

- `publish_roots` MUST compute the root over the model caught up to exactly the log size it
  publishes (or, if the model is already further, over the documents as they stood then).
- `check_projection` MUST report a mismatch if the latest published root differs from a
  rebuild of the log prefix it names, or if the live read model's documents differ from a
  rebuild (at the published size and at the live model's tracking position). It never writes
  to the live model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ledger.envelope import HEADER_LEN
from ledger.errors import NeikongError
from ledger.ledger import Ledger
from ledger.log_reader import LogReader
from ledger.merkle import CompactRange, leaf_hash
from projections.base import Projection, encode_doc
from projections.read_model import ReadModel
from projections.runner import ProjectionBehind, ProjectionRunner

__all__ = [
    "ROOT_EVENT",
    "CheckResult",
    "PublishedRoot",
    "check_projection",
    "latest_published",
    "live_root_at",
    "publish_roots",
    "root_of_rows",
    "state_leaf",
    "state_root",
]

ROOT_EVENT = "projection.root_published"
PROJECTOR_ACTOR = {"official": "neikong-projector", "role": "projector"}


@dataclass(frozen=True)
class PublishedRoot:
    projection: str
    version: int
    log_size: int
    root: str
    rows: int
    position: int = 0  # where the root_published event itself sits in the log


def state_leaf(key: str, doc: bytes) -> bytes:
    """UTF-8(key) ‖ 0x00 ‖ SHA-256(doc)."""
    return key.encode() + b"\x00" + hashlib.sha256(doc).digest()


def root_of_rows(rows: Iterable[tuple[str, bytes]]) -> tuple[str, int]:
    """(root hex, row count) of (key, doc bytes) given in ascending UTF-8 key order."""
    tree = CompactRange()
    last: bytes | None = None
    for key, doc in rows:
        raw = key.encode()
        if b"\x00" in raw:
            raise NeikongError(f"key {key!r} contains NUL: it cannot be a state-root leaf")
        if last is not None and raw <= last:
            raise NeikongError(f"rows out of key order at {key!r}: the read model is damaged")
        last = raw
        tree.append(leaf_hash(state_leaf(key, doc)))
    return tree.root().hex(), tree.size


def state_root(model: ReadModel, name: str) -> tuple[str, int]:
    """(root hex, rows) of the projection as stored now (one consistent snapshot)."""
    with model.snapshot():
        return root_of_rows(model.iter_docs(name))


def live_root_at(runner: ProjectionRunner, name: str, size: int) -> tuple[str, int, int]:
    """(root hex, rows, tracked position) of the live model as it stood at log size `size`.

    Rows no event after `size` touched are taken as stored; the others are refolded from their
    refs (`doc_at`). Raises `ProjectionBehind` if the model has not reached `size`.
    """
    model = runner.model
    with model.snapshot():
        tracked = model.position(name)
        if tracked < size:
            raise ProjectionBehind(f"projection {name!r} is at {tracked}, not {size}")
        touched = runner.keys_touched_after(name, size)

        def rows() -> Iterable[tuple[str, bytes]]:
            for key, stored in model.iter_docs(name):
                if key not in touched:
                    yield key, stored
                    continue
                past = runner.doc_at(name, key, size)
                if past is not None:
                    yield key, encode_doc(past)

        root, count = root_of_rows(rows())
    return root, count, tracked


def publish_roots(
    ledger: Ledger, runner: ProjectionRunner, names: Iterable[str] | None = None
) -> list[PublishedRoot]:
    """Catch the runner up to the log's current size N, compute the roots of `names` (default:
    all of the runner's projections) at N, and append one signed root event for each."""
    chosen = list(names or runner.projections)
    for name in chosen:
        if name not in runner.projections:
            raise NeikongError(f"no projection {name!r} in this runner")
    size = runner.log.max_position()
    runner.catch_up(stop_at=size)
    roots = [(name, *live_root_at(runner, name, size)[:2]) for name in chosen]
    published = []
    for name, root, rows in roots:
        version = runner.projections[name].version
        appended = ledger.append_as(
            "projector",
            f"projection/{name}",
            ROOT_EVENT,
            actor=PROJECTOR_ACTOR,
            data={
                "projection": name,
                "version": version,
                "log_size": size,
                "root": root,
                "rows": rows,
            },
        )
        published.append(PublishedRoot(name, version, size, root, rows, appended.position))
    return published


def latest_published(ledger: Ledger, name: str) -> PublishedRoot | None:
    """The last `projection.root_published` of `name` in the log, if any."""
    found: PublishedRoot | None = None
    for position, record in ledger.store.stream_rows(f"projection/{name}"):
        body: dict[str, Any] = orjson.loads(record[HEADER_LEN:])
        if body.get("type") != ROOT_EVENT:
            continue
        d = body["data"]
        found = PublishedRoot(
            d["projection"], d["version"], d["log_size"], d["root"], d["rows"], position
        )
    return found


@dataclass
class CheckResult:
    """The verdict on one projection; `mismatches` empty means every comparison agreed."""

    projection: str
    published: PublishedRoot | None
    live_position: int
    comparisons: dict[str, dict[str, Any]] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def compare(self, label: str, want: tuple[str, int], got: tuple[str, int]) -> None:
        equal = want == got
        self.comparisons[label] = {
            "expected_root": want[0],
            "expected_rows": want[1],
            "root": got[0],
            "rows": got[1],
            "equal": equal,
        }
        if not equal:
            self.mismatches.append(label)

    def to_json(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "verdict": "ok" if self.ok else "mismatch",
            "published": None if self.published is None else self.published.__dict__,
            "live_position": self.live_position,
            "comparisons": self.comparisons,
            "mismatches": self.mismatches,
            "notes": self.notes,
        }


def check_projection(
    ledger: Ledger, live: ProjectionRunner, proj: Projection, *, batch: int = 5000
) -> CheckResult:
    """Rebuild `proj` into a scratch in-memory model and compare roots (see module doc)."""
    name = proj.name
    published = latest_published(ledger, name)
    live_position = live.model.position(name)
    result = CheckResult(name, published, live_position)
    log = LogReader(ledger.store.config)
    scratch = ReadModel("sqlite://:memory:")
    try:
        runner = ProjectionRunner(log, scratch, [proj])
        at_published = published is not None and published.version == proj.version
        if published is None:
            result.notes.append("no published root")
        elif not at_published:
            result.notes.append(
                f"published by version {published.version}, this code is {proj.version}:"
                " not comparable (publish a root for the new version)"
            )
        target = published.log_size if published is not None and at_published else None
        sizes = sorted({live_position} | ({target} if target is not None else set()))
        for size in sizes:
            runner.catch_up(stop_at=size, batch=batch)
            if scratch.position(name) != size:
                raise NeikongError(
                    f"the log holds {log.max_position()} events, fewer than size {size}"
                )
            rebuilt = state_root(scratch, name)
            if published is not None and size == target:
                result.compare("published_vs_rebuild", (published.root, published.rows), rebuilt)
                try:
                    root, rows, _ = live_root_at(live, name, size)
                    result.compare("live_at_published_vs_rebuild", rebuilt, (root, rows))
                except ProjectionBehind:
                    result.notes.append(f"live model is behind the published size {size}")
            if size == live_position:
                with live.model.snapshot():
                    if live.model.position(name) == size:
                        current = root_of_rows(live.model.iter_docs(name))
                    else:
                        current = live_root_at(live, name, size)[:2]
                result.compare("live_vs_rebuild", rebuilt, current)
    finally:
        scratch.close()
        log.close()
    return result
