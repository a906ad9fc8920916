"""The witness (`ledger.witness`), its HTTP server and client (`ops.witness_server`) and CLI.

A fake log (leaves in memory, `MemoryHashReader`) signs checkpoints with its own key; forks are
the same log with one leaf changed.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.keys import raw_public_key
from ledger.merkle import EMPTY_ROOT, leaf_hash
from ledger.merkle_proofs import MemoryHashReader, consistency_proof, tree_root
from ledger.note import (
    SIG_TYPE_COSIGNATURE,
    Checkpoint,
    SignedNote,
    parse_vkey,
    sign_note,
    verify_cosignature,
    vkey,
)
from ledger.witness import (
    Witness,
    WitnessBadProof,
    WitnessBadSignature,
    WitnessConflict,
    WitnessMalformed,
    WitnessUnavailable,
    WitnessUnknownLog,
)
from ledger.witness_state import WitnessStateError
from ops.cli import main
from ops.witness_server import (
    encode_add_checkpoint_request,
    make_server,
    parse_add_checkpoint_request,
    submit_checkpoint,
)

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "tax.example/neikong-ledger"
WITNESS_NAME = "inspectorate.example/w1"
NOW = 1_780_000_000
NEIKONG_MAIN = "import sys; from ops.cli import main; sys.exit(main())"


def _key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


LOG_KEY = _key(1)
WITNESS_KEY = _key(2)
WITNESS_PUBLIC = raw_public_key(WITNESS_KEY.public_key())


class FakeLog:
    """A log of `size` synthetic entries; `fork_at` changes that one entry."""

    def __init__(self, size: int, *, fork_at: int | None = None, origin: str = ORIGIN) -> None:
        self.origin = origin
        self.leaves = [
            leaf_hash(f"entry {i}{' (forked)' if i == fork_at else ''}".encode())
            for i in range(size)
        ]
        self.reader = MemoryHashReader(self.leaves)

    def root(self, size: int) -> bytes:
        return tree_root(size, self.reader) if size else EMPTY_ROOT

    def checkpoint(self, size: int, key: Ed25519PrivateKey = LOG_KEY) -> bytes:
        body = Checkpoint(self.origin, size, self.root(size)).body()
        return SignedNote(body, (sign_note(body, self.origin, key),)).encode()

    def proof(self, old: int, new: int) -> list[bytes]:
        return consistency_proof(old, new, self.reader) if old else []


LOG = FakeLog(300)
TRUSTED = {ORIGIN: (ORIGIN, raw_public_key(LOG_KEY.public_key()))}


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "state.json"


@pytest.fixture
def witness(state_path: Path) -> Iterator[Witness]:
    with Witness(WITNESS_NAME, WITNESS_KEY, state_path, TRUSTED, clock=lambda: NOW) as w:
        yield w


def _add(w: Witness, old: int, new: int, log: FakeLog = LOG) -> int:
    """Submit log's checkpoint at `new` with a proof from `old`; return the cosigned time."""
    signed = log.checkpoint(new)
    sig = w.add_checkpoint(old, log.proof(old, new), signed)
    return verify_cosignature(SignedNote.parse(signed).body, sig, WITNESS_NAME, WITNESS_PUBLIC)


# --- add-checkpoint semantics -----------------------------------------------------------------


def test_first_checkpoint_is_accepted_without_proof(witness: Witness, state_path: Path):
    assert _add(witness, 0, 5) == NOW
    latest = witness.latest(ORIGIN)
    assert latest is not None
    assert (latest.size, latest.root, latest.cosigned_at) == (5, LOG.root(5), NOW)
    assert latest.signed_checkpoint == LOG.checkpoint(5)
    assert stat.S_IMODE(state_path.stat().st_mode) == 0o600
    stored = json.loads(state_path.read_text())["logs"][ORIGIN]
    assert stored["size"] == 5


def test_consistent_extensions_are_cosigned(witness: Witness):
    _add(witness, 0, 1)
    for old, new in [(1, 2), (2, 7), (7, 8), (8, 8), (8, 64), (64, 257), (257, 300)]:
        _add(witness, old, new)
        latest = witness.latest(ORIGIN)
        assert latest is not None
        assert latest.size == new
    assert witness.evidence() == []


def test_empty_tree_checkpoint_then_growth(witness: Witness):
    _add(witness, 0, 0)
    _add(witness, 0, 3)  # from size 0 the proof is empty
    _add(witness, 3, 4)


