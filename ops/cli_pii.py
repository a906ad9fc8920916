"""Personal data at the CLI: reading values (checked, logged) and `neikong pii erase`.

Guarantees:

- `resolve_pii` MUST NOT return a value that does not match the commitment signed in the log:
  such a field is reported as `tampered` (never its value); an erased field as `erased`.
- `record_pii_read` appends a signed `audit.pii_read` (console key) before any value is shown;
  if that append fails, nothing is shown.
- `pii erase` deletes the official's values and salts from the PII store, then appends signed
  `pii.erased` events naming every (event, field) of the official's integrity file that was
  not yet erased. Run again after a failed append: the store delete is idempotent and the
  fields still unmarked are recorded then. `neikong verify` still passes afterwards: it never
  needs the values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ledger.ledger import Ledger
from ledger.pii import PiiTampered
from ops.cli import EXIT_CODES_HELP, _emit_json, ledger_option, main
from ops.cli_inspect import inspection

__all__ = [
    "DEFAULT_LEGAL_BASIS",
    "MAX_FIELDS_PER_EVENT",
    "erase_official",
    "pii",
    "pii_erase",
    "record_pii_read",
    "resolve_pii",
]

DEFAULT_LEGAL_BASIS = "个人信息保护法 第四十七条 (PIPL Art. 47: deletion)"
MAX_FIELDS_PER_EVENT = 1024  # pii.erased schema: maxItems
READER_ROLE = "pii_reader"


def resolve_pii(ledger: Ledger, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each integrity-file pii entry with `state` committed→value / erased / missing /
    tampered and, only when the stored value matches its commitment, `value`."""
    resolved = []
    with ledger.pii_store() as store:
        for entry in entries:
            row = {k: entry[k] for k in ("event_id", "type", "field", "commitment")}
            if entry["erased"]:
                row["state"] = "erased"
            else:
                try:
                    found = store.get(entry["commitment"])
                except PiiTampered:
                    row["state"] = "tampered"
                else:
                    if found is None:
                        row["state"] = "missing"
                    else:
                        row["state"] = "verified"
                        row["value"] = found.value
            resolved.append(row)
    return resolved


def record_pii_read(
    ledger: Ledger, *, reader: str, official: str, command: str, fields: int
) -> int:
    """Append the signed `audit.pii_read` for one read; returns its log position."""
    appended = ledger.append_as(
        "console",
        f"audit/{reader}",
        "audit.pii_read",
        actor={"official": reader, "role": READER_ROLE},
        subject={"official": official},
        data={
            "reader": reader,
            "role": READER_ROLE,
            "official": official,
            "command": command[:200],
            "fields": fields,
        },
    )
    return appended.position


def erase_official(
    ledger: Ledger,
    entries: list[dict[str, Any]],
    *,
    official: str,
    reason: str,
    approved_by: str,
    legal_basis: str,
) -> dict[str, Any]:
    """Delete `official`'s values, then record the erasure of every unmarked field."""
    with ledger.pii_store() as store:
        deleted = store.erase(official)
    targets = [{"event_id": e["event_id"], "field": e["field"]} for e in entries if not e["erased"]]
    positions = []
    for i in range(0, len(targets), MAX_FIELDS_PER_EVENT):
        appended = ledger.append_as(
            "console",
            f"pii/{official}",
            "pii.erased",
            actor={"official": approved_by, "role": "approver"},
            subject={"official": official},
            data={
                "official": official,
                "fields": targets[i : i + MAX_FIELDS_PER_EVENT],
                "reason": reason,
                "approved_by": approved_by,
                "legal_basis": legal_basis,
            },
        )
        positions.append(appended.position)
    return {
        "official": official,
        "values_deleted": len(deleted),
        "fields_recorded": len(targets),
        "events": positions,
    }


@main.group()
def pii() -> None:
    """Personal data (个人信息): erasure with a signed record."""


@pii.command("erase", epilog=EXIT_CODES_HELP)
@ledger_option
@click.option("--official", required=True, help="The official whose personal values to erase.")
@click.option("--reason", required=True, help="Why (recorded in the signed event).")
@click.option("--approved-by", "approved_by", required=True, help="Approving official's id.")
@click.option("--legal-basis", "legal_basis", default=DEFAULT_LEGAL_BASIS, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def pii_erase(
    *,
    ledger_dir: Path | None,
    official: str,
    reason: str,
    approved_by: str,
    legal_basis: str,
    as_json: bool,
) -> None:
    """Erase an official's personal values and append a signed `pii.erased` record.

    The signed events keep their commitments, so `neikong verify` still passes; the values
    and salts are gone, so the commitments can no longer be opened.
    """
    with inspection(ledger_dir, None) as insp:
        doc = insp.doc("integrity_file", official)
        entries = doc["pii"] if doc else []
        if not any(not e["erased"] for e in entries):
            with insp.ledger.pii_store() as store:
                held = store.fields_of(official)
            if not held:
                raise click.BadParameter(
                    f"no personal fields of {official!r} to erase", param_hint="--official"
                )
        result = erase_official(
            insp.ledger,
            entries,
            official=official,
            reason=reason,
            approved_by=approved_by,
            legal_basis=legal_basis,
        )
        if result["events"]:
            insp.runner.catch_up()
    if as_json:
        _emit_json(result)
        return
    click.echo(
        f"erased {result['values_deleted']} stored values of {official}; "
        f"recorded {result['fields_recorded']} fields in pii.erased at positions "
        f"{', '.join(map(str, result['events'])) or '-'}"
    )
