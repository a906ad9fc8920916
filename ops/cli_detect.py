"""CLI command of the detector service: `neikong detect`.

Registered on `ops.cli.main`. Follows the ledger from the snapshot in DIR/detector.db, appends
warnings signed by the detector key, and snapshots after every pass. The clock is the wall
clock. Serves the detector metrics (DOMAIN.md §5.2) on 127.0.0.1:`--metrics-port` (default
the `neikong-detector` port of `ops.metrics.DEFAULT_METRICS_PORTS`; 0 = off; `--once` never
serves). Exit codes: 0 ok, 2 usage, 3 operational error (no ledger, unreadable snapshot, port
taken, …).
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from types import FrameType

import click
from prometheus_client import CollectorRegistry

from alerts.detector import Detector, DetectorRun
from alerts.rules import RULES_DIR, load_ruleset
from alerts.state import open_snapshots
from ops.cli import EXIT_CODES_HELP, _open, ledger_option, main
from ops.cli_options import metrics_port_option
from ops.cli_rules import region_option, rules_dir_option
from ops.detector_metrics import DetectorMetrics
from ops.metrics import MetricsServer, NeikongMetrics, serve_metrics

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
@region_option
@rules_dir_option
@click.option("--reset", is_flag=True, help="Drop the snapshot and replay the whole log.")
@metrics_port_option("neikong-detector")
def detect(  # noqa: PLR0917 - one parameter per click option
    ledger_dir: Path | None,
    once: bool,
    interval: float,
    region: str | None,
    rules_dir: Path | None,
    reset: bool,
    metrics_port: int,
) -> None:
    """Run the streaming detector: rules over the ledger, warnings appended back as events."""
    ruleset = load_ruleset(rules_dir or RULES_DIR, region)
    with _open(ledger_dir) as ledger:
        if reset:
            snapshots = open_snapshots(ledger.config.store_url, ledger.directory)
            snapshots.reset()
            snapshots.close()
        started = time.monotonic()
        detector = Detector(ledger, ruleset)
        registry = CollectorRegistry()
        metrics = DetectorMetrics(detector, NeikongMetrics(registry))
        server: MetricsServer | None = None
        try:
            if metrics_port and not once:
                server = serve_metrics(registry, "127.0.0.1", metrics_port)
                click.echo(f"metrics on http://127.0.0.1:{server.port}/metrics", err=True)
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
            first = True
            while True:
                now = int(time.time())
                metrics.before_pass(now)
                run = detector.run_once(now)
                metrics.after_pass()
                if first:
                    metrics.restored(time.monotonic() - started)
                    first = False
                if once or run.events or run.emitted:
                    click.echo(_line(run, time.monotonic() - started))
                if once or stop.wait(interval):
                    return
                started = time.monotonic()
        finally:
            if server is not None:
                server.close()
            detector.close()
