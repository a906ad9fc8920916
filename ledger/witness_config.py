"""The witnesses a ledger uses: DIR/witnesses.json, and each witness's cosignature key.

Layout (inside the ledger directory)::

    DIR/witnesses.json    [{"name", "url", "vkey"}]: the witnesses this ledger uses

Guarantees:

- A `ConfiguredWitness` exists only with a non-empty name, an http(s) URL and a vkey that parses
  as a cosignature (type 0x04) key; `load_witnesses` therefore returns only such entries, or
  raises `ValueError` for the whole file (none if the file does not exist).
- `add_witness` refuses a vkey another name already uses, and replaces the file atomically
  (temporary file, fsync, rename, fsync of the directory): a crash leaves the old or the new
  list, never a mix.

Submitting checkpoints to these witnesses is `ledger.witnessing`; checking the cosignatures
stored for them is `ledger.cosign_verify`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ledger.files import replace_atomically
from ledger.note import (
    SIG_TYPE_COSIGNATURE,
    NoteError,
    NoteSignature,
    note_key_hash,
    parse_vkey,
    verify_cosignature,
)

__all__ = [
    "WITNESSES_FILE",
    "ConfiguredWitness",
    "WitnessKey",
    "add_witness",
    "load_witnesses",
]

WITNESSES_FILE = "witnesses.json"


@dataclass(frozen=True)
class WitnessKey:
    """A witness's cosignature key (type 0x04), parsed from its vkey."""

    vkey: str
    name: str
    public_raw: bytes
    key_hash: bytes

    @classmethod
    def parse(cls, vkey: str) -> WitnessKey:
        """Raises `NoteError` unless `vkey` is a valid cosignature (type 0x04) vkey."""
        name, public, sig_type = parse_vkey(vkey)
        if sig_type != SIG_TYPE_COSIGNATURE:
            raise NoteError(f"vkey of {name} is not a cosignature key (type 0x04)")
        return cls(vkey, name, public, note_key_hash(name, public, SIG_TYPE_COSIGNATURE))

    def owns(self, sig: NoteSignature) -> bool:
        """True if `sig` carries this key's name and key hash."""
        return (sig.name, sig.key_hash) == (self.name, self.key_hash)

    def verifies(self, body: bytes, sig: NoteSignature) -> bool:
        """True if `sig` is this key's valid cosignature of the checkpoint `body`."""
        try:
            verify_cosignature(body, sig, self.name, self.public_raw)
        except NoteError:
            return False
        return True


@dataclass(frozen=True)
class ConfiguredWitness:
    """One entry of witnesses.json: a label, the submission URL and the cosignature vkey."""

    name: str
    url: str
    vkey: str

    def __post_init__(self) -> None:
        if not self.name or not self.url.startswith(("http://", "https://")):
            raise ValueError(f"witness {self.name!r}: a name and an http(s) URL are required")
        WitnessKey.parse(self.vkey)

    @property
    def key(self) -> WitnessKey:
        return WitnessKey.parse(self.vkey)


def load_witnesses(ledger_dir: Path) -> list[ConfiguredWitness]:
    """The witnesses of DIR/witnesses.json (none if the file does not exist).

    Raises `ValueError` if the file is not a list of {"name", "url", "vkey"} with valid vkeys.
    """
    path = ledger_dir / WITNESSES_FILE
    try:
        raw = json.loads(path.read_text("utf-8"))
        return [ConfiguredWitness(str(w["name"]), str(w["url"]), str(w["vkey"])) for w in raw]
    except FileNotFoundError:
        return []
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} is malformed: {exc}") from exc


def add_witness(ledger_dir: Path, name: str, url: str, vkey: str) -> ConfiguredWitness:
    """Add (or, for an existing name, replace) a witness in DIR/witnesses.json, atomically.

    Raises `ValueError` (`NoteError` for a bad vkey) and refuses a vkey another name uses.
    """
    new = ConfiguredWitness(name, url, vkey)
    witnesses = [w for w in load_witnesses(ledger_dir) if w.name != name]
    if any(w.vkey == vkey for w in witnesses):
        raise ValueError(f"another witness already uses the key {vkey.split('+')[0]}")
    witnesses.append(new)
    rows = [{"name": w.name, "url": w.url, "vkey": w.vkey} for w in witnesses]
    replace_atomically(ledger_dir / WITNESSES_FILE, (json.dumps(rows, indent=2) + "\n").encode())
    return new
