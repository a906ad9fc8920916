"""The `neikong` command line.

Exit codes (every command):
  0  success; for `verify`: the ledger is intact
  1  tamper evidence found (`verify`)
  2  usage error (bad option or argument)
  3  operational error (no ledger, database unreachable, unreadable key file, …)
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from ledger.cosign_verify import verify_cosignatures
from ledger.errors import NeikongError
from ledger.ledger import Ledger
from ledger.log_verify import verify_log
from ledger.registry import KeyScope
from ledger.verify import VerifyReport, verify_ledger
from ops.config import default_ledger_dir

EXIT_OK, EXIT_TAMPER, EXIT_USAGE, EXIT_OPERATIONAL = 0, 1, 2, 3

EXIT_CODES_HELP = (
    "\b\nExit codes: 0 success (verify: intact), 1 tamper evidence, 2 usage error, "
    "3 operational error."
)

ledger_option = click.option(
    "--ledger",
    "ledger_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Ledger directory (database, keys, exports). Default: $NEIKONG_LEDGER or ./neikong-data.",
)


def _dir(ledger_dir: Path | None) -> Path:
    return ledger_dir or default_ledger_dir()


@contextmanager
def _open(ledger_dir: Path | None) -> Iterator[Ledger]:
    ledger = Ledger.open(_dir(ledger_dir))
    try:
        yield ledger
    finally:
        ledger.close()


def _emit_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True))


@contextmanager
def progress_bar(total: int, desc: str) -> Iterator[Callable[[int], None]]:
    """A tqdm bar on a terminal (stderr); silent otherwise."""
    bar = tqdm(
        total=total,
        desc=desc,
        unit="ev",
        disable=not sys.stderr.isatty(),
        file=sys.stderr,
        dynamic_ncols=True,
    )

    def update(n: int) -> None:
        bar.update(n)

    try:
        yield update
    finally:
        bar.close()


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NeikongError as exc:
            click.echo(f"neikong: error: {exc}", err=True)
            ctx.exit(EXIT_OPERATIONAL)


@click.group(cls=_Group, epilog=EXIT_CODES_HELP)
@click.version_option(package_name="neikong")
def main() -> None:
    """neikong (内控): tamper-evident audit ledger for power-operation monitoring."""


@main.command(epilog=EXIT_CODES_HELP)
@ledger_option
@click.option(
    "--store",
    help="Event store URL: sqlite:///PATH (default: DIR/ledger.db) or "
    "postgresql://USER:PASSWORD@HOST:PORT/DB.",
)
@click.option("--origin", help="Log origin name (default: neikong/<dir name>).")
@click.option(
    "--max-record-bytes",
    type=click.IntRange(1024, 65535),
    default=65535,
    show_default=True,
    help="Size limit of one record (at most 64 KiB - 1: a tlog-tiles entry).",
)
def init(
    ledger_dir: Path | None, store: str | None, origin: str | None, max_record_bytes: int
) -> None:
    """Create a ledger and its root (admin) key."""
    with Ledger.init(
        _dir(ledger_dir), store_url=store, origin=origin, max_record_bytes=max_record_bytes
    ) as ledger:
        click.echo(f"created ledger {ledger.directory}")
        click.echo(
            f"root key id {ledger.config.root_key_id}  "
            f"(file {ledger.directory / 'keys/root.key'}, mode 0600)"
        )
        click.echo(
            "give the root key id to inspectors out of band: `neikong verify "
            "--root-key-id` checks against it"
        )


# -- keys -------------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Enrol, rotate, revoke and list keys (admin-signed registry events)."""


@keys.command("list")
@ledger_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def keys_list(ledger_dir: Path | None, as_json: bool) -> None:
    """List every key with purpose, scope and state."""
    with _open(ledger_dir) as ledger:
        entries = [e.to_json() for e in ledger.registry.keys.values()]
    if as_json:
        _emit_json(entries)
        return
    for e in entries:
        scope = e["scope"]
        click.echo(
            f"{e['key_id'][:16]}…  {e['purpose']:<10} {e['state']:<8} "
            f"system={scope['system']} streams={','.join(scope['stream_prefixes'])} "
            f"types={','.join(scope['event_types'])} enrolled@{e['enrolled_at']}"
            + (f" ended@{e['ended_at']}" if e["ended_at"] else "")
        )


