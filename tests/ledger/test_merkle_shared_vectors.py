"""Every RFC 6962 vector in ../shared/vectors/merkle/ (transparency-dev/merkle testdata).

Each JSON file is one test: `wantErr: true` MUST raise ProofError, anything else MUST verify.
The folder sits beside the project root; without it the tests skip, except under CI (env `CI`
non-empty), where a missing folder is a failure.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from ledger.merkle import ProofError, verify_consistency, verify_inclusion

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "merkle"
KINDS = ("inclusion", "consistency")


def _vector_files() -> list[Any]:
    if not VECTORS.is_dir():
        return [pytest.param(None, id="shared-vectors-absent")]
    files = sorted(p for kind in KINDS for p in (VECTORS / kind).rglob("*.json"))
    return [pytest.param(p, id=str(p.relative_to(VECTORS))) for p in files]


def _require_vectors() -> None:
    if VECTORS.is_dir():
        return
    reason = f"shared Merkle vectors not found at {VECTORS}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; the external cross-check MUST run in CI")
    pytest.skip(reason)


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _check(path: Path) -> None:
    vector = json.loads(path.read_text(encoding="utf-8"))
    proof = [_b64(h) for h in vector["proof"] or []]
    if path.relative_to(VECTORS).parts[0] == "inclusion":
        verify_inclusion(
            vector["leafIdx"],
            vector["treeSize"],
            _b64(vector["leafHash"]),
            proof,
            _b64(vector["root"]),
        )
    else:
        verify_consistency(
            vector["size1"],
            vector["size2"],
            _b64(vector["root1"]),
            _b64(vector["root2"]),
            proof,
        )


@pytest.mark.parametrize("path", _vector_files())
def test_shared_vector(path: Path | None) -> None:
    _require_vectors()
    assert path is not None
    vector = json.loads(path.read_text(encoding="utf-8"))
    if vector["wantErr"]:
        with pytest.raises(ProofError):
            _check(path)
    else:
        _check(path)


def test_shared_vectors_are_all_collected() -> None:
    _require_vectors()
    files = list(VECTORS.rglob("*.json"))
    assert files, "the shared vector folder holds no JSON files"
    assert all(p.relative_to(VECTORS).parts[0] in KINDS for p in files), (
        "a vector family this test does not know about appeared; run it too"
    )
    assert any(json.loads(p.read_text(encoding="utf-8"))["wantErr"] is False for p in files)
