"""Options shared by several commands (`detect`, `ingest`, `serve`, `demo`, `simulate`).

Imports nothing of `ops.cli`, so every command module can use it whichever is imported first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ops.metrics import DEFAULT_METRICS_PORTS

__all__ = ["check_workers_option", "fresh_option", "metrics_port_option"]

F = TypeVar("F", bound=Callable[..., Any])


def metrics_port_option(job: str) -> Callable[[F], F]:
    """`--metrics-port` of a long-running command: default the job's port
    (`ops.metrics.DEFAULT_METRICS_PORTS`, scraped by ops/prometheus/prometheus.yml), 0 = off."""
    return click.option(
        "--metrics-port",
        type=click.IntRange(0, 65535),
        default=DEFAULT_METRICS_PORTS[job],
        show_default=True,
        help="Serve Prometheus metrics at http://127.0.0.1:PORT/metrics (0: off).",
    )


check_workers_option = click.option(
    "--workers",
    type=click.IntRange(0, 256),
    default=None,
    help="Signature-check worker processes (default: one per core).",
)
fresh_option = click.option("--fresh", is_flag=True, help="Delete an existing ledger in DIR first.")
