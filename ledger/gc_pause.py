"""Pausing Python's cyclic garbage collector around allocation-heavy hot loops.

The append pipeline, the projection catch-up and the detector allocate millions of small
tuples, dicts and lists per minute while keeping large caches alive (stream heads, documents,
windows); the collector's generation scans over that heap cost a sizeable share of their CPU.
What they allocate are trees without reference cycles, so reference counting frees it; the
collector MUST be restored to its earlier state when the block ends (normally or not).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["gc_paused"]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block; re-enable it after if it was enabled."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
