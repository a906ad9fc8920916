"""Folding the key registry from stored rows, checking every change before trusting it.

Everyone who needs the registry (the appender on start, the sealer, `verify`, bundles) folds it
here, so a registry row that someone edited in the database is never trusted:

- each row MUST be a canonical, schema-valid registry event in `ledger/keys`;
- the genesis MUST be the first registry event, at position 1, name a root key whose id is the
  trusted root key id and the record's key id, and be signed by that key;
- every later change MUST be signed by an admin key valid at its position and MUST apply
  (no double enrolment, no rotation or revocation of an inactive key).

A row that fails is reported as a `Finding` and not applied; nothing here raises on bad data.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable

from ledger.canonical import parse_canonical
from ledger.envelope import Envelope, SignedRecord
from ledger.errors import MalformedInput, VerificationError
from ledger.findings import Finding, FindingKind
from ledger.keys import key_id_of, public_key_from_raw, verify_signature
from ledger.reasons import ReasonCode
from ledger.registry import REGISTRY_STREAM, REGISTRY_TYPES, KeyRegistry, RegistryError
from ledger.schema import SchemaCatalogue
from ledger.store import LedgerStore

__all__ = ["check_genesis", "fold_registry_rows", "load_registry"]

_KEY_FINDINGS = {
    ReasonCode.UNKNOWN_KEY: FindingKind.UNKNOWN_KEY,
    ReasonCode.REVOKED_KEY: FindingKind.REVOKED_KEY,
}

_CATALOGUE: SchemaCatalogue | None = None


def _catalogue() -> SchemaCatalogue:
    global _CATALOGUE  # noqa: PLW0603 - compiled once per process
    if _CATALOGUE is None:
        _CATALOGUE = SchemaCatalogue()
    return _CATALOGUE


def fold_registry_rows(
    registry: KeyRegistry, rows: Iterable[tuple[int, bytes]], *, require_genesis: bool = True
) -> list[Finding]:
    """Apply the valid registry events among (position, record) `rows` to `registry`.

    `require_genesis=False` accepts a log with no genesis yet (a ledger being created).
    """
    findings: list[Finding] = []
    for position, record in rows:
        if position <= registry.last_position:
            continue
        findings.extend(_fold_one(registry, position, record))
    if require_genesis and (
        registry.root_key_id is None or registry.root_key_id not in registry.keys
    ):
        findings.append(
            Finding(
                FindingKind.BAD_GENESIS,
                1,
                REGISTRY_STREAM,
                None,
                "no genesis signed by the trusted root key",
            )
        )
    return findings


def load_registry(store: LedgerStore, registry: KeyRegistry) -> KeyRegistry:
    """Bring `registry` up to date from `store`; raise `VerificationError` if a row is bad."""
    findings = fold_registry_rows(
        registry, store.stream_rows(REGISTRY_STREAM), require_genesis=store.max_position() > 0
    )
    if findings:
        raise VerificationError(
            f"the key registry stored in the ledger does not verify ({findings[0].kind.value} "
            f"at position {findings[0].position}: {findings[0].detail}); nothing will be "
            "appended or sealed until it does. Run `neikong verify` for the full report.",
            findings,
        )
    return registry


def _fold_one(registry: KeyRegistry, position: int, record: bytes) -> list[Finding]:
    try:
        signed = SignedRecord.decode(record)
        value = parse_canonical(signed.body)
        _catalogue().validate(value)
        env = Envelope.from_json(value)
    except MalformedInput as exc:
        kind = {
            ReasonCode.NON_CANONICAL: FindingKind.NON_CANONICAL,
            ReasonCode.SCHEMA_INVALID: FindingKind.SCHEMA_INVALID,
            ReasonCode.UNKNOWN_TYPE: FindingKind.SCHEMA_INVALID,
        }.get(exc.reason, FindingKind.CORRUPT_RECORD)
        return [Finding(kind, position, REGISTRY_STREAM, None, f"registry row: {exc.detail}")]

    def finding(kind: FindingKind, detail: str) -> list[Finding]:
        return [Finding(kind, position, env.stream, env.event_id, detail)]

    if env.type not in REGISTRY_TYPES or env.stream != REGISTRY_STREAM:
        return finding(FindingKind.REGISTRY_INVALID, f"{env.type} in {env.stream}")
    try:
        if env.type == "ledger.genesis":
            return _fold_genesis(registry, position, signed, env, finding)
        problem = registry.check(signed.key_id, env, position)
        if problem is not None:
            kind = _KEY_FINDINGS.get(problem[0], FindingKind.OUT_OF_SCOPE)
            return finding(kind, f"registry change: {problem[1]}")
        entry = registry.lookup(signed.key_id)
        if entry is None or not verify_signature(
            entry.public_key, signed.signature, signed.signing_message
        ):
            return finding(FindingKind.BAD_SIGNATURE, "registry change: signature does not verify")
        change_problem = registry.validate_change(env, position)
        if change_problem is not None:
            return finding(FindingKind.REGISTRY_INVALID, change_problem)
        registry.apply(env, position)
    except (RegistryError, ValueError, KeyError, TypeError) as exc:
        return finding(FindingKind.REGISTRY_INVALID, f"registry change cannot apply: {exc}")
    return []


def _fold_genesis(
    registry: KeyRegistry,
    position: int,
    signed: SignedRecord,
    env: Envelope,
    report: Callable[[FindingKind, str], list[Finding]],
) -> list[Finding]:
    if registry.keys:
        return report(FindingKind.BAD_GENESIS, "a second genesis")
    findings = check_genesis(position, signed, env, registry.root_key_id)
    if not findings:
        registry.apply(env, position)
    return findings


def check_genesis(
    position: int, signed: SignedRecord, env: Envelope, trusted_root: bytes | None
) -> list[Finding]:
    """Everything that makes a genesis trustworthy; [] if it is.

    The root key is known only through the genesis body, so an edited body either breaks the
    signature (the key still hashes to the signer's id) or no longer carries the signer's key:
    both are reported as `bad_signature`, with `bad_genesis` for what else is wrong.
    """
    out: list[Finding] = []

    def add(kind: FindingKind, detail: str) -> None:
        out.append(Finding(kind, position, env.stream, env.event_id, detail))

    try:
        root = env.data["root_key"]
        public_raw = base64.b64decode(root["public_key"], validate=True)
        stated = str(root["key_id"])
    except (KeyError, TypeError, ValueError) as exc:
        add(FindingKind.BAD_GENESIS, f"genesis root key unreadable: {exc}")
        add(FindingKind.BAD_SIGNATURE, "genesis signature cannot be checked")
        return out
    actual = key_id_of(public_raw)
    if len(public_raw) != 32 or actual != signed.key_id:
        add(FindingKind.BAD_SIGNATURE, "the genesis does not carry the key that signed it")
    elif not verify_signature(
        public_key_from_raw(public_raw), signed.signature, signed.signing_message
    ):
        add(FindingKind.BAD_SIGNATURE, "genesis signature does not verify")
    if stated != actual.hex():
        add(FindingKind.BAD_GENESIS, "genesis key_id is not SHA-256 of its public key")
    if trusted_root is not None and signed.key_id != trusted_root:
        add(FindingKind.BAD_GENESIS, "genesis is not signed by the trusted root key")
    if position != 1:
        add(FindingKind.BAD_GENESIS, f"genesis at position {position}, not 1")
    return out
