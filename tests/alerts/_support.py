"""Ledgers with hand-made, signed domain events for the detector tests.

Bodies come from `ledger.builder.build_body` with fixed event ids and times, so two ledgers fed
the same `Script` hold the same input bodies (the replay-determinism tests rely on it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alerts.detector import Detector
from alerts.rules import RuleSet, load_ruleset
from ledger.builder import build_body
from ledger.envelope import b64
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.registry import KeyScope
from ledger.store import StoreConfig
from tests.ledger._support import deterministic_event_id, read_rows

START = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)  # Mon 2026-01-05 09:00 CST
SYSTEMS = {
    "4403-xuke": KeyScope("4403-xuke", ("matter/",), ("matter.*",)),
    "4403-ducha": KeyScope("4403-ducha", ("violation/",), ("violation.*",)),
}
HANDLER = {"official": "4403-00101", "role": "handler", "unit": "4403-01"}


def at(days: float, hours: float = 0) -> str:
    return (START + timedelta(days=days, hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def ts(days: float, hours: float = 0) -> int:
    return int((START + timedelta(days=days, hours=hours)).timestamp())


def make_ledger(directory: Path, store_url: str | None = None) -> Path:
    with Ledger.init(directory, store_url=store_url) as ledger:
        for system, scope in SYSTEMS.items():
            ledger.enrol_key(system, "producer", scope)
    return directory


@dataclass
class Script:
    """Producer-side state: stream heads and producer sequences, for appending by hand."""

    heads: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    seqs: dict[str, int] = field(default_factory=dict)

    def append(
        self,
        directory: Path,
        stream: str,
        type_: str,
        when: str,
        data: dict[str, Any],
        actor: dict[str, str] | None = None,
        subject: dict[str, str] | None = None,
    ) -> str:
        system = "4403-ducha" if stream.startswith("violation/") else "4403-xuke"
        seq, prev = self.heads.get(stream, (0, None))
        self.seqs[system] = self.seqs.get(system, 0) + 1
        event_id = deterministic_event_id(stream, seq + 1, type_)
        body = build_body(
            event_id=event_id,
            stream=stream,
            stream_seq=seq + 1,
            prev=prev,
            system=system,
            producer_seq=self.seqs[system],
            type=type_,
            occurred_at=when,
            actor=actor or HANDLER,
            subject=subject,
            data=data,
        )
        self.heads[stream] = (seq + 1, b64(hashlib.sha256(body).digest()))
        with Ledger.open(directory) as ledger:
            signer = Signer.from_file(ledger.key_path(system))
            outcome = ledger.appender().submit([signer.sign(body).encode()])[0]
        assert outcome.status == "appended", outcome
        return event_id


def detector(directory: Path, ledger: Ledger, ruleset: RuleSet | None = None) -> Detector:
    return Detector(ledger, ruleset or load_ruleset())


def detector_bodies(directory: Path) -> list[bytes]:
    """The signed bodies of every detector event, in log order (signature header stripped)."""
    from ledger.envelope import HEADER_LEN

    return [
        r.state[HEADER_LEN:]
        for r in read_rows(directory / "ledger.db")
        if r.system == "neikong-detector"
    ]


def detector_rows(directory: Path) -> list[Any]:
    return [r for r in read_rows(directory / "ledger.db") if r.system == "neikong-detector"]


def store_config(directory: Path) -> StoreConfig:
    return StoreConfig(f"sqlite:///{directory / 'ledger.db'}")
