"""CLI command `neikong serve`: the embedded deployment as one long-running process.

Registered on `ops.cli.main`. Follows the ledger with the projections and the detector (fired
by the wall clock), optionally feeds it from the simulated tax office, serves /metrics on
127.0.0.1, and logs what it does on stderr. SIGTERM or SIGINT ends it cleanly: a last pass,
the detector's snapshot, exit 0. Exit codes: 0 ok, 2 usage, 3 operational error (no ledger,
port taken, a simulated run already in the ledger, …).
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import click
from prometheus_client import CollectorRegistry

from alerts.rules import RULES_DIR, load_ruleset
from ledger.ledger import CONFIG_FILE, Ledger
from ops.cli import EXIT_CODES_HELP, _dir, ledger_option, main
from ops.cli_options import metrics_port_option
from ops.cli_rules import region_option, rules_dir_option
from ops.metrics import MetricsServer, serve_metrics
from ops.service import Service, ServiceSettings, SimulationSettings
from producers.simulator import SimAnomalies

__all__: list[str] = []


def _log(line: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    click.echo(f"{stamp} neikong serve: {line}", err=True)


@main.command(epilog=EXIT_CODES_HELP)
@ledger_option
@click.option(
    "--interval",
    type=click.FloatRange(0.05),
    default=1.0,
    show_default=True,
    help="Seconds between passes (feed, ingest, projections, detector).",
)
@region_option
@rules_dir_option
@click.option(
    "--simulate",
    "rate",
    type=click.FloatRange(0.0),
    default=0.0,
    show_default=True,
    help="Feed the ledger from the simulated tax office at RATE events/s (0: follow only). "
    "Creates the ledger if absent; it must not hold a simulated run yet.",
)
@click.option(
    "--anomaly-rate",
    type=click.FloatRange(0.0, 1.0),
    default=0.02,
    show_default=True,
    help="Simulated anomalies per candidate (matter, taxpayer-month, official, violation).",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Simulation seed.")
@click.option(
    "--sim-events",
    type=click.IntRange(1),
    default=100_000,
    show_default=True,
    help="Size of the simulated run (the office grows with it); then follow only.",
)
@click.option(
    "--sim-start",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    default=None,
    help="Simulated time (UTC) of the first event (default: now). A start in the past lets "
    "the wall clock find deadlines already passed.",
)
@metrics_port_option("neikong-serve")
def serve(  # noqa: PLR0917 - one parameter per click option
    ledger_dir: Path | None,
    interval: float,
    region: str | None,
    rules_dir: Path | None,
    rate: float,
    anomaly_rate: float,
    seed: int,
    sim_events: int,
    sim_start: datetime | None,
    metrics_port: int,
) -> None:
    """Run the embedded deployment in one process until SIGTERM/SIGINT.

    Each pass: the simulated office publishes the events due (with --simulate), the ingest loop
    appends them, the projections (integrity files, declarations, violations, case histories)
    catch up, the detector catches up and fires the timers due by the wall clock, and the
    business gauges are recounted. /metrics serves the ledger, ingest, detector and business
    metrics of DOMAIN.md §5.2 on 127.0.0.1. On SIGTERM/SIGINT a last pass runs and the
    detector's snapshot is written before exit.
    """
    ruleset = load_ruleset(rules_dir or RULES_DIR, region)
    directory = _dir(ledger_dir).resolve()
    simulation = None
    if rate > 0:
        start = sim_start.replace(tzinfo=UTC) if sim_start else None
        simulation = SimulationSettings(
            rate=rate,
            anomalies=SimAnomalies().with_rate(anomaly_rate),
            seed=seed,
            events=sim_events,
            start=start,
        )
    settings = ServiceSettings(interval_s=interval, simulation=simulation)
    registry = CollectorRegistry()
    server: MetricsServer | None = None
    if rate > 0 and not (directory / CONFIG_FILE).exists():
        Ledger.init(directory).close()
        _log(f"created the ledger {directory}")
    ledger = Ledger.open(directory)
    try:
        service = Service(ledger, ruleset, registry, settings, log=_log)
        try:
            if metrics_port:
                server = serve_metrics(registry, "127.0.0.1", metrics_port)
                _log(f"metrics on http://127.0.0.1:{server.port}/metrics")

            def _stop(signum: int, frame: FrameType | None) -> None:
                _log(f"{signal.Signals(signum).name}: stopping after this pass")
                service.stop()

            signal.signal(signal.SIGTERM, _stop)
            signal.signal(signal.SIGINT, _stop)
            started = time.monotonic()
            service.run()
            _log(f"ran {time.monotonic() - started:.1f} s")
        finally:
            service.close()
            if server is not None:
                server.close()
    finally:
        ledger.close()
