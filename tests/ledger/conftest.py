"""Fixtures for the ledger tests.

`verify_ledger` and the appender's worker pool use the `forkserver` start method; preloading
the verification modules in the fork server makes each pool start in ~0.1 s instead of
re-importing the ledger (and its schema catalogue) per worker. It changes nothing but speed,
and has no effect if a fork server is already running.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.keys import Signer
from ledger.ledger import Ledger
from tests.ledger._support import FP_PREFIX, FP_SCOPE, FP_SYSTEM, Feed

multiprocessing.get_context("forkserver").set_forkserver_preload(
    ["ledger.verify", "ledger.precheck", "ledger.appender"]
)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A fresh ledger (genesis only)."""
    with Ledger.init(tmp_path / "ledger") as fresh:
        yield fresh


@pytest.fixture
def fp_signer(ledger: Ledger) -> Signer:
    """An enrolled producer key for 4403-fapiao (streams matter/4403-fp/…, types matter.*)."""
    ledger.enrol_key("fp", "producer", FP_SCOPE)
    return Signer.from_file(ledger.key_path("fp"))


@pytest.fixture
def feed(fp_signer: Signer) -> Feed:
    return Feed(FP_SYSTEM, fp_signer, FP_PREFIX)