@keys.command("enrol", epilog=EXIT_CODES_HELP)
@ledger_option
@click.argument("name")
@click.option(
    "--purpose",
    type=click.Choice(["producer", "admin", "checkpoint", "detector", "witness", "service"]),
    default="producer",
    show_default=True,
)
@click.option("--system", required=True, help="Producer system the key signs for.")
@click.option(
    "--stream-prefix",
    "prefixes",
    multiple=True,
    required=True,
    help="Allowed stream prefix (repeatable).",
)
@click.option(
    "--event-type",
    "types",
    multiple=True,
    required=True,
    help="Allowed event type or glob such as 'matter.*' (repeatable).",
)
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Enrol this raw/base64 public key instead of generating a key file.",
)
def keys_enrol(
    ledger_dir: Path | None,
    name: str,
    purpose: str,
    system: str,
    prefixes: tuple[str, ...],
    types: tuple[str, ...],
    public_key: Path | None,
) -> None:
    """Enrol a new key NAME (written to DIR/keys/NAME.key, mode 0600)."""

    raw = None
    if public_key is not None:
        text = public_key.read_bytes().strip()
        raw = text if len(text) == 32 else base64.b64decode(text, validate=True)
    with _open(ledger_dir) as ledger:
        key_id = ledger.enrol_key(name, purpose, KeyScope(system, prefixes, types), public_raw=raw)
        click.echo(
            f"enrolled {key_id.hex()}" + ("" if raw else f" (private key {ledger.key_path(name)})")
        )


@keys.command("rotate")
@ledger_option
@click.argument("key_id")
@click.option("--name", required=True, help="Name of the new key file.")
def keys_rotate(ledger_dir: Path | None, key_id: str, name: str) -> None:
    """Replace KEY_ID by a new key with the same purpose and scope."""
    with _open(ledger_dir) as ledger:
        new = ledger.rotate_key(_resolve_key(ledger, key_id), name)
        click.echo(f"rotated {key_id[:16]}… -> {new.hex()} ({ledger.key_path(name)})")


@keys.command("revoke")
@ledger_option
@click.argument("key_id")
@click.option(
    "--reason", type=click.Choice(["compromised", "retired", "superseded", "other"]), required=True
)
@click.option("--note", help="Free text for the record.")
def keys_revoke(ledger_dir: Path | None, key_id: str, reason: str, note: str | None) -> None:
    """Revoke KEY_ID: events entering after this position are rejected."""
    with _open(ledger_dir) as ledger:
        ledger.revoke_key(_resolve_key(ledger, key_id), reason, note)
        click.echo(f"revoked {key_id[:16]}…")


def _resolve_key(ledger: Ledger, prefix: str) -> bytes:
    matches = [k for k in ledger.registry.keys if k.hex().startswith(prefix.lower())]
    if len(matches) != 1:
        raise click.BadParameter(f"{prefix!r} matches {len(matches)} keys; give more digits")
    return matches[0]


# -- inspection -------------------------------------------------------------------------------


@main.command()
@ledger_option
@click.option("--prefix", default="", help="Only streams whose name starts with this.")
@click.option("--json", "as_json", is_flag=True)
def streams(ledger_dir: Path | None, prefix: str, as_json: bool) -> None:
    """List streams with their length and state (open, concluded, waiting for a gap)."""
    with _open(ledger_dir) as ledger:
        infos = ledger.store.streams(prefix)
        parked = {p.stream for p in ledger.store.parked()}
    rows = [
        {
            "stream": i.name,
            "length": i.length,
            "state": "concluded" if i.closed else ("gap" if i.name in parked else "open"),
            "last_position": i.last_position,
        }
        for i in infos
    ]
    if as_json:
        _emit_json(rows)
        return
    click.echo(f"{'stream':<40} {'length':>6}  state")
    for r in rows:
        click.echo(f"{r['stream']:<40} {r['length']:>6}  {r['state']}")
    click.echo(f"{len(rows)} streams")


@main.command("dead-letters")
@ledger_option
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def dead_letters(ledger_dir: Path | None, limit: int, as_json: bool) -> None:
    """Rejected input with its reason code (the original bytes are kept)."""
    with _open(ledger_dir) as ledger:
        rows = ledger.store.dead_letters(limit)
        counts = ledger.store.dead_letter_counts()
    if as_json:
        for r in rows:
            r["record"] = base64.b64encode(r["record"]).decode()
        _emit_json({"counts": counts, "dead_letters": rows})
        return
    for r in rows:
        click.echo(f"#{r['id']} {r['reason']:<20} {r['detail'][:80]}")
    click.echo(f"by reason: {json.dumps(counts, sort_keys=True)}")


@main.command(epilog=EXIT_CODES_HELP)
@ledger_option
@click.option("--stream", help="Check this stream only.")
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes (default: one per core).",
)
@click.option(
    "--root-key-id",
    help="Trusted root key id (hex), obtained out of band. Default: the one in DIR/ledger.json.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report.")
def verify(
    ledger_dir: Path | None,
    stream: str | None,
    workers: int | None,
    root_key_id: str | None,
    as_json: bool,
) -> None:
    """Re-check every signature, key validity at position, stream chain and producer sequence.

    Reads only the stored events. Reports each finding with its kind, position, stream and
    event id.
    """
    with _open(ledger_dir) as ledger:
        root = bytes.fromhex(root_key_id or ledger.config.root_key_id)
        report = _verify_all(ledger, root, workers=workers, stream=stream)
    _print_report(report, as_json)
    sys.exit(EXIT_OK if report.intact else EXIT_TAMPER)


