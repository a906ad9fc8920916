"""Evidence bundles: export, the standalone verifier (alone in a temp dir), tampering, replay.

The demo ledger is sealed every 400 entries and each checkpoint is cosigned by an in-process
witness as it is published; bundles are exported for a concluded case whose events straddle
the first checkpoint, so replaying at that checkpoint hides its later events.
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ops.cli_evidence  # noqa: F401  (registers export, verify-bundle, replay on main)
from ledger import verify_bundle as vb
from ledger.bundle import BundleExportError, export_bundle, replay_case, trust_text
from ledger.bundle_bench import bundle_bench
from ledger.checkpoints import TILES_DIR
from ledger.envelope import SignedRecord
from ledger.errors import VerificationError
from ledger.keys import raw_public_key
from ledger.ledger import Ledger
from ledger.merkle_proofs import multi_inclusion_proof
from ledger.note import vkey
from ledger.tiles import TileHashReader, TileStore
from ops.cli import main
from tests.ledger._evidence import (
    TERMINAL,
    Demo,
    build_demo,
    case_streams,
    copy_ledger,
    event_type,
    set_record,
    witness_key,
)

VERIFIER = Path(vb.__file__)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    return build_demo(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def case(demo: Demo) -> str:
    """A concluded case with events before and after the first checkpoint (400)."""
    first = demo.checkpoints[0]
    for stream, rows in sorted(case_streams(demo.directory).items()):
        if rows[0][0] <= first < rows[-1][0] and event_type(rows[-1][1]) in TERMINAL:
            return stream
    raise AssertionError("no concluded case straddles the first checkpoint")


@pytest.fixture(scope="module")
def bundle(demo: Demo, case: str) -> dict[str, Any]:
    with Ledger.open(demo.directory) as ledger:
        return export_bundle(ledger, case)


@pytest.fixture(scope="module")
def bundle_bytes(bundle: dict[str, Any]) -> bytes:
    return vb.encode_bundle(bundle)


@pytest.fixture(scope="module")
def trust(demo: Demo) -> vb.TrustKeys:
    with Ledger.open(demo.directory) as ledger:
        return vb.parse_trust(trust_text(ledger))


@pytest.fixture
def alone(tmp_path: Path, demo: Demo) -> Path:
    """A directory holding only verify_bundle.py (and, per test, a bundle and trust file)."""
    directory = tmp_path / "offline"
    directory.mkdir()
    shutil.copy(VERIFIER, directory / "verify_bundle.py")
    with Ledger.open(demo.directory) as ledger:
        (directory / "trust.txt").write_text(trust_text(ledger))
    return directory


def run_alone(directory: Path, data: bytes, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the copied verifier as a script from `directory` (no neikong on its path: -I)."""
    (directory / "bundle.json").write_bytes(data)
    return subprocess.run(
        [sys.executable, "-I", "verify_bundle.py", "bundle.json", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def reencode(bundle: dict[str, Any], change: Any) -> bytes:
    """The canonical bytes of a deep copy of `bundle` after `change(copy)`."""
    changed = copy.deepcopy(bundle)
    change(changed)
    return vb.encode_bundle(changed)


def flip_b64(text: str, index: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def failed(data: bytes, trust: vb.TrustKeys | None = None) -> list[str]:
    return vb.verify_bundle(data, trust).failed


# --- the good bundle --------------------------------------------------------------------------


def test_bundle_holds_the_case_its_registry_and_a_cosigned_checkpoint(
    bundle: dict[str, Any], case: str, demo: Demo
):
    rows = case_streams(demo.directory)[case]
    assert bundle["format"] == vb.FORMAT
    assert bundle["stream"] == case
    assert [e["position"] for e in bundle["events"]] == [p for p, _ in rows]
    assert bundle["closure"]["final_seq"] == len(rows)
    assert bundle["inclusion"]["tree_size"] == demo.checkpoints[-1]
    assert bundle["ledger_keys"] == {
        "root_key_id": demo.root_key_id,
        "witnesses": [demo.witness_vkey],
    }
    registry_types = [event_type(base64.b64decode(r["record"])) for r in bundle["registry"]]
    assert registry_types[0] == "ledger.genesis"
    assert "key.enrolled" in registry_types
    assert "\n\u2014 inspectorate.example/w1 " in bundle["checkpoint"]


def test_standalone_verifier_alone_in_a_temp_dir_passes(alone: Path, bundle_bytes: bytes):
    assert sorted(p.name for p in alone.iterdir()) == ["trust.txt", "verify_bundle.py"]
    result = run_alone(alone, bundle_bytes, "--trust", "trust.txt")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in vb.CHECK_NAMES:
        assert f"PASS  {name}" in result.stdout
    assert "VERDICT: PASS" in result.stdout
    assert "untrusted" not in result.stdout


def test_without_trust_the_verdict_says_the_keys_are_the_bundles(alone: Path, bundle_bytes: bytes):
    result = run_alone(alone, bundle_bytes)
    assert result.returncode == 0, result.stdout
    assert "untrusted: keys from the bundle" in result.stdout


def test_verifier_imports_only_the_standard_library_and_cryptography():
    import ast

    tree = ast.parse(VERIFIER.read_text())
    roots = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert roots - set(sys.stdlib_module_names) == {"cryptography"}


def test_cli_verify_bundle_runs_the_same_code(
    monkeypatch: pytest.MonkeyPatch, alone: Path, bundle_bytes: bytes
):
    standalone = run_alone(alone, bundle_bytes, "--trust", "trust.txt")
    monkeypatch.chdir(alone)
    args = ["verify-bundle", "bundle.json", "--trust", "trust.txt"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output == standalone.stdout
    as_json = CliRunner().invoke(main, [*args, "--json"])
    assert json.loads(as_json.output)["ok"] is True


# --- tampering --------------------------------------------------------------------------------


def test_targeted_tampering_names_the_failing_check(
    alone: Path, bundle: dict[str, Any], trust: vb.TrustKeys
):
    def record_byte(b: dict[str, Any]) -> None:
        b["events"][1]["record"] = flip_b64(b["events"][1]["record"], 200)

    def proof_hash(b: dict[str, Any]) -> None:
        b["inclusion"]["proof"][0] = flip_b64(b["inclusion"]["proof"][0], 5)

    def checkpoint_root(b: dict[str, Any]) -> None:
        lines = b["checkpoint"].split("\n")
        lines[2] = flip_b64(lines[2], 0)
        b["checkpoint"] = "\n".join(lines)

    def cosignature(b: dict[str, Any]) -> None:
        lines = b["checkpoint"].split("\n")
        name, sig = lines[-2].rsplit(" ", 1)
        lines[-2] = f"{name} {flip_b64(sig, 40)}"
        b["checkpoint"] = "\n".join(lines)

    def registry_record(b: dict[str, Any]) -> None:
        b["registry"][-1]["record"] = flip_b64(b["registry"][-1]["record"], 150)

    expected = {
        record_byte: {"inclusion", "signatures"},
        proof_hash: {"inclusion"},
        checkpoint_root: {"checkpoint_signature", "cosignatures", "inclusion", "registry"},
        cosignature: {"cosignatures"},
        registry_record: {"registry"},
    }
    for change, checks in expected.items():
        data = reencode(bundle, change)
        assert set(failed(data, trust)) >= checks, change.__name__
        if change in (record_byte, cosignature):  # and in a subprocess, from the temp dir
            result = run_alone(alone, data, "--trust", "trust.txt")
            assert result.returncode == 1, result.stdout
            assert any(f"FAIL  {c}" in result.stdout for c in checks)
            assert "VERDICT: FAIL" in result.stdout


def test_a_dropped_middle_event_fails_chain_completeness(
    demo: Demo, bundle: dict[str, Any], trust: vb.TrustKeys
):
    events = bundle["events"][:2] + bundle["events"][3:]
    size = bundle["inclusion"]["tree_size"]
    reader = TileHashReader(TileStore(demo.directory / TILES_DIR), size)
    proof = multi_inclusion_proof([e["position"] - 1 for e in events], size, reader)

    def drop(b: dict[str, Any]) -> None:
        b["events"] = events
        b["inclusion"]["proof"] = [base64.b64encode(h).decode() for h in proof]

    verdict = vb.verify_bundle(reencode(bundle, drop), trust)
    assert verdict.failed == ["chain"]
    chain = next(c for c in verdict.checks if c.name == "chain")
    assert "stream_seq 4, want 3" in chain.detail
    assert "chain break" in chain.detail


def test_a_wrong_trusted_root_or_witness_fails(bundle_bytes: bytes, trust: vb.TrustKeys):
    other_root = vb.TrustKeys(bytes(32), trust.witnesses)
    assert failed(bundle_bytes, other_root) == ["root_key"]
    stranger = vkey("other.example/w9", raw_public_key(witness_key(9).public_key()), 0x04)
    only_stranger = vb.TrustKeys(trust.root_key_id, (stranger,))
    assert failed(bundle_bytes, only_stranger) == ["cosignatures"]
    both = vb.TrustKeys(trust.root_key_id, (*trust.witnesses, stranger))
    assert failed(bundle_bytes, both) == ["cosignatures"]  # default quorum: all trusted
    assert failed(bundle_bytes, vb.TrustKeys(trust.root_key_id, both.witnesses, quorum=1)) == []
    assert failed(bundle_bytes, vb.TrustKeys(trust.root_key_id, ())) == ["cosignatures"]
    assert failed(bundle_bytes, vb.TrustKeys(trust.root_key_id, (), quorum=0)) == []
    log_key = vkey("another-origin", raw_public_key(witness_key(3).public_key()))
    pinned = vb.TrustKeys(trust.root_key_id, trust.witnesses, checkpoint_keys=(log_key,))
    assert failed(bundle_bytes, pinned) == ["checkpoint_signature"]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_single_byte_change_fails_verification(
    data: st.DataObject, bundle_bytes: bytes, trust: vb.TrustKeys
):
    index = data.draw(st.integers(0, len(bundle_bytes) - 1), label="index")
    value = data.draw(st.integers(0, 255).filter(lambda v: v != bundle_bytes[index]), label="byte")
    changed = bytearray(bundle_bytes)
    changed[index] = value
    for keys in (trust, None):
        verdict = vb.verify_bundle(bytes(changed), keys)
        assert not verdict.ok
        assert verdict.failed
        assert all(name in vb.CHECK_NAMES for name in verdict.failed)


def test_byte_flips_in_a_subprocess_exit_1_naming_a_check(alone: Path, bundle_bytes: bytes):
    step = len(bundle_bytes) // 7
    for index in range(step // 2, len(bundle_bytes), step):
        changed = bytearray(bundle_bytes)
        changed[index] ^= 0x04
        result = run_alone(alone, bytes(changed), "--trust", "trust.txt")
        assert result.returncode == 1, (index, result.stdout)
        assert "FAIL  " in result.stdout
        assert "VERDICT: FAIL" in result.stdout


def test_unreadable_bundles_and_usage_errors(alone: Path):
    result = run_alone(alone, b"{not json")
    assert result.returncode == 1
    assert "FAIL  format" in result.stdout
    assert "not a readable bundle" in result.stdout
    result = run_alone(alone, b"[]\n", "--trust", "missing.txt")
    assert result.returncode == 2
    assert "error" in result.stderr
    (alone / "bad-trust.txt").write_text("root abc\n")
    result = run_alone(alone, b"[]\n", "--trust", "bad-trust.txt")
    assert result.returncode == 2
    assert "64 lowercase hex" in result.stderr
    result = run_alone(alone, b"", "--no-such-option")
    assert result.returncode == 2


def test_trust_file_format():
    root = "ab" * 32
    keys = vb.parse_trust(f"# comment\n\nroot {root}\nquorum 0\n")
    assert keys.root_key_id.hex() == root
    assert keys.quorum == 0
    assert keys.witnesses == ()
    for bad in ("", f"root {root}\nroot {root}\n", f"root {root}\nquorum 1\n", "witness x\n"):
        with pytest.raises(vb.BundleError):
            vb.parse_trust(bad)


# --- export and replay ------------------------------------------------------------------------


def test_export_cli_writes_a_bundle_and_a_trust_file(tmp_path: Path, demo: Demo, case: str):
    out, keys = tmp_path / "case.json", tmp_path / "trust.txt"
    args = ["export", "--ledger", str(demo.directory), "--case", case, "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--trust-out", str(keys)])
    assert result.exit_code == 0, result.output
    assert vb.verify_bundle(out.read_bytes(), vb.parse_trust(keys.read_text())).ok
    missing = CliRunner().invoke(main, [*args[:3], "--case", "matter/none", "--out", str(out)])
    assert missing.exit_code == 3
    assert "no case stream" in missing.output


def test_export_at_an_earlier_checkpoint_holds_only_what_was_logged(
    demo: Demo, case: str, trust: vb.TrustKeys
):
    first = demo.checkpoints[0]
    with Ledger.open(demo.directory) as ledger:
        early = export_bundle(ledger, case, first)
        with pytest.raises(BundleExportError, match="no checkpoint of size 7"):
            export_bundle(ledger, case, 7)
    assert early["inclusion"]["tree_size"] == first
    assert early["closure"] is None
    assert all(e["position"] <= first for e in early["events"])
    verdict = vb.verify_bundle(vb.encode_bundle(early), trust)
    assert verdict.ok, verdict.render()
    assert "OPEN at the checkpoint" in verdict.render()


def test_replay_at_an_earlier_checkpoint_hides_later_events(demo: Demo, case: str):
    first, rows = demo.checkpoints[0], case_streams(demo.directory)[case]
    with Ledger.open(demo.directory) as ledger:
        early, late = (
            replay_case(ledger, case, first),
            replay_case(ledger, case, demo.checkpoints[-1]),
        )
    assert [e.position for e in early.events] == [p for p, _ in rows if p <= first]
    assert early.later_events == sum(1 for p, _ in rows if p > first) > 0
    assert early.closure is None
    assert early.all_included
    assert early.cosigned_by == ("inspectorate.example/w1",)
    assert len(late.events) == len(rows)
    assert late.later_events == 0
    assert late.closure is not None
    assert late.closure["final_seq"] == len(rows)
    result = CliRunner().invoke(
        main, ["replay", "--ledger", str(demo.directory), "--case", case, "--at", str(first)]
    )
    assert result.exit_code == 0, result.output
    assert f"{early.later_events} later events not shown" in result.output
    as_json = CliRunner().invoke(
        main,
        ["replay", "--ledger", str(demo.directory), "--case", case, "--at", str(first), "--json"],
    )
    assert json.loads(as_json.output)["later_events"] == early.later_events


def test_a_rewritten_record_is_not_included_and_cannot_be_exported(
    tmp_path: Path, demo: Demo, case: str
):
    directory = copy_ledger(demo.directory, tmp_path / "ledger")
    position, record = case_streams(directory)[case][0]
    decoded = SignedRecord.decode(record)
    body = decoded.body.replace(b'"stream_seq":1', b'"stream_seq":1 ')  # bytes differ, same JSON
    set_record(directory, position, SignedRecord(decoded.key_id, decoded.signature, body).encode())
    with Ledger.open(directory) as ledger:
        replay = replay_case(ledger, case, demo.checkpoints[0])
        assert not replay.all_included
        assert not replay.events[0].included
        assert "NOT included" in replay.events[0].detail
        with pytest.raises(VerificationError, match="does not verify"):
            export_bundle(ledger, case)
    result = CliRunner().invoke(
        main,
        ["replay", "--ledger", str(directory), "--case", case, "--at", str(demo.checkpoints[0])],
    )
    assert result.exit_code == 1
    assert "NOT INCLUDED" in result.output


def test_export_cli_notes_later_events_outside_the_checkpoint(
    tmp_path: Path, demo: Demo, case: str
):
    out = tmp_path / "early.json"
    args = ["export", "--ledger", str(demo.directory), "--case", case, "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--checkpoint", str(demo.checkpoints[0])])
    assert result.exit_code == 0, result.output
    assert "later events of" in result.output


def test_bundle_bench_reports_size_and_verify_time(tmp_path: Path):
    figures = bundle_bench(tmp_path, repeat=3)
    assert figures["bundle_events"] == 20
    assert 5_000 < figures["bundle_bytes"] < 100_000
    assert 0 < figures["bundle_verify_ms"] < 1_000
