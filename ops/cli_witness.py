"""`neikong witness …` and `neikong cosign` (registered on `ops.cli.main`).

The inspectorate's side: `witness init/vkey/serve`. A witness directory holds `witness.key`
(PEM, mode 0600), `witness.json` (its name), `state.json` (last cosigned checkpoint per log,
replaced atomically), `state.evidence.jsonl` (refused inconsistent checkpoints, both signed
notes) and `state.lock`.

The ledger's side: `witness add` (DIR/witnesses.json) and `cosign` (submit the latest
checkpoint to every witness, keep the verified cosignatures in DIR/checkpoints/<size>.cosigned);
`cosign_published` is the same for a sealer's `on_publish` hook.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import NoReturn

import click

from ledger.checkpoints import PublishedCheckpoint, list_checkpoints, read_checkpoint
from ledger.keys import generate_private_key, load_private_key, raw_public_key, write_private_key
from ledger.note import (
    SIG_TYPE_COSIGNATURE,
    SIG_TYPE_ED25519,
    NoteError,
    NoteSignature,
    note_key_hash,
    parse_vkey,
)
from ledger.note import vkey as format_vkey
from ledger.witness import Witness
from ledger.witness_config import add_witness, load_witnesses
from ledger.witness_state import WitnessStateError
from ledger.witnessing import CosignIncomplete, cosign_checkpoint, tile_proof_provider
from ops.cli import EXIT_CODES_HELP, EXIT_OPERATIONAL, EXIT_TAMPER, _open, ledger_option, main
from ops.witness_server import ADD_CHECKPOINT_PATH, make_server, submit_checkpoint

__all__ = ["cosign_published"]

KEY_FILE, CONFIG_FILE, STATE_FILE = "witness.key", "witness.json", "state.json"

dir_option = click.option(
    "--dir",
    "wdir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Witness directory (key, name, state, evidence).",
)


def _fail(message: str) -> NoReturn:
    click.echo(f"neikong: error: {message}", err=True)
    sys.exit(EXIT_OPERATIONAL)


def _load(wdir: Path) -> tuple[str, bytes, Path]:
    """(name, raw public key, key path) of the witness in `wdir`; exits 3 if absent."""
    try:
        name = str(json.loads((wdir / CONFIG_FILE).read_text(encoding="utf-8"))["name"])
    except FileNotFoundError:
        _fail(f"no witness in {wdir}; run: neikong witness init --dir {wdir} --name NAME")
    except (ValueError, KeyError, TypeError) as exc:
        _fail(f"{wdir / CONFIG_FILE} is corrupt: {exc}")
    key = load_private_key(wdir / KEY_FILE)
    return name, raw_public_key(key.public_key()), wdir / KEY_FILE


@main.group(epilog=EXIT_CODES_HELP)
def witness() -> None:
    """Independent witness: cosigns checkpoints that extend the last one it cosigned."""


@witness.command("init", epilog=EXIT_CODES_HELP)
@dir_option
@click.option("--name", required=True, help="Witness key name, e.g. inspectorate.example/w1.")
def witness_init(wdir: Path, name: str) -> None:
    """Create a witness key (WDIR/witness.key, mode 0600) and print its vkey."""
    try:
        note_key_hash(name, b"")
    except NoteError as exc:
        raise click.BadParameter(str(exc), param_hint="--name") from None
    if (wdir / CONFIG_FILE).exists():
        _fail(f"{wdir} already holds a witness; refusing to overwrite it")
    key = generate_private_key()
    write_private_key(wdir / KEY_FILE, key)  # refuses to overwrite; makes WDIR mode 0700
    (wdir / CONFIG_FILE).write_text(json.dumps({"name": name}) + "\n", encoding="utf-8")
    click.echo(format_vkey(name, raw_public_key(key.public_key()), SIG_TYPE_COSIGNATURE))


@witness.command("vkey", epilog=EXIT_CODES_HELP)
@dir_option
def witness_vkey(wdir: Path) -> None:
    """Print the witness's cosignature verifier key (type 0x04)."""
    name, public, _ = _load(wdir)
    click.echo(format_vkey(name, public, SIG_TYPE_COSIGNATURE))


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r} is not HOST:PORT", param_hint="--listen")
    return host.strip("[]"), int(port)


def _parse_logs(values: tuple[str, ...]) -> dict[str, tuple[str, bytes]]:
    trusted: dict[str, tuple[str, bytes]] = {}
    for value in values:
        origin, sep, text = value.partition("=")
        try:
            if not sep or not origin:
                raise NoteError("expected ORIGIN=VKEY")
            key_name, public, sig_type = parse_vkey(text)
            if sig_type != SIG_TYPE_ED25519:
                raise NoteError("a log key must be an Ed25519 note key (type 0x01)")
        except NoteError as exc:
            raise click.BadParameter(f"{value!r}: {exc}", param_hint="--log") from None
        if origin in trusted:
            raise click.BadParameter(f"origin {origin!r} given twice", param_hint="--log")
        trusted[origin] = (key_name, public)
    return trusted


