"""`neikong export`, `neikong verify-bundle`, `neikong replay`: case evidence for third parties.

Registered on `ops.cli.main` when imported (ops/cli.py imports it at its end). Exit codes as
for every command: 0 ok, 1 tamper evidence (or a bundle that fails verification), 2 usage,
3 operational error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ledger import verify_bundle as standalone
from ledger.bundle import CaseReplay, export_bundle, replay_case, trust_text, write_bundle
from ledger.errors import VerificationError
from ops.cli import EXIT_CODES_HELP, EXIT_OK, EXIT_TAMPER, _emit_json, _open, ledger_option, main

__all__: list[str] = []


@main.command(epilog=EXIT_CODES_HELP)
@ledger_option
@click.option("--case", "stream", required=True, help="The case stream, e.g. matter/4403-fp/….")
@click.option(
    "--checkpoint",
    "size",
    type=click.IntRange(1),
    default=None,
    help="Checkpoint size to prove against (default: the latest cosigned one).",
)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Bundle file."
)
@click.option(
    "--trust-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write a trust file (root key id, witness vkeys) to hand over out of band.",
)
def export(
    ledger_dir: Path | None, stream: str, size: int | None, out: Path, trust_out: Path | None
) -> None:
    """Write the evidence bundle of one case: one JSON file that `verify_bundle.py` checks offline.

    It holds the case's signed events as the log stood at the checkpoint, one multi-leaf
    inclusion proof, the checkpoint with its witness cosignatures, and the key-registry events
    the signatures depend on. The bundle is verified before it is written (exit 1 if the ledger
    no longer agrees with its checkpoints).
    """
    with _open(ledger_dir) as ledger:
        try:
            bundle = export_bundle(ledger, stream, size)
        except VerificationError as exc:
            click.echo(f"neikong: TAMPER EVIDENCE: {exc}", err=True)
            sys.exit(EXIT_TAMPER)
        written = write_bundle(bundle, out)
        info = ledger.store.stream_info(stream)
        later = (info.length if info else 0) - len(bundle["events"])
        if trust_out is not None:
            trust_out.write_text(trust_text(ledger), encoding="utf-8")
    events, tree = len(bundle["events"]), bundle["inclusion"]["tree_size"]
    if later > 0:
        click.echo(
            f"neikong: note: {later} later events of {stream} are not in checkpoint {tree} "
            "(the bundle shows the case as it stood then; cosign a newer checkpoint to include "
            "them)",
            err=True,
        )
    if not bundle["ledger_keys"]["witnesses"]:
        click.echo(
            f"neikong: warning: checkpoint {tree} is not cosigned by a configured witness; "
            "the bundle will fail the cosignatures check (run `neikong cosign`)",
            err=True,
        )
    click.echo(f"wrote {out} ({written} bytes): {events} events of {stream}, checkpoint {tree}")
    click.echo(f"verify anywhere with: python3 verify_bundle.py {out} --trust KEYS", err=True)


@main.command("verify-bundle", epilog=EXIT_CODES_HELP)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--trust",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Trust file: 'root <key id>', 'witness <vkey>' lines (see ledger/verify_bundle.py).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def verify_bundle_command(file: Path, trust: Path | None, as_json: bool) -> None:
    """Verify an evidence bundle offline, exactly as the standalone ledger/verify_bundle.py does.

    Prints a verdict per check. Without --trust the keys come from the bundle itself and the
    verdict says so.
    """
    argv = [str(file)]
    if trust is not None:
        argv += ["--trust", str(trust)]
    if as_json:
        argv.append("--json")
    sys.exit(standalone.main(argv))


@main.command(epilog=EXIT_CODES_HELP)
@ledger_option
@click.option("--case", "stream", required=True, help="The case stream.")
@click.option("--at", "size", type=click.IntRange(1), required=True, help="A checkpoint size.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def replay(ledger_dir: Path | None, stream: str, size: int, as_json: bool) -> None:
    """Show a case exactly as the log stood at checkpoint SIZE (later events are invisible),
    with each event's inclusion status under that checkpoint's root.

    Exit code 1 if the checkpoint is not validly signed or an event is not included.
    """
    with _open(ledger_dir) as ledger:
        case = replay_case(ledger, stream, size)
    if as_json:
        _emit_json(case.to_json())
    else:
        _print_replay(case)
    sys.exit(EXIT_OK if case.all_included else EXIT_TAMPER)


def _print_replay(case: CaseReplay) -> None:
    signed = "signed" if case.checkpoint_signed else "NOT VALIDLY SIGNED"
    witnesses = ", ".join(case.cosigned_by) or "no witness"
    click.echo(f"{case.stream} at checkpoint {case.size} ({signed}; cosigned by {witnesses})")
    click.echo(f"root {case.root}")
    for e in case.events:
        mark = "included" if e.included else "NOT INCLUDED"
        click.echo(
            f"{e.stream_seq:>4}  pos {e.position:<10} {e.occurred_at}  {e.type:<28} "
            f"{e.official or '-':<12} {mark}"
        )
        if not e.included:
            click.echo(f"      {e.detail}")
    state = (
        f"closed by {case.closure['type']} (final_seq {case.closure['final_seq']})"
        if case.closure
        else "open"
    )
    click.echo(f"{len(case.events)} events, {state}; {case.later_events} later events not shown")
