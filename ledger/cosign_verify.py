"""Checking the cosignatures a ledger stored: DIR/checkpoints/<size>.cosigned against the
published checkpoints and the configured witness keys (part of what `neikong verify` reports).

Guarantees of `verify_cosignatures` (it only reads; what it finds is returned as findings, not
raised):

- A `<size>.cosigned` file (`<size>` in canonical decimal; other names are ignored) yields a
  `bad_cosignature` finding unless it parses, a published checkpoint `<size>` exists, it
  carries that checkpoint's body and every one of its signature lines, and every cosignature
  on it by a configured witness key verifies.
- For each configured witness without a valid cosignature of the latest published checkpoint,
  exactly one `missing_cosignature` finding names the last size it did cosign
  (`ledger.verify` reports that kind as a warning, not as tamper evidence).
- Cosignatures by keys that are not configured are ignored.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ledger.checkpoints import CHECKPOINTS_DIR, list_checkpoints
from ledger.findings import Finding, FindingKind
from ledger.note import NoteError, SignedNote
from ledger.witness_config import WitnessKey, load_witnesses
from ledger.witnessing import COSIGNED_SUFFIX, read_cosigned

__all__ = [
    "BAD_COSIGNATURE",
    "MISSING_COSIGNATURE",
    "verify_cosignatures",
]

BAD_COSIGNATURE = FindingKind.BAD_COSIGNATURE
MISSING_COSIGNATURE = FindingKind.MISSING_COSIGNATURE


def _finding(kind: FindingKind, position: int | None, detail: str) -> Finding:
    return Finding(kind, position, None, None, detail)


def verify_cosignatures(
    ledger_dir: Path, witness_vkeys: Sequence[str] | None = None
) -> list[Finding]:
    """Check every `<size>.cosigned` file against its checkpoint and the witness keys.

    `witness_vkeys` defaults to the vkeys of DIR/witnesses.json. Findings:
    `bad_cosignature` (a cosigned note whose body or log signature differs from the published
    checkpoint, that has no published checkpoint, is malformed, or carries a cosignature by a
    configured witness key that does not verify) and `missing_cosignature` (one per configured
    witness that has not cosigned the latest checkpoint, with the last size it did cosign).
    Cosignatures by keys not configured are ignored.
    """
    if witness_vkeys is None:
        keys = [w.key for w in load_witnesses(ledger_dir)]
    else:
        keys = [WitnessKey.parse(v) for v in witness_vkeys]
    findings: list[Finding] = []
    sizes = list_checkpoints(ledger_dir)
    last: dict[str, int] = {}
    for size in _cosigned_sizes(ledger_dir, findings, set(sizes)):
        where = f"{CHECKPOINTS_DIR}/{size}{COSIGNED_SUFFIX}"
        try:
            note = read_cosigned(ledger_dir, size)
            plain = SignedNote.parse((ledger_dir / CHECKPOINTS_DIR / str(size)).read_bytes())
        except (NoteError, OSError) as exc:
            findings.append(_finding(BAD_COSIGNATURE, size, f"{where}: {exc}"))
            continue
        assert note is not None
        if note.body != plain.body or not set(plain.signatures) <= set(note.signatures):
            findings.append(
                _finding(BAD_COSIGNATURE, size, f"{where} is not the published checkpoint {size}")
            )
            continue
        for key in keys:
            for sig in note.signatures:
                if not key.owns(sig):
                    continue
                if key.verifies(note.body, sig):
                    last[key.vkey] = max(last.get(key.vkey, 0), size)
                else:
                    findings.append(
                        _finding(
                            BAD_COSIGNATURE,
                            size,
                            f"{where}: the cosignature by {key.name} does not verify",
                        )
                    )
    if sizes:
        latest = sizes[-1]
        for key in keys:
            done = last.get(key.vkey, 0)
            if done < latest:
                what = f"last cosigned checkpoint {done}" if done else "no checkpoint cosigned"
                findings.append(
                    _finding(
                        MISSING_COSIGNATURE,
                        latest,
                        f"witness {key.name} has not cosigned the latest checkpoint "
                        f"{latest} ({what}); run `neikong cosign`",
                    )
                )
    return findings


def _cosigned_sizes(ledger_dir: Path, findings: list[Finding], published: set[int]) -> list[int]:
    try:
        names = os.listdir(ledger_dir / CHECKPOINTS_DIR)
    except FileNotFoundError:
        return []
    sizes = []
    for name in names:
        stem = name.removesuffix(COSIGNED_SUFFIX)
        if stem == name or not stem.isdigit() or str(int(stem)) != stem:
            continue
        if int(stem) not in published:
            findings.append(
                _finding(BAD_COSIGNATURE, int(stem), f"{name} has no published checkpoint")
            )
        else:
            sizes.append(int(stem))
    return sorted(sizes)
