"""Bundles whose signatures depend on key history: a producer key rotated in the middle of a
case, then revoked after the case ended. The bundle must carry the enrolment, the rotation and
the revocation (each with its own inclusion proof), and the verifier must judge each event's
key at that event's position."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ledger import verify_bundle as vb
from ledger.builder import build_body, new_event_id
from ledger.bundle import export_bundle, trust_text
from ledger.envelope import SignedRecord, prev_of
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.registry import KeyScope
from ledger.sealer import Sealer, ensure_checkpoint_key
from ledger.witness_config import add_witness
from ledger.witnessing import cosign_checkpoint, tile_proof_provider
from tests.ledger._evidence import WITNESS_URL, in_process, open_witness

SYSTEM, PREFIX = "4403-fapiao", "matter/4403-fp/"
SCOPE = KeyScope(SYSTEM, (PREFIX,), ("matter.*",))
STREAM = PREFIX + "2026-000042"
ACTOR = {"official": "4403-00001", "role": "handler", "unit": "4403-01"}


class Case:
    """Emits the events of one case, one at a time, with whatever key is current."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger, self.seq, self.prev, self.producer_seq = ledger, 0, None, 0

    def emit(self, signer: Signer, kind: str, data: dict[str, Any]) -> None:
        self.seq += 1
        self.producer_seq += 1
        body = build_body(
            event_id=new_event_id(),
            stream=STREAM,
            stream_seq=self.seq,
            prev=self.prev,
            system=SYSTEM,
            producer_seq=self.producer_seq,
            type=kind,
            occurred_at="2026-11-02T01:30:00Z",
            actor=ACTOR,
            data=data,
        )
        [outcome] = self.ledger.appender().submit([signer.sign(body).encode()])
        assert outcome.status == "appended", outcome
        self.prev = prev_of(body)


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, vb.TrustKeys]:
    root = tmp_path_factory.mktemp("keys")
    with Ledger.init(root / "ledger") as ledger:
        checkpoint_signer = ensure_checkpoint_key(ledger)
        old_id = ledger.enrol_key("fp", "producer", SCOPE)
        old = Signer.from_file(ledger.key_path("fp"))
        case = Case(ledger)
        case.emit(old, "matter.accepted", {"matter_type": "licence", "channel": "hall"})
        case.emit(old, "matter.step_completed", {"step": "review", "outcome": "passed"})
        new_id = ledger.rotate_key(old_id, "fp2")
        new = Signer.from_file(ledger.key_path("fp2"))
        case.emit(new, "matter.step_completed", {"step": "approve", "outcome": "passed"})
        case.emit(new, "matter.concluded", {"outcome": "granted", "final_seq": 4})
        ledger.revoke_key(new_id, "retired")
        with open_witness(ledger, root / "w" / "state.json") as witness:
            add_witness(ledger.directory, "w", WITNESS_URL, witness.vkey)
            with Sealer(ledger, checkpoint_signer, durable=False) as sealer:
                published = sealer.seal_once()
            assert published is not None
            provider = tile_proof_provider(ledger.directory, published.size)
            cosign_checkpoint(
                ledger.directory, published.note, None, provider, submit=in_process(witness)
            )
        data = vb.encode_bundle(export_bundle(ledger, STREAM))
        return data, vb.parse_trust(trust_text(ledger))


def registry_types(bundle: dict[str, Any]) -> list[str]:
    bodies = [SignedRecord.decode(base64.b64decode(r["record"])).body for r in bundle["registry"]]
    return [json.loads(b)["type"] for b in bodies]


def test_the_bundle_carries_the_key_history_and_verifies(rotated: tuple[bytes, vb.TrustKeys]):
    data, trust = rotated
    bundle = json.loads(data)
    types = registry_types(bundle)
    assert types[0] == "ledger.genesis"
    assert types.count("key.enrolled") == 2  # the checkpoint key and the first producer key
    assert types[-2:] == ["key.rotated", "key.revoked"]
    verdict = vb.verify_bundle(data, trust)
    assert verdict.ok, verdict.render()


@pytest.mark.parametrize(
    ("dropped", "nth", "failing"),
    [
        ("key.rotated", 0, {"registry", "signatures", "key_validity"}),  # revocation of unknown
        ("key.enrolled", 0, {"checkpoint_signature"}),  # the checkpoint key's enrolment
        ("key.enrolled", 1, {"registry", "signatures", "key_validity"}),  # the first fp key
    ],
)
def test_a_registry_event_left_out_fails(
    rotated: tuple[bytes, vb.TrustKeys], dropped: str, nth: int, failing: set[str]
):
    data, trust = rotated
    bundle = json.loads(data)
    changed = copy.deepcopy(bundle)
    index = [i for i, t in enumerate(registry_types(bundle)) if t == dropped][nth]
    del changed["registry"][index]
    verdict = vb.verify_bundle(vb.encode_bundle(changed), trust)
    assert set(verdict.failed) == failing, verdict.render()


def test_a_revocation_moved_before_the_events_is_caught(rotated: tuple[bytes, vb.TrustKeys]):
    data, trust = rotated
    changed = json.loads(data)
    revocation = changed["registry"][-1]
    revocation["position"] = changed["events"][3]["position"] - 1  # claim: before the last two
    verdict = vb.verify_bundle(vb.encode_bundle(changed), trust)
    assert "registry" in verdict.failed  # its inclusion proof no longer holds
    assert "key_validity" in verdict.failed  # and the events after it would be invalid


def test_the_bundle_verifies_alone(tmp_path: Path, rotated: tuple[bytes, vb.TrustKeys]):
    data, _ = rotated
    assert vb.verify_bundle(data).ok
