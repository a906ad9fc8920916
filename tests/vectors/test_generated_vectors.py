"""neikong's own Merkle vectors (tests/vectors/merkle/, made by generate_merkle.py).

1. Every committed vector passes or fails as its `wantErr` says.
2. Regenerating them yields byte-identical files: a change to the kernel or the generator that
   alters any vector MUST come with the regenerated files
   (`.venv/bin/python -m tests.vectors.generate_merkle`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger.merkle import ProofError
from tests.vectors import generate_merkle

COMMITTED = generate_merkle.OUT_DIR
FAMILIES = ("inclusion", "consistency", "multi-inclusion")
FILES = sorted(COMMITTED.rglob("*.json"))


def test_committed_vectors_exist() -> None:
    assert {p.relative_to(COMMITTED).parts[0] for p in FILES} == set(FAMILIES)
    for family in FAMILIES:
        assert any(
            json.loads(p.read_text(encoding="utf-8"))["wantErr"] is False
            for p in (COMMITTED / family).rglob("*.json")
        )


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(COMMITTED)) for p in FILES])
def test_generated_vector(path: Path) -> None:
    family = path.relative_to(COMMITTED).parts[0]
    vector = json.loads(path.read_text(encoding="utf-8"))
    if vector["wantErr"]:
        with pytest.raises(ProofError):
            generate_merkle.check(family, vector)
    else:
        generate_merkle.check(family, vector)


def test_regenerating_changes_nothing(tmp_path: Path) -> None:
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in generate_merkle.generate(tmp_path)}
    committed = {p.relative_to(COMMITTED): p.read_bytes() for p in FILES}
    assert sorted(fresh) == sorted(committed), "vector files added or removed: regenerate"
    changed = [str(name) for name, data in fresh.items() if committed[name] != data]
    assert not changed, f"regenerating changed {changed[:5]}: regenerate and commit"


def test_generation_is_deterministic(tmp_path: Path) -> None:
    first = generate_merkle.generate(tmp_path / "a")
    second = generate_merkle.generate(tmp_path / "b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
