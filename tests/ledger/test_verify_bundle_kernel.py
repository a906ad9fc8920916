"""The standalone verifier's Merkle and signed-note code is a verbatim copy of the kernel.

ledger/verify_bundle.py must run alone, so it carries copies of the verification functions of
ledger/merkle.py and ledger/note.py. This test fails if a copy drifts from its source: change
the source, then paste the same definition into verify_bundle.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LEDGER = Path(__file__).resolve().parents[2] / "ledger"

KERNEL = {
    "merkle.py": [
        "HASH_SIZE",
        "MAX_TREE_SIZE",
        "ProofError",
        "leaf_hash",
        "node_hash",
        "_largest_power_of_two_below",
        "_check_size",
        "_check_hashes",
        "_check_length",
        "_check_root",
        "_inclusion_proof_length",
        "verify_inclusion",
        "multi_proof_nodes",
        "verify_multi_inclusion",
    ],
    "note.py": [
        "SIG_TYPE_ED25519",
        "SIG_TYPE_COSIGNATURE",
        "COSIGNATURE_HEADER",
        "MAX_SIGNATURES",
        "MAX_TIMESTAMP",
        "_MAX_SIZE",
        "_KEY_HASH_SIZE",
        "_ED25519_PUBLIC_SIZE",
        "_ED25519_SIGNATURE_SIZE",
        "_ROOT_SIZE",
        "_DASH",
        "_SIZE_RE",
        "_HEX8_RE",
        "NoteError",
        "_b64encode",
        "_b64decode",
        "_check_text",
        "_utf8",
        "_check_name",
        "_check_public",
        "_ed25519_ok",
        "Checkpoint",
        "NoteSignature",
        "parse_signature_lines",
        "SignedNote",
        "note_key_hash",
        "parse_vkey",
        "verify_note_signature",
        "verify_note",
        "cosignature_message",
        "verify_cosignature",
    ],
}


def definitions(path: Path) -> dict[str, str]:
    """Top-level name -> source of its definition (decorators included)."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            name = node.name
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
        else:
            continue
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        found[name] = "\n".join(lines[first - 1 : node.end_lineno])
    return found


COPY = definitions(LEDGER / "verify_bundle.py")


@pytest.mark.parametrize(
    ("module", "name"), [(module, name) for module, names in KERNEL.items() for name in names]
)
def test_the_copy_is_verbatim(module: str, name: str):
    source = definitions(LEDGER / module)
    assert name in COPY, f"verify_bundle.py lacks {name} from ledger/{module}"
    assert COPY[name] == source[name], f"{name} in verify_bundle.py differs from ledger/{module}"


def test_the_verifier_uses_the_copies_not_the_package():
    tree = ast.parse((LEDGER / "verify_bundle.py").read_text(encoding="utf-8"))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not {m for m in imported if m.split(".")[0] in ("ledger", "ops", "producers")}
