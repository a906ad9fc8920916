"""CLI command `simulate`: append a simulated tax-office run, with ground-truth labels.

Registered on `ops.cli.main` (this module is imported at the end of ops/cli.py). Exit codes as
for every command: 0 ok, 2 usage, 3 operational error.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click

from ledger.errors import NeikongError
from ledger.ledger import CONFIG_FILE, Ledger
from ops.cli import EXIT_CODES_HELP, _dir, _emit_json, ledger_option, main, progress_bar
from ops.cli_options import check_workers_option, fresh_option
from producers.simulator import SYSTEMS, SimAnomalies

__all__: list[str] = []


def _open_or_create(directory: Path, fresh: bool) -> Ledger:
    if fresh and (directory / CONFIG_FILE).exists():
        shutil.rmtree(directory)
    if (directory / CONFIG_FILE).exists():
        ledger = Ledger.open(directory)
        heads = ledger.store.producer_heads()
        if any(heads.get(system) for system in SYSTEMS):
            ledger.close()
            raise NeikongError(
                f"{directory} already holds a simulated run (its streams would collide); "
                "use --fresh or another --ledger"
            )
        return ledger
    return Ledger.init(directory)


@main.command(epilog=EXIT_CODES_HELP)
@ledger_option
@click.option("--events", type=click.IntRange(1), default=100_000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--anomaly-rate",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Total anomaly rate per candidate (default 0.02, or the file's `rate`).",
)
@click.option(
    "--anomalies",
    "anomalies_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML file: {rate: 0.02, kinds: {approval_skipped: 0.01, ...}}.",
)
@check_workers_option
@fresh_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def simulate(  # noqa: PLR0917 - click passes options as arguments
    ledger_dir: Path | None,
    events: int,
    seed: int,
    anomaly_rate: float | None,
    anomalies_file: Path | None,
    workers: int | None,
    fresh: bool,
    as_json: bool,
) -> None:
    """Append a simulated tax-office run (matters, taxpayer figures, personnel, declarations,
    complaints, violations) with injected anomalies; write their ground-truth labels to
    DIR/labels.jsonl. The ledger is created if absent."""
    from ops.pipeline import enrol_demo_producers, run_simulation

    anomalies = SimAnomalies.from_yaml(anomalies_file) if anomalies_file else SimAnomalies()
    if anomaly_rate is not None:
        anomalies = anomalies.with_rate(anomaly_rate)
    directory = _dir(ledger_dir).resolve()
    workers = (os.cpu_count() or 1) if workers is None else workers
    with _open_or_create(directory, fresh) as ledger:
        signers = enrol_demo_producers(ledger)
        with ledger.pii_store() as pii, progress_bar(events, "simulate") as update:
            stats = run_simulation(
                ledger,
                signers,
                events=events,
                seed=seed,
                workers=workers,
                progress=update,
                anomalies=anomalies,
                pii_store=pii,
            )
    by_kind: dict[str, int] = {}
    for label in stats.labels:
        by_kind[label.kind] = by_kind.get(label.kind, 0) + 1
    summary = {
        "ledger": str(directory),
        "events": stats.published,
        "outcomes": stats.outcomes,
        "events_by_type": dict(sorted(stats.by_type.items())),
        "anomalies_by_kind": dict(sorted(by_kind.items())),
        "labels": str(directory / "labels.jsonl"),
        "seconds": round(stats.seconds, 2),
        "events_per_s": round(stats.published / stats.seconds) if stats.seconds else None,
    }
    if as_json:
        _emit_json(summary)
        return
    click.echo(f"ledger     {directory}")
    click.echo(
        f"events     {stats.published} in {stats.seconds:.1f} s "
        f"({summary['events_per_s']} events/s), outcomes {stats.outcomes}"
    )
    click.echo("by type")
    for name, count in summary["events_by_type"].items():  # type: ignore[attr-defined]
        click.echo(f"  {name:<42} {count:>9}")
    click.echo(f"anomalies  {len(stats.labels)} labelled in {summary['labels']}")
    for name, count in by_kind.items():
        click.echo(f"  {name:<42} {count:>9}")