def test_stale_old_size_is_a_409_conflict_with_the_current_size(witness: Witness):
    _add(witness, 0, 5)
    for stale in (0, 3, 6):
        with pytest.raises(WitnessConflict, match="last cosigned size is 5") as info:
            witness.add_checkpoint(stale, LOG.proof(stale, 9), LOG.checkpoint(9))
        assert info.value.current_size == 5
        assert info.value.evidence is None
        assert info.value.http_status == 409


def test_same_size_different_root_is_refused_with_both_notes(witness: Witness):
    _add(witness, 0, 8)
    fork = FakeLog(300, fork_at=3)
    with pytest.raises(WitnessConflict, match="another root for size 8") as info:
        witness.add_checkpoint(8, [], fork.checkpoint(8))
    evidence = info.value.evidence
    assert evidence is not None
    assert info.value.current_size == 8
    assert evidence.kind == "same_size_different_root"
    assert evidence.cosigned == LOG.checkpoint(8)
    assert evidence.submitted == fork.checkpoint(8)
    assert witness.evidence() == [evidence]
    assert stat.S_IMODE(witness.evidence_path.stat().st_mode) == 0o600
    latest = witness.latest(ORIGIN)
    assert latest is not None
    assert latest.root == LOG.root(8)  # state unchanged


def test_a_checkpoint_that_is_not_an_extension_is_refused_with_both_notes(witness: Witness):
    _add(witness, 0, 5)
    fork = FakeLog(300, fork_at=2)  # rewrites history below the cosigned size
    with pytest.raises(WitnessBadProof, match="no valid consistency proof 5 -> 20") as info:
        witness.add_checkpoint(5, fork.proof(5, 20), fork.checkpoint(20))
    evidence = info.value.evidence
    assert evidence is not None
    assert info.value.http_status == 422
    assert (evidence.kind, evidence.old_size) == ("not_an_extension", 5)
    assert evidence.cosigned == LOG.checkpoint(5)
    assert evidence.submitted == fork.checkpoint(20)
    assert list(evidence.proof) == fork.proof(5, 20)
    assert witness.evidence() == [evidence]
    latest = witness.latest(ORIGIN)
    assert latest is not None
    assert latest.size == 5
    _add(witness, 5, 20)  # the honest log continues


def test_a_garbled_proof_is_422(witness: Witness):
    _add(witness, 0, 5)
    proof = LOG.proof(5, 20)
    with pytest.raises(WitnessBadProof):
        witness.add_checkpoint(5, proof[:-1], LOG.checkpoint(20))
    with pytest.raises(WitnessBadProof):
        witness.add_checkpoint(5, [*proof[:-1], bytes(32)], LOG.checkpoint(20))
    with pytest.raises(WitnessBadProof, match="MUST be empty"):
        witness.add_checkpoint(5, [bytes(32)], LOG.checkpoint(5))


def test_checkpoint_signed_by_a_wrong_key_is_refused(witness: Witness):
    with pytest.raises(WitnessBadSignature) as info:
        witness.add_checkpoint(0, [], LOG.checkpoint(5, key=_key(9)))
    assert info.value.http_status == 403
    signed = SignedNote.parse(LOG.checkpoint(5))
    forged = SignedNote(
        Checkpoint(ORIGIN, 6, LOG.root(5)).body(), signed.signatures
    )  # a valid signature moved onto another body
    with pytest.raises(WitnessBadSignature, match="does not verify"):
        witness.add_checkpoint(0, [], forged.encode())
    assert witness.latest(ORIGIN) is None


def test_unknown_origin_and_malformed_submissions(witness: Witness):
    with pytest.raises(WitnessUnknownLog) as unknown:
        witness.add_checkpoint(0, [], FakeLog(5, origin="other.example/log").checkpoint(5))
    assert unknown.value.http_status == 404
    with pytest.raises(WitnessMalformed):
        witness.add_checkpoint(0, [], b"not a note")
    with pytest.raises(WitnessMalformed, match="exceeds checkpoint size"):
        witness.add_checkpoint(6, [], LOG.checkpoint(5))
    with pytest.raises(WitnessMalformed, match="MUST be empty"):
        witness.add_checkpoint(0, [bytes(32)], LOG.checkpoint(5))
    with pytest.raises(WitnessMalformed, match="63"):
        witness.add_checkpoint(0, [bytes(32)] * 64, LOG.checkpoint(5))


