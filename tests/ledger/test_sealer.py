"""The sealer: tiles and signed checkpoints that follow the log, survive crashes, never fork."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger import merkle_proofs as mp
from ledger.checkpoints import PublishedCheckpoint, list_checkpoints, read_checkpoint
from ledger.keys import Signer
from ledger.ledger import CONFIG_FILE, Ledger
from ledger.log_verify import verify_ledger_log
from ledger.merkle import leaf_hash, root_from_leaf_hashes, verify_consistency, verify_inclusion
from ledger.note import Checkpoint, SignedNote, verify_note
from ledger.registry import KeyScope
from ledger.sealer import (
    CHECKPOINT_SCOPE,
    InconsistentCheckpoint,
    Sealer,
    SealerError,
    SealRefused,
    ensure_checkpoint_key,
)
from ledger.tiles import TileConflict, TileHashReader, TileStore
from ops.cli import main
from ops.pipeline import enrol_demo_producers, run_simulation

REPO = Path(__file__).resolve().parents[2]
EVENTS = 1000
EXTRA_SCOPE = KeyScope("4499-extra", ("matter/4499/",), ("matter.*",))


def log_size(directory: Path) -> int:
    with Ledger.open(directory) as ledger:
        return ledger.store.max_position()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo ledger (checkpoint key enrolled first), never sealed; tests work on copies."""
    directory = tmp_path_factory.mktemp("base") / "ledger"
    with Ledger.init(directory) as ledger:
        ensure_checkpoint_key(ledger)
        signers = enrol_demo_producers(ledger)
        run_simulation(ledger, signers, events=EVENTS, seed=5, workers=0)
    return directory


def copy_ledger(source: Path, target: Path) -> Path:
    """A copy of a closed ledger directory whose configuration points at the copied database."""
    shutil.copytree(source, target)
    config = json.loads((target / CONFIG_FILE).read_text("utf-8"))
    config["store_url"] = f"sqlite:///{target / 'ledger.db'}"
    (target / CONFIG_FILE).write_text(json.dumps(config), "utf-8")
    return target


