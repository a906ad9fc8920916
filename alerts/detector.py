"""The detector service: follow the ledger, run the engine, append warnings, snapshot.

`Detector.run_once(now)` reads every event after its tracked position (LogReader +
`decode_record`), feeds the engine (the detector's own warnings included, so escalation rules
see them), fires the timers due by `now`, appends what the engine emitted, and then writes the
snapshot (state + position) in one transaction.

Guarantees:

- Restart = load the snapshot + replay from its position. Warnings appended after the last
  snapshot are emitted again on replay with the same derived event ids; `LedgerSink` skips
  ids the ledger already holds, so a crash never duplicates a warning.
- Timers that fell due while the detector was down fire once, at the highest due level, with
  `late: true` (see `alerts.engine`).
- Warning events are signed with the ledger's detector service key (`Ledger.append_as`'s key,
  scope `warning/`, `card/`, `command/`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alerts.calendar import Calendar, default_calendar
from alerts.engine import Engine
from alerts.rules import RuleSet
from alerts.state import SnapshotStore, open_snapshots
from alerts.warnings import Emitted
from ledger.builder import build_body
from ledger.envelope import b64
from ledger.errors import NeikongError, StoreError
from ledger.gc_pause import gc_paused
from ledger.ledger import SERVICES, Ledger
from ledger.log_reader import LogReader
from projections.base import decode_record

__all__ = ["DETECTOR_ACTOR", "Detector", "DetectorRun", "LedgerSink"]

DETECTOR_ACTOR = {"official": "neikong-detector", "role": "detector"}


class LedgerSink:
    """Appends emitted events to the ledger, signed by the detector key; idempotent by id."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.system = SERVICES["detector"].system

    def emit(self, items: Sequence[Emitted]) -> int:
        """Append the events the ledger does not hold yet; returns how many were appended."""
        if not items:
            return 0
        store = self.ledger.store
        present = store.event_ids([i.event_id for i in items])
        todo = [i for i in items if i.event_id not in present]
        if not todo:
            return 0
        signer = self.ledger.service_signer("detector")
        heads = {
            name: (info.length, b64(info.head_digest))
            for name, info in store.stream_infos(sorted({i.stream for i in todo})).items()
        }
        producer_seq = store.producer_heads().get(self.system, 0)
        records = []
        for item in todo:
            seq, prev = heads.get(item.stream, (0, None))
            producer_seq += 1
            body = build_body(
                event_id=item.event_id,
                stream=item.stream,
                stream_seq=seq + 1,
                prev=prev,
                system=self.system,
                producer_seq=producer_seq,
                type=item.type,
                occurred_at=item.occurred_at,
                actor=DETECTOR_ACTOR,
                subject=item.subject,
                data=item.data,
            )
            heads[item.stream] = (seq + 1, b64(hashlib.sha256(body).digest()))
            records.append(signer.sign(body).encode())
        outcomes = self.ledger.appender().submit(records)
        bad = [o for o in outcomes if o.status != "appended"]
        if bad:
            raise StoreError(
                f"{len(bad)} detector event(s) not appended ({bad[0].status} {bad[0].reason or ''}"
                f" {bad[0].detail}); is another detector running on this ledger?"
            )
        return len(records)


@dataclass(frozen=True)
class DetectorRun:
    position: int
    events: int
    emitted: int
    appended: int


class Detector:
    """One detector over one ledger (a single writer for the detector key, like every service)."""

    def __init__(
        self,
        ledger: Ledger,
        ruleset: RuleSet,
        *,
        calendar: Calendar | None = None,
        state_path: Path | None = None,
        late_after_s: int = 60,
        batch: int = 5000,
    ) -> None:
        self.ledger = ledger
        self.ruleset = ruleset
        self.snapshots = (
            SnapshotStore(state_path)
            if state_path
            else open_snapshots(ledger.config.store_url, ledger.directory)
        )
        snapshot = self.snapshots.load(ruleset.ruleset_hash)
        self.position = snapshot.position if snapshot else 0
        self.engine = Engine(
            ruleset,
            calendar or default_calendar(),
            snapshot.state if snapshot else None,
            late_after_s=late_after_s,
        )
        self.sink = LedgerSink(ledger)
        self.batch = batch

    def run_once(self, now: int) -> DetectorRun:
        """Catch up with the ledger, fire the timers due by `now`, append, snapshot."""
        reader = LogReader(self.ledger.store.config)
        try:
            with gc_paused():  # the engine's state is trees of dicts (projections.runner)
                run = self._run(reader, now)
        except NeikongError:
            raise
        except Exception as exc:  # a database failure while reading: operational, retry later
            raise StoreError(f"detector could not read the ledger: {exc}") from exc
        finally:
            reader.close()
        self.snapshots.save(self.position, self.ruleset.ruleset_hash, self.engine.state)
        return run

    def _run(self, reader: LogReader, now: int) -> DetectorRun:
        events = emitted = appended = 0
        advanced = False
        while True:
            head = reader.max_position()
            if self.position >= head:
                if advanced:
                    break
                out = self.engine.advance(now)
                emitted += len(out)
                appended += self.sink.emit(out)
                advanced = True
                continue
            stop = min(head, self.position + self.batch)
            out = []
            for position, _, _, record in reader.by_position(self.position + 1, stop + 1):
                out += self.engine.process(decode_record(position, record), now)
                self.position = position
                events += 1
            emitted += len(out)
            appended += self.sink.emit(out)
            advanced = False
        return DetectorRun(self.position, events, emitted, appended)

    def close(self) -> None:
        self.snapshots.close()