def test_state_survives_a_restart(state_path: Path):
    with Witness(WITNESS_NAME, WITNESS_KEY, state_path, TRUSTED, clock=lambda: NOW) as first:
        _add(first, 0, 10)
        with pytest.raises(WitnessStateError, match="locked"):
            Witness(WITNESS_NAME, WITNESS_KEY, state_path, TRUSTED)
    with Witness(WITNESS_NAME, WITNESS_KEY, state_path, TRUSTED, clock=lambda: NOW + 1) as again:
        latest = again.latest(ORIGIN)
        assert latest is not None
        assert (latest.size, latest.root) == (10, LOG.root(10))
        with pytest.raises(WitnessConflict) as info:
            again.add_checkpoint(0, [], LOG.checkpoint(3))
        assert info.value.current_size == 10
        assert _add(again, 10, 11) == NOW + 1


def test_corrupt_state_is_refused(state_path: Path):
    state_path.write_text('{"format": "neikong-witness-state/1", "logs": {"x": {}}}')
    with pytest.raises(WitnessStateError, match="corrupt"):
        Witness(WITNESS_NAME, WITNESS_KEY, state_path, TRUSTED)
    with Witness(WITNESS_NAME, WITNESS_KEY, state_path.with_name("ok.json"), TRUSTED) as w:
        _add(w, 0, 4)
    data = json.loads(state_path.with_name("ok.json").read_text())
    data["logs"][ORIGIN]["size"] = 5  # no longer matches the signed checkpoint
    state_path.write_text(json.dumps(data))
    with pytest.raises(WitnessStateError, match="corrupt"):
        Witness(WITNESS_NAME, WITNESS_KEY, state_path, TRUSTED)


def test_concurrent_submissions_never_roll_back(witness: Witness):
    _add(witness, 0, 5)
    outcomes: list[str] = []

    def submit(new: int) -> None:
        try:
            witness.add_checkpoint(5, LOG.proof(5, new), LOG.checkpoint(new))
            outcomes.append(f"ok {new}")
        except WitnessConflict as exc:
            outcomes.append(f"409 {exc.current_size}")

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(6, 22)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted = [o for o in outcomes if o.startswith("ok")]
    assert len(accepted) == 1
    latest = witness.latest(ORIGIN)
    assert latest is not None
    assert f"ok {latest.size}" == accepted[0]


# --- HTTP protocol ----------------------------------------------------------------------------


def test_request_body_round_trip_and_strictness():
    proof = LOG.proof(5, 20)
    body = encode_add_checkpoint_request(5, proof, LOG.checkpoint(20))
    assert body.startswith(b"old 5\n")
    assert parse_add_checkpoint_request(body) == (5, proof, LOG.checkpoint(20))
    assert parse_add_checkpoint_request(b"old 0\n\n" + LOG.checkpoint(1))[:2] == (0, [])
    for bad in (b"old 05\n\nx", b"old -1\n\nx", b"new 5\n\nx", b"old 5\nAAA\n\nx", b"old 5\n"):
        with pytest.raises(WitnessMalformed):
            parse_add_checkpoint_request(bad)