@pytest.fixture
def ledger(base: Path, tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(copy_ledger(base, tmp_path / "ledger")) as opened:
        yield opened


def signer_of(ledger: Ledger) -> Signer:
    return Signer.from_file(ledger.key_path("checkpoint"))


def seal(ledger: Ledger, every: int = 250) -> PublishedCheckpoint | None:
    with Sealer(ledger, signer_of(ledger), every_entries=every, durable=False) as sealer:
        return sealer.seal_once()


def grow(ledger: Ledger, count: int, tag: str = "x") -> None:
    """Append `count` registry events (enrol throw-away public keys)."""
    for i in range(count):
        ledger.enrol_key(f"{tag}{i}", "producer", EXTRA_SCOPE)


def stored_leaves(ledger: Ledger) -> list[bytes]:
    return [leaf_hash(row.record) for row in ledger.store.iter_log(1)]


def full_tiles(directory: Path) -> dict[str, tuple[int, int]]:
    root = directory / "tiles"
    return {
        p.relative_to(root).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and ".p" not in p.parent.name and p.name != "checkpoint"
    }


# --- publishing ---------------------------------------------------------------------------


def test_seal_once_publishes_signed_checkpoints_of_the_stored_log(ledger: Ledger) -> None:
    latest = seal(ledger)
    size = ledger.store.max_position()
    assert latest is not None
    assert latest.size == size
    sizes = list_checkpoints(ledger.directory)
    assert sizes[-1] == size
    assert all(b - a == 250 for a, b in itertools.pairwise(sizes[:-1]))
    leaves = stored_leaves(ledger)
    entry = ledger.registry.lookup(signer_of(ledger).key_id)
    assert entry is not None
    assert sizes[0] >= entry.enrolled_at  # nothing signed before the key was in the log
    origin = ledger.config.origin
    for s in sizes:
        cp = read_checkpoint(ledger.directory, s)
        verify_note(SignedNote.parse(cp.note), origin, entry.public_raw)
        assert cp.checkpoint == Checkpoint(origin, s, root_from_leaf_hashes(leaves[:s]))
    assert (ledger.directory / "tiles" / "checkpoint").read_bytes() == latest.note
    reader = TileHashReader(TileStore(ledger.directory / "tiles"), size)
    for index in (0, 1, size // 2, size - 1):
        proof = mp.inclusion_proof(index, size, reader)
        verify_inclusion(index, size, leaves[index], proof, latest.root)
        assert reader.entry(index) == next(iter(ledger.store.iter_log(index + 1, index + 1))).record
    for old in sizes[:-1]:
        old_root = read_checkpoint(ledger.directory, old).root
        verify_consistency(
            old, size, old_root, latest.root, mp.consistency_proof(old, size, reader)
        )
    assert verify_ledger_log(ledger) == []


def test_sealing_again_without_new_entries_writes_nothing(ledger: Ledger) -> None:
    seal(ledger)
    before = {p: p.stat().st_mtime_ns for p in ledger.directory.rglob("*") if p.is_file()}
    before.pop(ledger.directory / "sealer.lock")
    seal(ledger)
    after = {p: p.stat().st_mtime_ns for p in ledger.directory.rglob("*") if p.is_file()}
    after.pop(ledger.directory / "sealer.lock")
    assert after == before


def test_sealing_continues_where_it_stopped(ledger: Ledger) -> None:
    first = seal(ledger)
    assert first is not None
    tiles_before = full_tiles(ledger.directory)
    grow(ledger, 7)
    second = seal(ledger, every=1000)
    assert second is not None
    assert second.size == first.size + 7
    assert list_checkpoints(ledger.directory)[-2:] == [first.size, second.size]
    after = full_tiles(ledger.directory)
    assert {k: after[k] for k in tiles_before} == tiles_before  # never rewritten
    assert verify_ledger_log(ledger) == []


def test_no_checkpoint_before_the_key_is_enrolled(tmp_path: Path) -> None:
    with Ledger.init(tmp_path / "l") as ledger:
        grow(ledger, 5)
        signer = ensure_checkpoint_key(ledger)  # enrolled at position 7
        with Sealer(ledger, signer, every_entries=2, durable=False) as sealer:
            sealer.seal_once()
        assert list_checkpoints(ledger.directory) == [7]


def test_ensure_checkpoint_key_creates_enrols_and_reuses(tmp_path: Path) -> None:
    with Ledger.init(tmp_path / "l") as ledger:
        first = ensure_checkpoint_key(ledger)
        assert oct(ledger.key_path("checkpoint").stat().st_mode & 0o777) == "0o600"
        entry = ledger.registry.lookup(first.key_id)
        assert entry is not None
        assert entry.purpose == "checkpoint"
        assert entry.scope == CHECKPOINT_SCOPE
        assert ensure_checkpoint_key(ledger).key_id == first.key_id
        assert ledger.store.max_position() == 2  # genesis + one enrolment
        ledger.revoke_key(first.key_id, "compromised")
        with pytest.raises(SealerError, match="revoked"):
            ensure_checkpoint_key(ledger)


def test_run_publishes_on_the_interval_and_at_stop(ledger: Ledger) -> None:
    stop = threading.Event()
    published: list[int] = []
    sealer = Sealer(
        ledger,
        signer_of(ledger),
        every_entries=10**6,
        every_seconds=0.05,
        durable=False,
        on_publish=lambda cp: published.append(cp.size),
    )
    with sealer:
        thread = threading.Thread(target=sealer.run, args=(stop,), kwargs={"poll_seconds": 0.01})
        thread.start()
        deadline = time.monotonic() + 20
        while not published and time.monotonic() < deadline:
            time.sleep(0.01)
        assert published == [ledger.store.max_position()]
        stop.set()
        thread.join(20)
    assert not thread.is_alive()
    grow(ledger, 3)
    stop = threading.Event()
    with Sealer(
        ledger, signer_of(ledger), every_entries=10**6, every_seconds=3600, durable=False
    ) as sealer:
        thread = threading.Thread(target=sealer.run, args=(stop,), kwargs={"poll_seconds": 0.01})
        thread.start()
        deadline = time.monotonic() + 20
        while sealer.size < ledger.store.max_position() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert list_checkpoints(ledger.directory)[-1] == published[-1]  # sealed, not yet signed
        stop.set()
        thread.join(20)
    assert list_checkpoints(ledger.directory)[-1] == ledger.store.max_position()


def test_one_sealer_per_ledger(ledger: Ledger) -> None:
    with (
        Sealer(ledger, signer_of(ledger), durable=False),
        pytest.raises(SealerError, match="another sealer"),
    ):
        Sealer(ledger, signer_of(ledger), durable=False)


# --- crashes ------------------------------------------------------------------------------


class Crash(Exception):
    pass


def crash_on_publish(monkeypatch: pytest.MonkeyPatch, at_call: int, method: str) -> None:
    calls = {"n": 0}
    original = getattr(TileStore, method)

    def failing(self: TileStore, *args: object) -> object:
        calls["n"] += 1
        if calls["n"] == at_call:
            raise Crash(f"killed in {method}")
        return original(self, *args)

    monkeypatch.setattr(TileStore, method, failing)


@pytest.mark.parametrize(
    ("method", "at_call"),
    [("write_checkpoint", 2), ("sync", 3), ("write", 20)],
    ids=["between-checkpoint-files", "before-signing", "mid-tiles"],
)
def test_resume_after_a_crash_equals_an_uninterrupted_run(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str, at_call: int
) -> None:
    straight = copy_ledger(base, tmp_path / "straight")
    with Ledger.open(straight) as ledger:
        seal(ledger, every=100)
    crashed = copy_ledger(base, tmp_path / "crashed")
    with Ledger.open(crashed) as ledger:
        with monkeypatch.context() as patch:
            crash_on_publish(patch, at_call, method)
            with pytest.raises(Crash):
                seal(ledger, every=100)
        before = full_tiles(crashed)
        seal(ledger, every=100)
        after = full_tiles(crashed)
        assert {k: after[k] for k in before} == before
        assert verify_ledger_log(ledger) == []
    a, b = crashed / "checkpoints", straight / "checkpoints"
    assert sorted(os.listdir(a)) == sorted(os.listdir(b))
    for name in os.listdir(b):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (crashed / "tiles/checkpoint").read_bytes() == (
        straight / "tiles/checkpoint"
    ).read_bytes()
    assert set(full_tiles(crashed)) == set(full_tiles(straight))


def test_resume_without_partial_tiles_rebuilds_and_rewrites_no_full_tile(ledger: Ledger) -> None:
    latest = seal(ledger)
    assert latest is not None
    before = full_tiles(ledger.directory)
    for partial in (ledger.directory / "tiles").rglob("*.p"):
        shutil.rmtree(partial)
    grow(ledger, 2)
    assert seal(ledger) is not None
    after = full_tiles(ledger.directory)
    assert {k: after[k] for k in before} == before
    assert verify_ledger_log(ledger) == []


@pytest.mark.slow
def test_sigkill_mid_run_then_restart(base: Path, tmp_path: Path) -> None:
    directory = copy_ledger(base, tmp_path / "ledger")
    neikong = [str(Path(sys.executable).parent / "neikong")]
    proc = subprocess.Popen(
        [*neikong, "seal", "--ledger", str(directory), "--every", "10", "--interval", "0.05"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(list_checkpoints(directory)) < 20 and time.monotonic() < deadline:
            assert proc.poll() is None
            time.sleep(0.005)
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    killed_at = list_checkpoints(directory)
    total = log_size(directory)
    assert 20 <= len(killed_at) < total // 10, "the kill did not land mid-run"
    before = full_tiles(directory)
    done = subprocess.run(
        [*neikong, "seal", "--ledger", str(directory), "--every", "10", "--once"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    after = full_tiles(directory)
    assert {k: after[k] for k in before} == before
    sizes = list_checkpoints(directory)
    assert sizes[: len(killed_at)] == killed_at
    assert sizes[-1] == total
    with Ledger.open(directory) as ledger:
        assert verify_ledger_log(ledger) == []


@pytest.mark.slow
def test_sigterm_stops_the_service_after_a_last_checkpoint(base: Path, tmp_path: Path) -> None:
    directory = copy_ledger(base, tmp_path / "ledger")
    neikong = str(Path(sys.executable).parent / "neikong")
    proc = subprocess.Popen(
        [neikong, "seal", "--ledger", str(directory), "--every", "100000", "--interval", "3600"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (directory / "tiles/tile/0/002").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # sealing, but nothing published yet (interval 1 h, every 100000)
        assert list_checkpoints(directory) == []
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err
    assert list_checkpoints(directory) == [log_size(directory)]
    assert f"checkpoint {log_size(directory)} " in out


# --- refusals -----------------------------------------------------------------------------


def test_refuses_a_log_shorter_than_the_last_checkpoint(ledger: Ledger) -> None:
    latest = seal(ledger)
    assert latest is not None
    db = sqlite3.connect(ledger.directory / "ledger.db")
    with db:
        db.execute("DELETE FROM stored_events WHERE rowid > ?", (latest.size - 3,))
    db.close()
    with pytest.raises(SealRefused, match="truncated or rolled back"):
        Sealer(ledger, signer_of(ledger), durable=False)


def test_refuses_a_rewritten_history_when_rebuilding(ledger: Ledger) -> None:
    seal(ledger)
    db = sqlite3.connect(ledger.directory / "ledger.db")
    with db:
        (state,) = db.execute("SELECT state FROM stored_events WHERE rowid = 300").fetchone()
        db.execute("UPDATE stored_events SET state = ? WHERE rowid = 300", (state + b" ",))
    db.close()
    shutil.rmtree(ledger.directory / "tiles")
    with pytest.raises(InconsistentCheckpoint, match="was rewritten"):
        seal(ledger)


def test_refuses_tiles_that_do_not_hash_to_the_signed_root(ledger: Ledger) -> None:
    latest = seal(ledger)
    assert latest is not None
    partial = ledger.directory / "tiles/tile/1/000.p" / str(latest.size // 256)
    data = bytearray(partial.read_bytes())
    data[0] ^= 1
    partial.write_bytes(bytes(data))
    with pytest.raises(SealRefused, match="do not hash to the signed root"):
        Sealer(ledger, signer_of(ledger), durable=False)


def test_refuses_to_rewrite_a_full_tile(ledger: Ledger) -> None:
    seal(ledger)
    db = sqlite3.connect(ledger.directory / "ledger.db")
    with db:
        (state,) = db.execute("SELECT state FROM stored_events WHERE rowid = 5").fetchone()
        db.execute("UPDATE stored_events SET state = ? WHERE rowid = 5", (state + b" ",))
    db.close()
    for partial in (ledger.directory / "tiles").rglob("*.p"):
        shutil.rmtree(partial)  # forces a rebuild from position 1
    with pytest.raises(TileConflict, match="tile/entries/000 is published"):
        seal(ledger)


def test_refuses_a_hole_in_the_positions(ledger: Ledger) -> None:
    latest = seal(ledger)
    assert latest is not None
    grow(ledger, 3)
    db = sqlite3.connect(ledger.directory / "ledger.db")
    with db:
        db.execute("DELETE FROM stored_events WHERE rowid = ?", (latest.size + 2,))
    db.close()
    with pytest.raises(SealRefused, match=f"position {latest.size + 2} is missing"):
        seal(ledger)


def test_never_signs_a_checkpoint_that_does_not_extend_the_last(ledger: Ledger) -> None:
    seal(ledger)
    grow(ledger, 4)
    with Sealer(ledger, signer_of(ledger), durable=False) as sealer:
        assert sealer.latest is not None
        forged = Checkpoint(sealer.origin, sealer.latest.size, b"\x07" * 32)
        sealer.latest = PublishedCheckpoint(b"forged note", forged)
        count = len(list_checkpoints(ledger.directory))
        with pytest.raises(InconsistentCheckpoint, match="does not extend") as info:
            sealer.seal_once()
        assert info.value.published == b"forged note"
        assert Checkpoint.parse_body(info.value.candidate).size == ledger.store.max_position()
        assert len(list_checkpoints(ledger.directory)) == count


def test_refuses_a_planted_checkpoint(ledger: Ledger) -> None:
    latest = seal(ledger)
    assert latest is not None
    other = Signer.from_file(ledger.key_path("4403-fapiao"))  # a producer key, not a checkpoint key
    from ledger.note import sign_note

    body = Checkpoint(ledger.config.origin, latest.size + 1, b"\x01" * 32).body()
    note = SignedNote(body, (sign_note(body, ledger.config.origin, other.private_key),))
    (ledger.directory / "checkpoints" / str(latest.size + 1)).write_bytes(note.encode())
    with pytest.raises(SealRefused, match="not a checkpoint of"):
        Sealer(ledger, signer_of(ledger), durable=False)


def test_remembers_the_served_checkpoint_if_the_archive_is_lost(ledger: Ledger) -> None:
    latest = seal(ledger)
    assert latest is not None
    shutil.rmtree(ledger.directory / "checkpoints")  # the archive is gone, tiles/ still serves
    db = sqlite3.connect(ledger.directory / "ledger.db")
    with db:
        (state,) = db.execute("SELECT state FROM stored_events WHERE rowid = 300").fetchone()
        db.execute("UPDATE stored_events SET state = ? WHERE rowid = 300", (state + b" ",))
    db.close()
    for partial in (ledger.directory / "tiles").rglob("*.p"):
        shutil.rmtree(partial)
    shutil.rmtree(ledger.directory / "tiles/tile")
    with pytest.raises(InconsistentCheckpoint, match="was rewritten"):
        seal(ledger)
    assert list_checkpoints(ledger.directory) == [latest.size]  # re-archived, nothing new


def test_refuses_a_revoked_checkpoint_key(ledger: Ledger) -> None:
    signer = signer_of(ledger)
    ledger.revoke_key(signer.key_id, "compromised")
    with pytest.raises(SealerError, match="may not sign"):
        seal(ledger)


# --- CLI ----------------------------------------------------------------------------------


def test_cli_seal_checkpoints_and_export(base: Path, tmp_path: Path) -> None:
    directory = copy_ledger(base, tmp_path / "ledger")
    runner = CliRunner()
    result = runner.invoke(main, ["seal", "--ledger", str(directory), "--once", "--every", "400"])
    assert result.exit_code == 0, result.output
    assert "checkpoint 400 " in result.output
    total = log_size(directory)
    assert f"latest checkpoint {total}" in result.output
    listed = runner.invoke(main, ["checkpoints", "--ledger", str(directory), "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [r["size"] for r in rows] == [400, 800, total]
    assert all(r["signature_ok"] for r in rows)
    out = tmp_path / "static"
    exported = runner.invoke(main, ["tiles", "export", "--ledger", str(directory), str(out)])
    assert exported.exit_code == 0, exported.output
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint", "tile"]
    # a tlog-tiles client needs only the static files: checkpoint, tiles, bundles
    note = SignedNote.parse((out / "checkpoint").read_bytes())
    cp = Checkpoint.parse_body(note.body)
    reader = TileHashReader(TileStore(out), cp.size)
    assert mp.tree_root(cp.size, reader) == cp.root
    index = cp.size - 2
    verify_inclusion(
        index,
        cp.size,
        leaf_hash(reader.entry(index)),
        mp.inclusion_proof(index, cp.size, reader),
        cp.root,
    )
    again = runner.invoke(main, ["tiles", "export", "--ledger", str(directory), str(out)])
    assert again.exit_code == 0
    assert "and 0 new files" in again.output
    (out / "tile/0/000").write_bytes(b"\x00" * 8192)
    clash = runner.invoke(main, ["tiles", "export", "--ledger", str(directory), str(out)])
    assert clash.exit_code == 1
    assert "tile/0/000 differs from the ledger's" in clash.output


def test_cli_reports_tamper_with_exit_code_1(base: Path, tmp_path: Path) -> None:
    directory = copy_ledger(base, tmp_path / "ledger")
    runner = CliRunner()
    assert runner.invoke(main, ["seal", "--ledger", str(directory), "--once"]).exit_code == 0
    newest = directory / "checkpoints" / str(list_checkpoints(directory)[-1])
    text = newest.read_text()
    newest.write_text(text.replace(text.splitlines()[-1][-6:], "AAAAA="))
    listed = runner.invoke(main, ["checkpoints", "--ledger", str(directory)])
    assert listed.exit_code == 1
    assert "BAD SIGNATURE" in listed.output or "MALFORMED" in listed.output
    sealed = runner.invoke(main, ["seal", "--ledger", str(directory), "--once"])
    assert sealed.exit_code == 1
    assert "TAMPER EVIDENCE" in sealed.output


def test_cli_export_before_any_checkpoint_says_what_to_do(tmp_path: Path) -> None:
    Ledger.init(tmp_path / "l").close()
    result = CliRunner().invoke(
        main, ["tiles", "export", "--ledger", str(tmp_path / "l"), str(tmp_path / "out")]
    )
    assert result.exit_code == 3
    assert "neikong seal --once" in result.output
