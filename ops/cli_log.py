"""CLI commands of the verifiable log: `seal`, `checkpoints`, `tiles export`.

Registered on `ops.cli.main` (this module is imported at the end of ops/cli.py). Exit codes as
for every command: 0 ok, 1 tamper evidence, 2 usage, 3 operational error.
"""

from __future__ import annotations

import base64
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import click

from ledger.checkpoints import (
    TILES_DIR,
    PublishedCheckpoint,
    checkpoint_keys,
    key_valid_for_size,
    list_checkpoints,
    read_checkpoint,
    signing_keys,
)
from ledger.errors import VerificationError
from ledger.note import NoteError
from ledger.note import vkey as note_vkey
from ledger.sealer import Sealer, ensure_checkpoint_key
from ledger.tiles import TileConflict, TileStore
from ops.cli import (
    EXIT_CODES_HELP,
    EXIT_OPERATIONAL,
    EXIT_TAMPER,
    _emit_json,
    _open,
    ledger_option,
    main,
)

__all__: list[str] = []


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _tamper(exc: VerificationError) -> None:
    click.echo(f"neikong: TAMPER EVIDENCE: {exc}", err=True)
    sys.exit(EXIT_TAMPER)


@main.command(epilog=EXIT_CODES_HELP)
@ledger_option
@click.option(
    "--every",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Publish a checkpoint after this many new entries.",
)
@click.option(
    "--interval",
    type=click.FloatRange(0.01),
    default=10.0,
    show_default=True,
    help="Publish a checkpoint after this many seconds if there are new entries.",
)
@click.option("--once", is_flag=True, help="Seal what is stored, publish, and exit.")
def seal(ledger_dir: Path | None, every: int, interval: float, once: bool) -> None:
    """Follow the log into C2SP tiles and publish signed checkpoints (the sealer service).

    Creates and enrols the checkpoint key (DIR/keys/checkpoint.key) on first use. Resumes
    after a crash from the tiles on disk. Stops with exit code 1, signing nothing, if the
    log or the tiles no longer match what was signed. SIGTERM or Ctrl-C stop it cleanly.
    """

    def announce(cp: PublishedCheckpoint) -> None:
        click.echo(f"checkpoint {cp.size} {_b64(cp.root)}")
        from ops.cli_witness import cosign_published  # witnesses of DIR/witnesses.json, if any

        cosign_published(ledger.directory, cp)

    with _open(ledger_dir) as ledger:
        signer = ensure_checkpoint_key(ledger)
        try:
            with Sealer(
                ledger, signer, every_entries=every, every_seconds=interval, on_publish=announce
            ) as sealer:
                if once:
                    latest = sealer.seal_once()
                    if latest is None:
                        click.echo("nothing to seal: the log is empty", err=True)
                    else:
                        click.echo(f"sealed {sealer.size} entries; latest checkpoint {latest.size}")
                    return
                stop = threading.Event()
                _stop_on_signals(stop)
                click.echo(
                    f"sealing {ledger.directory} from entry {sealer.size + 1} "
                    f"(every {every} entries or {interval:g} s); Ctrl-C to stop",
                    err=True,
                )
                sealer.run(stop)
        except VerificationError as exc:
            _tamper(exc)


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@main.command(epilog=EXIT_CODES_HELP)
@ledger_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option(
    "--vkey",
    "show_vkey",
    is_flag=True,
    help="Print the note vkey of the active checkpoint key (what a witness is given as "
    "ORIGIN=VKEY) and exit.",
)
def checkpoints(ledger_dir: Path | None, as_json: bool, show_vkey: bool) -> None:
    """List the published checkpoints (DIR/checkpoints) and check their signatures.

    Exit code 1 if a checkpoint is malformed or not signed by a checkpoint key valid at its
    size (run `neikong verify` for the full check against the stored log).
    """
    rows: list[dict[str, Any]] = []
    with _open(ledger_dir) as ledger:
        origin = ledger.config.origin
        if show_vkey:
            active = [k for k in checkpoint_keys(ledger.registry) if k.ended_at is None]
            if not active:
                raise click.ClickException(
                    "no active checkpoint key; `neikong seal` creates and enrols one"
                )
            click.echo(f"{origin}={note_vkey(origin, active[-1].public_raw)}")
            return
        for size in list_checkpoints(ledger.directory):
            try:
                cp = read_checkpoint(ledger.directory, size)
            except (NoteError, OSError) as exc:
                rows.append({"size": size, "error": str(exc), "signature_ok": False})
                continue
            keys = signing_keys(cp.note, origin, ledger.registry)
            valid = [k for k in keys if key_valid_for_size(k, size)]
            rows.append(
                {
                    "size": size,
                    "root": _b64(cp.root),
                    "origin": cp.checkpoint.origin,
                    "key_id": valid[0].key_id.hex() if valid else None,
                    "signature_ok": bool(valid) and cp.checkpoint.origin == origin,
                    "note": cp.note.decode("utf-8"),
                }
            )
    bad = [r for r in rows if not r["signature_ok"]]
    if as_json:
        _emit_json(rows)
    else:
        for r in rows:
            if "error" in r:
                click.echo(f"{r['size']:>10}  MALFORMED  {r['error']}")
            else:
                status = "ok" if r["signature_ok"] else "BAD SIGNATURE"
                key = (r["key_id"] or "-")[:16]
                click.echo(f"{r['size']:>10}  {r['root']}  key {key}  {status}")
        click.echo(f"{len(rows)} checkpoints, {len(bad)} with problems")
    sys.exit(EXIT_TAMPER if bad else 0)


@main.group()
def tiles() -> None:
    """The C2SP tlog-tiles tree of the log (DIR/tiles)."""


@tiles.command("export", epilog=EXIT_CODES_HELP)
@ledger_option
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def tiles_export(ledger_dir: Path | None, out: Path) -> None:
    """Export `checkpoint` and `tile/...` into OUT, a static tlog-tiles directory.

    Serve OUT with any web server (or read it as files) and point a tlog-tiles client at it.
    Safe while the sealer runs: the checkpoint is read first and written last, and tiles are
    immutable. Re-exporting into the same OUT copies only new files; a file in OUT that
    differs from the ledger's stops the export (exit 1).
    """
    with _open(ledger_dir) as ledger:
        source = TileStore(ledger.directory / TILES_DIR)
        note = source.read_checkpoint()
        if note is None:
            click.echo(
                f"neikong: error: {ledger.directory} has no checkpoint yet; run "
                f"`neikong seal --once --ledger {ledger.directory}` first",
                err=True,
            )
            sys.exit(EXIT_OPERATIONAL)
        target = TileStore(out)
        copied = 0
        try:
            for directory, dirnames, filenames in os.walk(source.root / "tile"):
                dirnames.sort()
                for name in sorted(filenames):
                    if name.startswith("."):
                        continue  # temporary files of an interrupted write
                    rel = Path(directory, name).relative_to(source.root).as_posix()
                    copied += target.write(rel, source.read(rel))
            target.sync()
            target.write_checkpoint(note)
        except TileConflict as exc:
            click.echo(
                f"neikong: {out / exc.path} differs from the ledger's: OUT holds the export of "
                "another log, or the ledger's tiles changed since the last export (run "
                "`neikong verify`); export into an empty directory",
                err=True,
            )
            sys.exit(EXIT_TAMPER)
    size = note.split(b"\n")[1].decode("ascii", "replace")
    click.echo(f"exported checkpoint {size} and {copied} new files to {out}")
    click.echo(f"serve it with e.g.: python3 -m http.server --directory {out}", err=True)