def _verify_all(
    ledger: Ledger, root: bytes, *, workers: int | None, stream: str | None = None
) -> VerifyReport:
    """Events (pool), then the Merkle log and cosignatures (a thread), with a progress bar."""
    total = ledger.store.max_position() * (1 if stream else 2)
    extra = (
        []
        if stream
        else [
            lambda registry: verify_log(
                ledger.store, registry, ledger.config.origin, ledger.directory
            ),
            lambda registry: verify_cosignatures(ledger.directory),
        ]
    )
    with progress_bar(total, "verify") as update:
        return verify_ledger(
            ledger.store.config,
            root,
            workers=workers,
            stream=stream,
            progress=update,
            extra_checks=extra,
        )


def _print_report(report: VerifyReport, as_json: bool) -> None:
    if as_json:
        _emit_json(report.to_json())
        return
    for w in report.warnings:
        click.echo(f"warning: {w.kind.value:<24} {w.detail}")
    for f in report.findings:
        click.echo(
            f"{f.kind.value:<24} position={f.position} stream={f.stream} "
            f"event={f.event_id} {f.detail}"
        )
    verdict = "INTACT" if report.intact else "TAMPER EVIDENCE"
    click.echo(
        f"{verdict}: {report.events} events, {report.streams} streams, "
        f"{sum(report.finding_counts.values())} findings {report.finding_counts or ''}"
    )


# -- main job and sizing ----------------------------------------------------------------------


@main.command(epilog=EXIT_CODES_HELP)
@click.option("--events", type=click.IntRange(1000), default=200_000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 256), default=None)
@click.option(
    "--dir",
    "work_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Scratch directory (default: a temporary one).",
)
@click.option(
    "--kafka", metavar="HOST:PORT", default=None, help="Also measure through this Kafka broker."
)
@click.option("--json", "as_json", is_flag=True, help="One flat JSON object.")
@click.option(
    "--only",
    type=click.Choice(["detector"]),
    default=None,
    help="Run one part alone: `detector` (speed, latency, precision/recall on a labelled "
    "simulated run of min(--events, 50000) events).",
)
def bench(
    events: int,
    workers: int | None,
    work_dir: Path | None,
    kafka: str | None,
    as_json: bool,
    only: str | None,
) -> None:
    """Measure baselines and the ledger's ingest and verify rates on this machine.

    With --kafka, also raw kafka-python produce+consume, the SDK's emit rate with its durable
    outbox, and producer -> Kafka -> ingest -> ledger end to end (against the in-process ingest
    rate of the same run). The detector's figures (engine rate against the raw log read,
    precision and recall per rule, append-to-warning and timer latency) are part of every run,
    or alone with --only detector.
    """
    from ops.bench import DETECTOR_EVENTS, run_bench

    def log(message: str) -> None:
        click.echo(message, err=True)

    if only == "detector":
        import shutil
        import tempfile

        from ops.detector_bench import run_detector_bench

        scratch = Path(tempfile.mkdtemp(prefix="neikong-bench-", dir=work_dir))
        try:
            figures = run_detector_bench(
                scratch, events=min(events, DETECTOR_EVENTS), workers=workers or 1, log=log
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    else:
        figures = run_bench(events=events, workers=workers, work_dir=work_dir, log=log)
    if kafka is not None and only is None:
        from ops.kafka_bench import run_kafka_bench

        figures.update(
            run_kafka_bench(
                events=min(events, 20_000),
                bootstrap=kafka,
                workers=workers,
                work_dir=work_dir,
                log=log,
                inprocess_ingest_per_s=figures["ingest_per_s"],
            )
        )
    if as_json:
        click.echo(json.dumps(figures, sort_keys=True))
    else:
        quality = figures.pop("detector_quality", None)
        for key, value in figures.items():
            click.echo(f"{key:<28} {value}")
        if quality:
            from ops.detector_bench import quality_lines

            for line in quality_lines(quality):
                click.echo(line)


# Command groups that live in their own modules register themselves on `main`.
from ops import cli_demo as _cli_demo  # noqa: E402, F401
from ops import cli_detect as _cli_detect  # noqa: E402, F401
from ops import cli_evidence as _cli_evidence  # noqa: E402, F401
from ops import cli_inspect as _cli_inspect  # noqa: E402, F401
from ops import cli_kafka as _cli_kafka  # noqa: E402, F401
from ops import cli_log as _cli_log  # noqa: E402, F401
from ops import cli_pii as _cli_pii  # noqa: E402, F401
from ops import cli_projections as _cli_projections  # noqa: E402, F401
from ops import cli_registers as _cli_registers  # noqa: E402, F401
from ops import cli_rules as _cli_rules  # noqa: E402, F401
from ops import cli_serve as _cli_serve  # noqa: E402, F401
from ops import cli_simulate as _cli_simulate  # noqa: E402, F401
from ops import cli_warnings as _cli_warnings  # noqa: E402, F401
from ops import cli_witness as _cli_witness  # noqa: E402, F401

__all__ = ["main", "progress_bar"]


if __name__ == "__main__":  # `python -m ops.cli`: run the imported module's group, which
    from ops.cli import main as _registered  # carries the commands of ops/cli_*.py

    _registered()
