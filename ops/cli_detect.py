"""CLI command of the detector service: `neikong detect`.

Registered on `ops.cli.main`. Follows the ledger from the snapshot in DIR/detector.db, appends
warnings signed by the detector key, and snapshots after every pass. The clock is the wall
clock. Exit codes: 0 ok, 2 usage, 3 operational error (no ledger, unreadable snapshot, …).
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from types import FrameType

import click

from alerts.detector import Detector, DetectorRun
from alerts.rules import RULES_DIR, load_ruleset
from alerts.state import open_snapshots
from ops.cli import EXIT_CODES_HELP, _open, ledger_option, main

__all__: list[str] = []


def _line(run: DetectorRun, elapsed: float) -> str:
    return (
        f"position {run.position}: {run.events} events, {run.emitted} emitted,"
        f" {run.appended} appended ({elapsed:.2f} s)"
    )


@main.command(epilog=EXIT_CODES_HELP)
@ledger_option
@click.option("--once", is_flag=True, help="Catch up, fire due timers, snapshot, and exit.")
@click.option(
    "--interval",
    type=click.FloatRange(0.05),
    default=5.0,
    show_default=True,
    help="Seconds between passes.",
)
@click.option("--region", help="Apply alerts/rules/overrides/<region>.yaml.")
@click.option(
    "--rules",
    "rules_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Rules directory (default: the packaged alerts/rules).",
)
@click.option("--reset", is_flag=True, help="Drop the snapshot and replay the whole log.")
def detect(  # noqa: PLR0917 - one parameter per click option
    ledger_dir: Path | None,
    once: bool,
    interval: float,
    region: str | None,
    rules_dir: Path | None,
    reset: bool,
) -> None:
    """Run the streaming detector: rules over the ledger, warnings appended back as events."""
    ruleset = load_ruleset(rules_dir or RULES_DIR, region)
    with _open(ledger_dir) as ledger:
        if reset:
            snapshots = open_snapshots(ledger.config.store_url, ledger.directory)
            snapshots.reset()
            snapshots.close()
        detector = Detector(ledger, ruleset)
        try:
            click.echo(
                f"detecting on {ledger.directory} with rule set {ruleset.ruleset_hash[:12]}…"
                f" ({len(ruleset.rules)} rules) from position {detector.position + 1}",
                err=True,
            )
            stop = threading.Event()
            if not once:

                def _stop(signum: int, frame: FrameType | None) -> None:
                    stop.set()

                signal.signal(signal.SIGTERM, _stop)
                signal.signal(signal.SIGINT, _stop)
            while True:
                started = time.monotonic()
                run = detector.run_once(int(time.time()))
                if once or run.events or run.emitted:
                    click.echo(_line(run, time.monotonic() - started))
                if once or stop.wait(interval):
                    return
        finally:
            detector.close()
