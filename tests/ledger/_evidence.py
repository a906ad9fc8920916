"""Builders for the witnessing and evidence-bundle tests: sealed demo ledgers, in-process
witnesses, byte-exact ledger copies. Nothing here re-implements a ledger rule."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.checkpoints import PublishedCheckpoint
from ledger.envelope import SignedRecord
from ledger.ledger import CONFIG_FILE, Ledger
from ledger.note import NoteSignature
from ledger.sealer import Sealer, ensure_checkpoint_key
from ledger.witness import Witness
from ledger.witness_config import add_witness
from ledger.witnessing import cosign_checkpoint, tile_proof_provider
from ops.pipeline import enrol_demo_producers, run_simulation

WITNESS_NAME = "inspectorate.example/w1"
WITNESS_URL = "http://witness.invalid"
TERMINAL = ("matter.concluded", "matter.withdrawn")


def witness_key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def in_process(
    witness: Witness, calls: list[int] | None = None
) -> Callable[[str, int, Sequence[bytes], bytes], list[NoteSignature]]:
    """A `Submitter` that hands the checkpoint to `witness` directly (records old sizes)."""

    def submit(url: str, old: int, proof: Sequence[bytes], note: bytes) -> list[NoteSignature]:
        if calls is not None:
            calls.append(old)
        return [witness.add_checkpoint(old, proof, note)]

    return submit


def open_witness(ledger: Ledger, state: Path, seed: int = 7, name: str = WITNESS_NAME) -> Witness:
    """A witness (its own key and state) that trusts this ledger's checkpoint key."""
    public = ensure_checkpoint_key(ledger).public_raw
    origin = ledger.config.origin
    state.parent.mkdir(parents=True, exist_ok=True)
    return Witness(name, witness_key(seed), state, {origin: (origin, public)})


@dataclass(frozen=True)
class Demo:
    directory: Path
    witness_state: Path
    witness_vkey: str
    root_key_id: str
    checkpoints: tuple[int, ...]


def build_demo(
    root: Path, *, events: int = 1000, every: int = 400, cosign: bool = True, seed: int = 5
) -> Demo:
    """A demo ledger, sealed every `every` entries; each checkpoint cosigned on publish by an
    in-process witness (state under root/witness) when `cosign`."""
    directory = root / "ledger"
    published: list[int] = []
    with Ledger.init(directory) as ledger:
        signer = ensure_checkpoint_key(ledger)
        signers = enrol_demo_producers(ledger)
        run_simulation(ledger, signers, events=events, seed=seed, workers=0)
        witness = open_witness(ledger, root / "witness" / "state.json")
        with witness:
            if cosign:
                add_witness(directory, "inspectorate", WITNESS_URL, witness.vkey)

            def on_publish(cp: PublishedCheckpoint) -> None:
                published.append(cp.size)
                if cosign:
                    provider = tile_proof_provider(directory, cp.size)
                    cosign_checkpoint(
                        directory, cp.note, None, provider, submit=in_process(witness)
                    )

            with Sealer(
                ledger, signer, every_entries=every, durable=False, on_publish=on_publish
            ) as sealer:
                sealer.seal_once()
        return Demo(
            directory,
            root / "witness" / "state.json",
            witness.vkey,
            ledger.config.root_key_id,
            tuple(published),
        )


def copy_ledger(source: Path, target: Path) -> Path:
    """A copy of a closed ledger directory whose configuration points at the copied database."""
    shutil.copytree(source, target)
    config = json.loads((target / CONFIG_FILE).read_text("utf-8"))
    config["store_url"] = f"sqlite:///{target / 'ledger.db'}"
    (target / CONFIG_FILE).write_text(json.dumps(config), "utf-8")
    return target


def case_streams(directory: Path) -> dict[str, list[tuple[int, bytes]]]:
    """Every matter stream's rows (position, record)."""
    with Ledger.open(directory) as ledger:
        return {i.name: ledger.store.stream_rows(i.name) for i in ledger.store.streams("matter/")}


def event_type(record: bytes) -> str:
    return str(json.loads(SignedRecord.decode(record).body)["type"])


def set_record(directory: Path, position: int, record: bytes) -> None:
    """Overwrite the stored record at `position` (what an attacker with file access can do)."""
    conn = sqlite3.connect(directory / "ledger.db")
    try:
        cur = conn.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (record, position))
        assert cur.rowcount == 1
        conn.commit()
    finally:
        conn.close()
