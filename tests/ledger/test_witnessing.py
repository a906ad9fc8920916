"""The ledger's side of witnessing (`ledger.witnessing`, `neikong witness add`, `neikong cosign`).

A demo ledger is sealed (checkpoints 100, 200, 300, 306) without cosigning; each test works on
a copy and brings its own witness (in process, or the real HTTP server in a thread).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.checkpoints import list_checkpoints, read_checkpoint
from ledger.cosign_verify import verify_cosignatures
from ledger.findings import FindingKind
from ledger.keys import raw_public_key
from ledger.ledger import Ledger
from ledger.merkle_proofs import consistency_proof
from ledger.note import (
    Checkpoint,
    NoteError,
    NoteSignature,
    SignedNote,
    cosign,
    sign_note,
    vkey,
)
from ledger.sealer import ensure_checkpoint_key
from ledger.tiles import TileHashReader, TileStore
from ledger.witness import Witness, WitnessUnavailable
from ledger.witness_config import add_witness, load_witnesses
from ledger.witnessing import (
    CosignIncomplete,
    cosign_checkpoint,
    cosigned_path,
    last_cosigned_size,
    read_cosigned,
    tile_proof_provider,
)
from ops.cli import main
from ops.cli_witness import cosign_published
from ops.witness_server import make_server
from tests.ledger._evidence import (
    WITNESS_NAME,
    WITNESS_URL,
    Demo,
    build_demo,
    copy_ledger,
    in_process,
    open_witness,
    witness_key,
)


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    return build_demo(tmp_path_factory.mktemp("witnessing"), events=300, every=100, cosign=False)


@pytest.fixture
def directory(sealed: Demo, tmp_path: Path) -> Path:
    return copy_ledger(sealed.directory, tmp_path / "ledger")


@pytest.fixture
def witness(directory: Path, tmp_path: Path) -> Iterator[Witness]:
    with Ledger.open(directory) as ledger:
        opened = open_witness(ledger, tmp_path / "w" / "state.json", seed=11)
    with opened:
        add_witness(directory, "inspectorate", WITNESS_URL, opened.vkey)
        yield opened


def cosign_at(directory: Path, size: int, submit, previous: int | None = None) -> SignedNote:
    note = read_checkpoint(directory, size).note
    provider = tile_proof_provider(directory, size)
    return cosign_checkpoint(directory, note, previous, provider, submit=submit)


def kinds(directory: Path) -> list[str]:
    return [f.kind.value for f in verify_cosignatures(directory)]


# --- configuration ----------------------------------------------------------------------------


def test_add_witness_validates_and_replaces(directory: Path, witness: Witness):
    log_vkey = vkey("log", raw_public_key(witness_key(1).public_key()))  # a note key (0x01)
    with pytest.raises(NoteError, match="not a cosignature key"):
        add_witness(directory, "bad", WITNESS_URL, log_vkey)
    with pytest.raises(ValueError, match="http"):
        add_witness(directory, "bad", "ftp://x", witness.vkey)
    with pytest.raises(ValueError, match="already uses the key"):
        add_witness(directory, "twin", WITNESS_URL, witness.vkey)
    add_witness(directory, "inspectorate", "https://w.example/prefix", witness.vkey)
    assert [(w.name, w.url) for w in load_witnesses(directory)] == [
        ("inspectorate", "https://w.example/prefix")
    ]


def test_a_malformed_witness_file_is_refused(directory: Path):
    (directory / "witnesses.json").write_text('[{"name": "w"}]')
    with pytest.raises(ValueError, match="malformed"):
        load_witnesses(directory)
    result = CliRunner().invoke(main, ["cosign", "--ledger", str(directory)])
    assert result.exit_code == 3
    assert "malformed" in result.output


# --- cosigning --------------------------------------------------------------------------------


def test_cosigning_stores_verified_cosignatures_next_to_the_checkpoint(
    directory: Path, witness: Witness
):
    sizes = list_checkpoints(directory)
    plain = read_checkpoint(directory, sizes[-1]).note
    note = cosign_at(directory, sizes[-1], in_process(witness))
    assert (directory / "checkpoints" / str(sizes[-1])).read_bytes() == plain  # untouched
    stored = cosigned_path(directory, sizes[-1]).read_bytes()
    assert stored == note.encode()
    assert stored.startswith(plain)  # the log's signature stays first
    assert [s.name for s in note.signatures][1:] == [WITNESS_NAME]
    assert last_cosigned_size(directory, load_witnesses(directory)[0]) == sizes[-1]
    calls: list[int] = []
    cosign_at(directory, sizes[-1], in_process(witness, calls))
    assert calls == []  # already cosigned: skipped
    assert kinds(directory) == []


def test_a_409_is_answered_from_the_witness_size_with_a_new_proof(
    directory: Path, witness: Witness
):
    sizes = list_checkpoints(directory)
    cosign_at(directory, sizes[0], in_process(witness))
    calls: list[int] = []
    cosign_at(directory, sizes[-1], in_process(witness, calls), previous=0)
    assert calls == [0, sizes[0]]
    assert witness.latest(read_checkpoint(directory, sizes[-1]).checkpoint.origin).size == sizes[-1]


def test_a_forged_cosignature_is_never_stored(directory: Path, witness: Witness):
    size = list_checkpoints(directory)[-1]
    impostor = witness_key(99)

    def forged(url: str, old: int, proof: Sequence[bytes], note: bytes) -> list[NoteSignature]:
        real = witness.add_checkpoint(old, proof, note)
        fake = cosign(SignedNote.parse(note).body, WITNESS_NAME, impostor, 1_800_000_000)
        return [NoteSignature(real.name, real.key_hash, fake.signature)]

    with pytest.raises(CosignIncomplete) as caught:
        cosign_at(directory, size, forged)
    assert [(f.kind, f.tamper) for f in caught.value.failures] == [("bad_cosignature", True)]
    assert read_cosigned(directory, size) is None


def test_a_witness_that_saw_another_root_is_tamper_evidence(directory: Path, witness: Witness):
    size = list_checkpoints(directory)[-1]
    with Ledger.open(directory) as ledger:
        signer = ensure_checkpoint_key(ledger)
        origin = ledger.config.origin
    body = Checkpoint(origin, size, bytes(32)).body()  # the same size, another root
    witness.add_checkpoint(
        0, [], SignedNote(body, (sign_note(body, origin, signer.private_key),)).encode()
    )
    with pytest.raises(CosignIncomplete) as caught:
        cosign_at(directory, size, in_process(witness))
    assert [(f.kind, f.tamper) for f in caught.value.failures] == [("conflict", True)]
    assert [e.kind for e in witness.evidence()] == ["same_size_different_root"]


def test_unreachable_and_ahead_witnesses_are_not_tamper(directory: Path, witness: Witness):
    sizes = list_checkpoints(directory)

    def down(url: str, old: int, proof: Sequence[bytes], note: bytes) -> list[NoteSignature]:
        raise WitnessUnavailable("connection refused")

    with pytest.raises(CosignIncomplete) as caught:
        cosign_at(directory, sizes[-1], down)
    assert [(f.kind, f.tamper) for f in caught.value.failures] == [("unreachable", False)]
    cosign_at(directory, sizes[-1], in_process(witness))
    with pytest.raises(CosignIncomplete) as caught:
        cosign_at(directory, sizes[0], in_process(witness))
    assert [(f.kind, f.tamper) for f in caught.value.failures] == [("ahead", False)]


def test_cosigning_needs_the_published_checkpoint(directory: Path, witness: Witness):
    size = list_checkpoints(directory)[-1]
    with Ledger.open(directory) as ledger:
        signer = ensure_checkpoint_key(ledger)
        origin = ledger.config.origin
    body = Checkpoint(origin, size, bytes(32)).body()
    other = SignedNote(body, (sign_note(body, origin, signer.private_key),)).encode()
    provider = tile_proof_provider(directory, size)
    with pytest.raises(ValueError, match="not the published checkpoint"):
        cosign_checkpoint(directory, other, None, provider, submit=in_process(witness))


# --- verification -----------------------------------------------------------------------------


def test_verify_cosignatures_findings(directory: Path, witness: Witness):
    sizes = list_checkpoints(directory)
    assert kinds(directory) == ["missing_cosignature"]  # nothing cosigned yet
    cosign_at(directory, sizes[0], in_process(witness))
    [finding] = verify_cosignatures(directory)
    assert finding.kind is FindingKind.MISSING_COSIGNATURE
    assert f"last cosigned checkpoint {sizes[0]}" in finding.detail
    cosign_at(directory, sizes[-1], in_process(witness))
    assert kinds(directory) == []
    path = cosigned_path(directory, sizes[-1])
    good = path.read_bytes()
    broken = bytearray(good)
    broken[-10] = ord("A") if broken[-10] != ord("A") else ord("B")
    path.write_bytes(bytes(broken))
    assert "bad_cosignature" in kinds(directory)
    note = SignedNote.parse(good)
    path.write_bytes(SignedNote(note.body, note.signatures[1:]).encode())  # log signature lost
    assert "bad_cosignature" in kinds(directory)
    path.write_bytes(good)
    (directory / "checkpoints" / "7.cosigned").write_bytes(good)  # no checkpoint 7
    assert kinds(directory) == ["bad_cosignature"]


# --- command line, over HTTP ------------------------------------------------------------------


def test_witness_add_and_cosign_over_http(directory: Path, tmp_path: Path):
    with Ledger.open(directory) as ledger:
        witness = open_witness(ledger, tmp_path / "http-w" / "state.json", seed=23)
        origin = ledger.config.origin
    server = make_server(witness, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        runner = CliRunner()
        args = ["--ledger", str(directory)]
        result = runner.invoke(main, ["cosign", *args])
        assert result.exit_code == 3
        assert "no witnesses configured" in result.output
        added = runner.invoke(
            main, ["witness", "add", *args, "--name", "w", "--url", url, "--vkey", witness.vkey]
        )
        assert added.exit_code == 0, added.output
        result = runner.invoke(main, ["cosign", *args])
        assert result.exit_code == 0, result.output
        assert WITNESS_NAME in result.output
        sizes = list_checkpoints(directory)
        assert witness.latest(origin).size == sizes[-1]
        cosign_published(directory, read_checkpoint(directory, sizes[-1]))  # a no-op now
        assert kinds(directory) == []
        bad = runner.invoke(
            main, ["witness", "add", *args, "--name", "x", "--url", url, "--vkey", "v"]
        )
        assert bad.exit_code == 2
    finally:
        server.shutdown()
        server.server_close()
        witness.close()


def test_cosign_reports_an_unreachable_witness(directory: Path, witness: Witness):
    add_witness(directory, "inspectorate", "http://127.0.0.1:9", witness.vkey)
    result = CliRunner().invoke(main, ["cosign", "--ledger", str(directory), "--timeout", "2"])
    assert result.exit_code == 3
    assert "unreachable" in result.output


def test_consistency_proofs_come_from_the_tiles(directory: Path):
    sizes = list_checkpoints(directory)
    provider = tile_proof_provider(directory, sizes[-1])
    reader = TileHashReader(TileStore(directory / "tiles"), sizes[-1])
    assert provider(sizes[0], sizes[-1]) == consistency_proof(sizes[0], sizes[-1], reader)
    with pytest.raises(ValueError, match="proves consistency to size"):
        provider(sizes[0], sizes[-2])
