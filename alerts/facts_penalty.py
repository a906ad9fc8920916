"""Named facts for the rules of grades 3–4 and the cross-grade rules (R13–R25).

A fact is a documented pure function of one event view and the rule's parameters (every
threshold comes from `params`, never a literal); rules name facts in `{fact: NAME}`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from alerts.view import View

__all__ = ["PENALTY_FACTS"]

PENALTY_FACTS: dict[str, Callable[[View, Mapping[str, Any]], bool]] = {}