@pytest.fixture
def server_url(witness: Witness) -> Iterator[str]:
    server = make_server(witness, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_http_statuses(server_url: str):
    (sig,) = submit_checkpoint(server_url, 0, [], LOG.checkpoint(5), timeout=5)
    body = SignedNote.parse(LOG.checkpoint(5)).body
    assert verify_cosignature(body, sig, WITNESS_NAME, WITNESS_PUBLIC) == NOW
    with pytest.raises(WitnessConflict) as conflict:
        submit_checkpoint(server_url, 0, [], LOG.checkpoint(6), timeout=5)
    assert conflict.value.current_size == 5
    with pytest.raises(WitnessBadSignature):
        submit_checkpoint(server_url, 5, [], LOG.checkpoint(5, key=_key(9)), timeout=5)
    with pytest.raises(WitnessUnknownLog):
        submit_checkpoint(server_url, 0, [], FakeLog(1, origin="x.example").checkpoint(1))
    with pytest.raises(WitnessBadProof):
        submit_checkpoint(server_url, 5, LOG.proof(5, 9)[:-1], LOG.checkpoint(9), timeout=5)
    with pytest.raises(WitnessMalformed):
        submit_checkpoint(server_url + "/add-checkpoint", 9, [], LOG.checkpoint(5), timeout=5)
    (sig,) = submit_checkpoint(server_url, 5, LOG.proof(5, 9), LOG.checkpoint(9), timeout=5)
    with pytest.raises(WitnessConflict) as fork:
        submit_checkpoint(server_url, 9, [], FakeLog(9, fork_at=0).checkpoint(9), timeout=5)
    assert fork.value.current_size == 9


def test_http_409_carries_the_size_content_type(server_url: str):
    import urllib.error
    import urllib.request

    submit_checkpoint(server_url, 0, [], LOG.checkpoint(5), timeout=5)
    request = urllib.request.Request(
        server_url + "/add-checkpoint",
        data=encode_add_checkpoint_request(0, [], LOG.checkpoint(6)),
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    with info.value as response:
        assert response.code == 409
        assert response.headers["Content-Type"] == "text/x.tlog.size"
        assert response.read() == b"5\n"
    with pytest.raises(urllib.error.HTTPError) as get:
        urllib.request.urlopen(server_url + "/add-checkpoint", timeout=5)
    with get.value as response:
        assert response.code == 405


def test_client_reports_an_unreachable_witness():
    with pytest.raises(WitnessUnavailable):
        submit_checkpoint("http://127.0.0.1:9", 0, [], LOG.checkpoint(1), timeout=2)


# --- CLI and the real process -----------------------------------------------------------------


def test_cli_init_vkey_and_usage_errors(tmp_path: Path):
    runner = CliRunner()
    wdir = tmp_path / "w"
    result = runner.invoke(main, ["witness", "init", "--dir", str(wdir), "--name", WITNESS_NAME])
    assert result.exit_code == 0, result.output
    printed = result.output.strip()
    name, _, sig_type = parse_vkey(printed)
    assert (name, sig_type) == (WITNESS_NAME, SIG_TYPE_COSIGNATURE)
    assert stat.S_IMODE((wdir / "witness.key").stat().st_mode) == 0o600
    result = runner.invoke(main, ["witness", "vkey", "--dir", str(wdir)])
    assert (result.exit_code, result.output.strip()) == (0, printed)
    again = runner.invoke(main, ["witness", "init", "--dir", str(wdir), "--name", "x"])
    assert again.exit_code == 3
    bad_name = runner.invoke(
        main, ["witness", "init", "--dir", str(tmp_path / "v"), "--name", "a b"]
    )
    assert bad_name.exit_code == 2
    missing = runner.invoke(main, ["witness", "vkey", "--dir", str(tmp_path / "none")])
    assert missing.exit_code == 3
    bad_log = runner.invoke(
        main, ["witness", "serve", "--dir", str(wdir), "--log", f"{ORIGIN}=nonsense"]
    )
    assert bad_log.exit_code == 2
    cosigner_as_log = runner.invoke(
        main, ["witness", "serve", "--dir", str(wdir), "--log", f"{ORIGIN}={printed}"]
    )
    assert cosigner_as_log.exit_code == 2


def test_witness_serve_end_to_end_in_a_subprocess(tmp_path: Path):
    wdir = tmp_path / "w"
    # The console script: `python -m ops.cli` would run a second copy of the main group.
    script = Path(sys.executable).with_name("neikong")
    launcher = [str(script)] if script.exists() else [sys.executable, "-c", NEIKONG_MAIN]
    run = [*launcher, "witness"]
    init = subprocess.run(
        [*run, "init", "--dir", str(wdir), "--name", WITNESS_NAME],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    witness_vkey = init.stdout.strip()
    name, public, _ = parse_vkey(witness_vkey)
    log_vkey = vkey(ORIGIN, raw_public_key(LOG_KEY.public_key()))
    serve = [*run, "serve", "--dir", str(wdir), "--listen", "127.0.0.1:0", "--log"]
    with subprocess.Popen(
        [*serve, f"{ORIGIN}={log_vkey}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == f"witness {witness_vkey}"
            line = proc.stdout.readline().strip()
            assert line.startswith("listening on http://127.0.0.1:"), line
            url = line.removeprefix("listening on ")
            (sig,) = submit_checkpoint(url, 0, [], LOG.checkpoint(7), timeout=5)
            body = SignedNote.parse(LOG.checkpoint(7)).body
            assert verify_cosignature(body, sig, name, public) > 0
            (sig,) = submit_checkpoint(url, 7, LOG.proof(7, 30), LOG.checkpoint(30), timeout=5)
            with pytest.raises(WitnessConflict) as info:
                submit_checkpoint(url, 7, LOG.proof(7, 40), LOG.checkpoint(40), timeout=5)
            assert info.value.current_size == 30
            fork = FakeLog(40, fork_at=1)
            with pytest.raises(WitnessBadProof):
                submit_checkpoint(url, 30, fork.proof(30, 40), fork.checkpoint(40), timeout=5)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=10)
        assert proc.returncode == 0, stderr
    state = json.loads((wdir / "state.json").read_text())
    assert state["logs"][ORIGIN]["size"] == 30
    evidence = (wdir / "state.evidence.jsonl").read_text().splitlines()
    assert [json.loads(e)["kind"] for e in evidence] == ["not_an_extension"]
    assert os.stat(wdir / "state.json").st_mode & 0o077 == 0
