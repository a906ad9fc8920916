"""The registered projections: what `neikong rebuild`, the runner and the contract suite use.

The register projections (integrity files, declarations, violations, case histories, unit
statistics) are listed here; tests/contracts/test_projection_contract.py runs every one of them
through the rebuild == incremental, crash-resume, `--at` and backend-equality properties.
"""

from __future__ import annotations

from projections.base import Projection
from projections.case_history import CaseHistory
from projections.declarations import Declarations
from projections.integrity_file import IntegrityFile
from projections.unit_stats import UnitStats
from projections.violations import Violations
from projections.warnings import Cards, Warnings

__all__ = ["all_projections"]


def all_projections() -> list[Projection]:
    """A fresh instance of every registered projection, in a stable order."""
    return [
        IntegrityFile(),
        Declarations(),
        Violations(),
        CaseHistory(),
        UnitStats(),
        Warnings(),
        Cards(),
    ]
