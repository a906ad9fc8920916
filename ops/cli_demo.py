"""`neikong demo`: the main job on the embedded default (or through Kafka).

Creates a ledger, enrols the simulated producer systems, appends a simulated tax-office run
(labels beside it, personal values in the PII store), runs the detector over it and builds every
register, seals a signed checkpoint, verifies everything and prints a summary.
"""

from __future__ import annotations

import base64
import shutil
import sys
from pathlib import Path
from typing import Any

import click
import orjson

from ledger.ledger import Ledger
from ledger.sealer import Sealer, ensure_checkpoint_key
from ops.cli import (
    EXIT_CODES_HELP,
    EXIT_OK,
    EXIT_TAMPER,
    _dir,
    _emit_json,
    _verify_all,
    ledger_option,
    main,
    progress_bar,
)
from ops.cli_options import check_workers_option, fresh_option

__all__ = ["demo"]


@main.command(epilog=EXIT_CODES_HELP)
@ledger_option
@click.option("--events", type=click.IntRange(1), default=20_000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@check_workers_option
@fresh_option
@click.option(
    "--kafka",
    "bootstrap",
    metavar="HOST:PORT",
    default=None,
    help="Publish through this Kafka broker (SDK outbox -> Kafka -> ingest) instead of in-process.",
)
@click.option("--json", "as_json", is_flag=True)
def demo(
    *,
    ledger_dir: Path | None,
    events: int,
    seed: int,
    workers: int | None,
    fresh: bool,
    bootstrap: str | None,
    as_json: bool,
) -> None:
    """The main job: create a ledger, enrol producers, append a synthetic run, seal it into a
    signed checkpoint, verify everything."""
    import os

    from ops.pipeline import enrol_demo_producers, run_simulation

    directory = _dir(ledger_dir)
    if fresh and (directory / "ledger.json").exists():
        shutil.rmtree(directory)
    workers = (os.cpu_count() or 1) if workers is None else workers
    with Ledger.init(directory) as ledger:
        signers = enrol_demo_producers(ledger)
        with progress_bar(events, "append") as update:
            if bootstrap is None:
                with ledger.pii_store() as pii:
                    stats = run_simulation(
                        ledger,
                        signers,
                        events=events,
                        seed=seed,
                        workers=workers,
                        progress=update,
                        pii_store=pii,
                    )
            else:
                from ops.kafka_demo import run_demo_via_kafka

                stats = run_demo_via_kafka(
                    ledger, signers, events, seed, bootstrap, workers=workers, progress=update
                )
        detected, registers = _detect_and_project(ledger, workers)
        with Sealer(ledger, ensure_checkpoint_key(ledger)) as sealer:
            checkpoint = sealer.seal_once()
        nstreams = len(ledger.store.streams("matter/"))
        root = bytes.fromhex(ledger.config.root_key_id)
        report = _verify_all(ledger, root, workers=max(1, workers))
    summary = {
        "ledger": str(directory),
        "events_published": stats.published,
        "outcomes": stats.outcomes,
        "matter_streams": nstreams,
        "append_seconds": round(stats.seconds, 2),
        "append_per_s": round(stats.published / stats.seconds) if stats.seconds else None,
        "checkpoint": {
            "size": checkpoint.size,
            "root": base64.b64encode(checkpoint.root).decode(),
        }
        if checkpoint
        else None,
        "verify": "intact" if report.intact else "tamper_evidence",
        "verify_findings": report.finding_counts,
        "labels": len(stats.labels),
        "detector": detected,
        "registers": registers,
    }
    if as_json:
        _emit_json(summary)
    else:
        click.echo(f"ledger        {directory}")
        click.echo(f"events        {stats.published} published, outcomes {stats.outcomes}")
        click.echo(f"streams       {nstreams} matters")
        click.echo(
            f"rate          {summary['append_per_s']} events/s "
            f"(sign + append, {stats.seconds:.1f} s)"
        )
        if checkpoint:
            root_b64 = base64.b64encode(checkpoint.root).decode()
            click.echo(
                f"checkpoint    {checkpoint.size} entries, root {root_b64} "
                f"(signed; tiles in {directory / 'tiles'})"
            )
        levels = ", ".join(f"{n} {lv}" for lv, n in detected["warnings_by_level"].items())
        click.echo(
            f"detector      {detected['rules']} rules, {detected['warnings']} warnings "
            f"({levels or 'none'}), cards for {detected['officials_with_cards']} officials; "
            f"{len(stats.labels)} injected anomalies labelled in {directory / 'labels.jsonl'}"
        )
        click.echo(
            "registers     "
            + ", ".join(f"{rows} {name.replace('_', ' ')}" for name, rows in registers.items())
            + " (neikong case|official|declarations|violations|warnings …)"
        )
        click.echo(
            f"verification  {'INTACT' if report.intact else 'TAMPER EVIDENCE'} "
            f"({report.events} events, {report.streams} streams)"
        )
    sys.exit(EXIT_OK if report.intact else EXIT_TAMPER)


def _detect_and_project(ledger: Ledger, workers: int) -> tuple[dict[str, Any], dict[str, int]]:
    """The detector over the whole run (warnings appended, signed), then every projection."""
    from collections import Counter

    from alerts.detector import Detector
    from alerts.rules import load_ruleset
    from ledger.log_reader import LogReader
    from ledger.workdays import parse_ts
    from projections.base import decode_record
    from projections.parallel import rebuild_parallel
    from projections.read_model import ReadModel, read_model_url
    from projections.registry import all_projections

    ruleset = load_ruleset()
    detector = Detector(ledger, ruleset)
    reader = LogReader(ledger.store.config)
    try:
        before = ledger.store.max_position()
        # The detector's clock is the end of the simulated run (its last event), not today:
        # the demo shows the office as it stood then, with matters still in flight not overdue.
        # (`neikong detect` on this ledger later judges them by the wall clock.)
        last = decode_record(before, next(iter(reader.by_position(before, before + 1)))[3])
        with progress_bar(before, "detect") as update:
            run = detector.run_once(int(parse_ts(last.occurred_at).timestamp()))
            update(before)
    finally:
        detector.close()
        reader.close()
    url = read_model_url(ledger.directory, ledger.config.store_url)
    names = [p.name for p in all_projections()]
    with progress_bar(ledger.store.max_position(), "project") as update:
        rebuild_parallel(ledger.store.config, url, names, workers=min(2, workers), progress=update)
    with ReadModel(url) as model:
        registers = {name: model.count(name) for name in names}
        warnings = [orjson.loads(raw) for _, raw in model.query("warnings")]
        cards = model.count("cards")
    levels = Counter(str(doc.get("level")) for doc in warnings)
    order = ("blue", "yellow", "orange", "red")
    detected = {
        "rules": len(ruleset.rules),
        "ruleset_hash": ruleset.ruleset_hash,
        "events_appended": run.appended,
        "warnings": len(warnings),
        "warnings_by_level": {lv: levels[lv] for lv in order if levels[lv]},
        "officials_with_cards": cards,
    }
    return detected, registers
