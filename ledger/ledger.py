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
from typing import Any, NamedTuple

from ledger.appender import AppendConfig, Appender, Outcome
from ledger.builder import build_body, new_event_id, utc_timestamp
from ledger.envelope import MAX_RECORD_BYTES, b64
from ledger.errors import LedgerNotFound, NeikongError
from ledger.keys import Signer, generate_private_key, key_id_of, write_private_key
from ledger.pii import PiiStore
from ledger.registry import ADMIN_SCOPE, ADMIN_SYSTEM, REGISTRY_STREAM, KeyRegistry, KeyScope
from ledger.registry_fold import load_registry
from ledger.store import LedgerStore, StoreConfig

__all__ = ["CONFIG_FILE", "SERVICES", "AppendedEvent", "Ledger", "LedgerConfig"]

CONFIG_FILE = "ledger.json"
ROOT_KEY = "keys/root.key"

# The ledger's own signing services: each has its key file keys/svc-<name>.key, enrolled by the
# admin on first use with the least scope it needs (its stream prefixes and event types only).
SERVICES: dict[str, KeyScope] = {
    "console": KeyScope("neikong-console", ("pii/", "audit/"), ("pii.*", "audit.*")),
    "projector": KeyScope("neikong-projector", ("projection/",), ("projection.*",)),
    "detector": KeyScope(
        "neikong-detector", ("warning/", "card/", "command/"), ("warning.*", "card.*", "command.*")
    ),
}


class AppendedEvent(NamedTuple):
    position: int
    event_id: str
    stream: str
    stream_seq: int


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
        self._sign_and_append(
            signer or self.admin_signer(),
            ADMIN_SYSTEM,
            REGISTRY_STREAM,
            type_,
            actor={"official": "ledger-admin", "role": "admin"},
            data=data,
        )

    # -- the ledger's own services (console, projector, detector) --------------------------

    def service_signer(self, service: str) -> Signer:
        """The signer of one of `SERVICES`, enrolled by the admin on first use."""
        scope = SERVICES.get(service)
        if scope is None:
            raise NeikongError(f"unknown service {service!r}; one of {sorted(SERVICES)}")
        path = self.key_path(f"svc-{service}")
        if not path.exists():
            purpose = "detector" if service == "detector" else "service"
            self.enrol_key(
                f"svc-{service}", purpose, scope, note=f"the ledger's own {service} service"
            )
        return Signer.from_file(path)

    def append_as(
        self,
        service: str,
        stream: str,
        type_: str,
        *,
        actor: dict[str, str],
        data: dict[str, Any],
        subject: dict[str, str] | None = None,
        pii: dict[str, str] | None = None,
        occurred_at: str | None = None,
    ) -> AppendedEvent:
        """Sign one event with a service key and append it; durable when this returns.

        Stream and producer sequences come from the store's heads, so services MUST append
        only through this method, one writer per service at a time: a concurrent append is
        detected by the append rules and raised as an error, never appended twice.
        """
        signer = self.service_signer(service)
        return self._sign_and_append(
            signer,
            SERVICES[service].system,
            stream,
            type_,
            actor=actor,
            data=data,
            subject=subject,
            pii=pii,
            occurred_at=occurred_at,
        )

    def pii_store(self) -> PiiStore:
        """The erasable store of personal values beside this ledger (see ledger/pii.py)."""
        if self.config.store_url.startswith(("postgres://", "postgresql://")):
            return PiiStore(self.config.store_url)
        return PiiStore(self.directory / "pii.db")

    def _sign_and_append(
        self,
        signer: Signer,
        system: str,
        stream: str,
        type_: str,
        *,
        actor: dict[str, str],
        data: dict[str, Any],
        subject: dict[str, str] | None = None,
        pii: dict[str, str] | None = None,
        occurred_at: str | None = None,
    ) -> AppendedEvent:
        info = self.store.stream_info(stream)
        seq = (info.length if info else 0) + 1
        event_id = new_event_id()
        body = build_body(
            event_id=event_id,
            stream=stream,
            stream_seq=seq,
            prev=b64(info.head_digest) if info else None,
            system=system,
            producer_seq=self.store.producer_heads().get(system, 0) + 1,
            type=type_,
            occurred_at=occurred_at or utc_timestamp(),
            actor=actor,
            subject=subject,
            data=data,
            pii=pii,
        )
        outcome: Outcome = self.appender().submit([signer.sign(body).encode()])[0]
        if outcome.status != "appended" or outcome.position is None:
            raise NeikongError(
                f"{type_} was not appended: {outcome.status} {outcome.reason or ''}"
                f" {outcome.detail}; another writer may be appending for {system}: retry"
            )
        return AppendedEvent(outcome.position, event_id, stream, seq)