@witness.command("serve", epilog=EXIT_CODES_HELP)
@dir_option
@click.option(
    "--listen",
    default="127.0.0.1:7380",
    show_default=True,
    help="HOST:PORT to bind (port 0 picks a free one; the address is printed).",
)
@click.option(
    "--log",
    "logs",
    multiple=True,
    required=True,
    help="Trusted log: ORIGIN=VKEY (the log's Ed25519 note vkey). Repeatable.",
)
@click.option("--quiet", is_flag=True, help="Do not log each request to stderr.")
def witness_serve(wdir: Path, listen: str, logs: tuple[str, ...], quiet: bool) -> None:
    """Serve POST /add-checkpoint (c2sp.org/tlog-witness) until SIGTERM or Ctrl-C."""
    host, port = _parse_listen(listen)
    trusted = _parse_logs(logs)
    name, _, key_path = _load(wdir)
    try:
        instance = Witness(name, load_private_key(key_path), wdir / STATE_FILE, trusted)
    except WitnessStateError as exc:
        _fail(str(exc))
    with instance:
        try:
            server = make_server(instance, host, port, quiet=quiet)
        except OSError as exc:
            _fail(f"cannot listen on {listen}: {exc}")
        bound_host, bound_port = server.server_address[:2]

        def stop(signum: int, frame: FrameType | None) -> None:
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        click.echo(f"witness {instance.vkey}")
        click.echo(f"listening on http://{bound_host!s}:{bound_port}{ADD_CHECKPOINT_PATH}")
        sys.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    click.echo("witness stopped", err=True)


# --- the ledger's side ------------------------------------------------------------------------


@witness.command("add", epilog=EXIT_CODES_HELP)
@ledger_option
@click.option("--name", required=True, help="A label for the witness in DIR/witnesses.json.")
@click.option("--url", required=True, help="Its submission URL (http(s)://HOST:PORT[/prefix]).")
@click.option("--vkey", required=True, help="Its cosignature vkey (`neikong witness vkey`).")
def witness_add(ledger_dir: Path | None, name: str, url: str, vkey: str) -> None:
    """Make the ledger submit its checkpoints to a witness (adds it to DIR/witnesses.json).

    An existing entry of the same name is replaced.
    """
    with _open(ledger_dir) as ledger:
        try:
            added = add_witness(ledger.directory, name, url, vkey)
        except ValueError as exc:  # NoteError included
            raise click.BadParameter(str(exc)) from None
        click.echo(f"witness {added.name} ({added.key.name}) at {added.url} added")


def _submitter(timeout: float) -> functools.partial[list[NoteSignature]]:
    return functools.partial(submit_checkpoint, timeout=timeout)


def cosign_published(
    ledger_dir: Path, checkpoint: PublishedCheckpoint, *, timeout: float = 10.0
) -> None:
    """`on_publish` hook of a sealer: have the configured witnesses cosign `checkpoint`.

    Does nothing without witnesses; a witness that fails is reported on stderr and never
    stops the sealer (`neikong cosign` catches up later).
    """
    if not load_witnesses(ledger_dir):
        return
    try:
        note = cosign_checkpoint(
            ledger_dir,
            checkpoint.note,
            None,
            tile_proof_provider(ledger_dir, checkpoint.size),
            submit=_submitter(timeout),
        )
    except CosignIncomplete as exc:
        for failure in exc.failures:
            click.echo(
                f"neikong: cosign {checkpoint.size}: witness {failure.witness}: "
                f"{failure.kind}: {failure.detail}",
                err=True,
            )
        return
    click.echo(f"cosigned {checkpoint.size}: {len(note.signatures) - 1} cosignatures", err=True)


@main.command(epilog=EXIT_CODES_HELP)
@ledger_option
@click.option(
    "--timeout",
    type=click.FloatRange(0.1),
    default=10.0,
    show_default=True,
    help="Seconds to wait for each witness's answer.",
)
def cosign(ledger_dir: Path | None, timeout: float) -> None:
    """Have every witness in DIR/witnesses.json cosign the latest checkpoint.

    Witnesses whose cosignature of it is stored already are skipped; each new cosignature is
    verified against the witness's vkey before it is added to DIR/checkpoints/<size>.cosigned.
    Exit code 1 if a witness holds a conflicting checkpoint or answers a bad cosignature
    (tamper evidence), 3 if one is unreachable or refuses for another reason.
    """
    with _open(ledger_dir) as ledger:
        directory = ledger.directory
    sizes = list_checkpoints(directory)
    if not sizes:
        _fail(f"{directory} has no checkpoint yet; run `neikong seal --once` first")
    try:
        configured = load_witnesses(directory)
    except ValueError as exc:
        _fail(str(exc))
    if not configured:
        _fail("no witnesses configured; add one with `neikong witness add`")
    latest = read_checkpoint(directory, sizes[-1])
    try:
        note = cosign_checkpoint(
            directory,
            latest.note,
            None,
            tile_proof_provider(directory, latest.size),
            submit=_submitter(timeout),
        )
    except CosignIncomplete as exc:
        for failure in exc.failures:
            click.echo(f"witness {failure.witness}: {failure.kind}: {failure.detail}", err=True)
        stored = len(exc.note.signatures) - 1 if exc.note else 0
        click.echo(f"checkpoint {latest.size}: {stored} cosignatures stored, some missing")
        sys.exit(EXIT_TAMPER if any(f.tamper for f in exc.failures) else EXIT_OPERATIONAL)
    names = [s.name for s in note.signatures[1:]]
    click.echo(f"checkpoint {latest.size} cosigned by {', '.join(names) or 'nobody'}")
