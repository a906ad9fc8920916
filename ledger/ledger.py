"""A ledger directory: configuration, root key, event store, key registry and appender.

Layout of `--ledger DIR`::

    DIR/ledger.json      configuration (mode 0600: it may hold a database URL)
    DIR/ledger.db        the SQLite event store (embedded default)
    DIR/keys/root.key    the root (admin) private key, PEM, mode 0600
    DIR/keys/*.key       keys created by `neikong keys enrol`
    DIR/exports/         evidence bundles and exports
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ledger.appender import AppendConfig, Appender, Outcome
from ledger.builder import build_body, new_event_id, utc_timestamp
from ledger.envelope import MAX_RECORD_BYTES, b64
from ledger.errors import LedgerNotFound, NeikongError
from ledger.keys import Signer, generate_private_key, key_id_of, write_private_key
from ledger.registry import ADMIN_SCOPE, ADMIN_SYSTEM, REGISTRY_STREAM, KeyRegistry, KeyScope
from ledger.registry_fold import load_registry
from ledger.store import LedgerStore, StoreConfig

__all__ = ["CONFIG_FILE", "Ledger", "LedgerConfig"]

CONFIG_FILE = "ledger.json"
ROOT_KEY = "keys/root.key"


@dataclass(frozen=True)
class LedgerConfig:
    store_url: str
    origin: str
    root_key_id: str
    max_record_bytes: int = MAX_RECORD_BYTES
    park_limit: int = 100_000
    gap_timeout_s: float = 300.0

    def append_config(self, workers: int = 0, source: str = "in-process") -> AppendConfig:
        return AppendConfig(
            max_record_bytes=self.max_record_bytes,
            park_limit=self.park_limit,
            gap_timeout_s=self.gap_timeout_s,
            workers=workers,
            source=source,
        )


class Ledger:
    def __init__(self, directory: Path, config: LedgerConfig, store: LedgerStore) -> None:
        self.directory = directory
        self.config = config
        self.store = store
        self._registry: KeyRegistry | None = None
        self._appender: Appender | None = None

    @property
    def registry(self) -> KeyRegistry:
        """The key registry, folded and checked on first use (VerificationError if tampered)."""
        if self._registry is None:
            self._registry = load_registry(
                self.store, KeyRegistry(bytes.fromhex(self.config.root_key_id))
            )
        return self._registry

    # -- creation and opening --------------------------------------------------------------

    @classmethod
    def init(
        cls,
        directory: Path,
        *,
        store_url: str | None = None,
        origin: str | None = None,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> Ledger:
        directory = directory.resolve()
        if (directory / CONFIG_FILE).exists():
            raise NeikongError(f"{directory} already holds a ledger ({CONFIG_FILE} exists)")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "exports").mkdir(exist_ok=True)
        root = generate_private_key()
        write_private_key(directory / ROOT_KEY, root)
        signer = Signer(root)
        config = LedgerConfig(
            store_url=store_url or f"sqlite:///{directory / 'ledger.db'}",
            origin=origin or f"neikong/{directory.name}",
            root_key_id=signer.key_id.hex(),
            max_record_bytes=max_record_bytes,
        )
        path = directory / CONFIG_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(config), handle, indent=2)
        ledger = cls(directory, config, LedgerStore(StoreConfig(config.store_url)))
        ledger._admin_append(
            "ledger.genesis",
            {
                "origin": config.origin,
                "root_key": {"key_id": signer.key_id.hex(), "public_key": b64(signer.public_raw)},
                "scope": ADMIN_SCOPE.to_json(),
            },
            signer,
        )
        return ledger

    @classmethod
    def open(cls, directory: Path) -> Ledger:
        directory = directory.resolve()
        path = directory / CONFIG_FILE
        if not path.exists():
            raise LedgerNotFound(
                f"no ledger in {directory} ({CONFIG_FILE} missing); create one with "
                f"`neikong init --ledger {directory}`"
            )
        config = LedgerConfig(**json.loads(path.read_text("utf-8")))
        return cls(directory, config, LedgerStore(StoreConfig(config.store_url)))

    def close(self) -> None:
        if self._appender is not None:
            self._appender.close()
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- appending -------------------------------------------------------------------------

    def appender(self, workers: int = 0, source: str = "in-process") -> Appender:
        if self._appender is None or self._appender.config.workers != workers:
            if self._appender is not None:
                self._appender.close()
            self._appender = Appender(
                self.store, self.registry, self.config.append_config(workers, source)
            )
        return self._appender

    # -- key registry ----------------------------------------------------------------------

    def admin_signer(self) -> Signer:
        return Signer.from_file(self.directory / ROOT_KEY)

    def enrol_key(
        self,
        name: str,
        purpose: str,
        scope: KeyScope,
        *,
        public_raw: bytes | None = None,
        note: str | None = None,
    ) -> bytes:
        """Enrol a key (a new one written to keys/NAME.key unless `public_raw` is given)."""
        if public_raw is None:
            key = generate_private_key()
            write_private_key(self.key_path(name), key)
            public_raw = Signer(key).public_raw
        key_id = key_id_of(public_raw)
        data: dict[str, Any] = {
            "key": {"key_id": key_id.hex(), "public_key": b64(public_raw)},
            "purpose": purpose,
            "scope": scope.to_json(),
        }
        if note:
            data["note"] = note
        self._admin_append("key.enrolled", data)
        return key_id

    def rotate_key(self, old_key_id: bytes, name: str) -> bytes:
        key = generate_private_key()
        write_private_key(self.key_path(name), key)
        signer = Signer(key)
        self._admin_append(
            "key.rotated",
            {
                "old_key_id": old_key_id.hex(),
                "key": {"key_id": signer.key_id.hex(), "public_key": b64(signer.public_raw)},
            },
        )
        return signer.key_id

    def revoke_key(self, key_id: bytes, reason: str, note: str | None = None) -> None:
        data: dict[str, Any] = {"key_id": key_id.hex(), "reason": reason}
        if note:
            data["note"] = note
        self._admin_append("key.revoked", data)

    def key_path(self, name: str) -> Path:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise NeikongError(f"key name {name!r}: use letters, digits, - and _ only")
        return self.directory / "keys" / f"{name}.key"

    def _admin_append(self, type_: str, data: dict[str, Any], signer: Signer | None = None) -> None:
        signer = signer or self.admin_signer()
        info = self.store.stream_info(REGISTRY_STREAM)
        seq = (info.length if info else 0) + 1
        body = build_body(
            event_id=new_event_id(),
            stream=REGISTRY_STREAM,
            stream_seq=seq,
            prev=b64(info.head_digest) if info else None,
            system=ADMIN_SYSTEM,
            producer_seq=self.store.producer_heads().get(ADMIN_SYSTEM, 0) + 1,
            type=type_,
            occurred_at=utc_timestamp(),
            actor={"official": "ledger-admin", "role": "admin"},
            data=data,
        )
        outcome: Outcome = self.appender().submit([signer.sign(body).encode()])[0]
        if outcome.status != "appended":
            raise NeikongError(
                f"{type_} was not appended: {outcome.reason} {outcome.detail}".strip()
            )
