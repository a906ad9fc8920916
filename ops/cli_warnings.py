"""Warning commands (预警跟踪): `warnings list|show|ack|order-rectification|rectify|close`.

Registered on `ops.cli.main` (imported at the end of ops/cli.py). Reads come from the
`warnings` projection (caught up first, as every inspector command); `--json`, `--as-of` and
`--at` as in ops/cli_inspect.py. `ID` is a warning's raised event id (`warning_ref`), its
stream (`warning/<rule>/<hash>`), or a unique prefix of either (≥ 6 characters).

Each lifecycle command appends one signed event to the warning's stream (the ledger's detector
key; the person as `actor`, the attributed official as `subject`), after checking the
transition against the current state:

    open → acknowledged → rectification_ordered → rectified → closed

(`order-rectification` may also follow `open` or repeat to move the deadline; `close` may
follow any state but `closed`, and `--reason rectified` only a rectification).

Exit codes: 0 ok, 2 usage (unknown or ambiguous ID, an illegal transition, a bad value),
3 operational error.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from alerts.controls import control_for
from alerts.errors import RuleError
from alerts.lifecycle import append_lifecycle, check_transition
from ops.cli import _emit_json, ledger_option, main
from ops.cli_inspect import Inspection, common_options, emit, inspection, table, to_day
from projections.base import Doc
from projections.warnings import STATUSES, warning_status

__all__ = [
    "warnings",
    "warnings_ack",
    "warnings_close",
    "warnings_list",
    "warnings_order",
    "warnings_rectify",
    "warnings_show",
]

_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$")
_CODE = re.compile(r"^[a-z][a-z_]{0,39}$")
_CLOSE_REASONS = ("rectified", "false_positive", "superseded", "no_action_needed")

LIST_COLUMNS = [
    ("id", "id 编号"),
    ("rule_id", "rule 规则"),
    ("level", "level 等级"),
    ("grade", "grade 风险等级"),
    ("status", "status 状态"),
    ("official", "official 责任人"),
    ("unit", "unit 单位"),
    ("raised_at", "raised 预警时间"),
    ("rectify_by", "rectify by 整改期限"),
    ("late", "late 迟报"),
]


@main.group()
def warnings() -> None:
    """Warnings (预警): list, show, and take them through their lifecycle."""


def _unit(insp: Inspection, doc: Doc, units: dict[str, str | None]) -> str | None:
    """The warning's unit: the attributed unit, else the attributed official's unit."""
    if doc["unit"] or not doc["official"]:
        return doc["unit"]  # type: ignore[no-any-return]
    official = doc["official"]
    if official not in units:
        file = insp.doc("integrity_file", official)
        units[official] = file["unit"] if file else None
    return units[official]


def _row(doc: Doc, day: str, unit: str | None) -> dict[str, Any]:
    return {
        "id": doc["warning_ref"],
        "stream": doc["warning"],
        "rule_id": doc["rule_id"],
        "rule_version": doc["rule_version"],
        "level": doc["level"],
        "grade": doc["grade"],
        "category": doc["category"],
        "status": warning_status(doc, day),
        "official": doc["official"],
        "role": doc["role"],
        "unit": unit,
        "raised_at": doc["raised_at"],
        "rectify_by": doc["rectify_by"],
        "late": doc["late"],
    }


@warnings.command("list")
@common_options
@click.option("--rule", "rule", help="Only rules whose id starts with this (R05, R05-proc…).")
@click.option("--level", type=click.Choice(["blue", "yellow", "orange", "red"]))
@click.option("--grade", type=click.Choice(["1", "2", "3", "4", "cross"]))
@click.option("--state", type=click.Choice(STATUSES), help="overdue is judged at --as-of.")
@click.option("--official", "official_id", help="Only warnings attributed to this official.")
@click.option("--unit", help="Only this unit's warnings (attributed unit or official's unit).")
def warnings_list(
    *,
    ledger_dir: Path | None,
    as_json: bool,
    as_of: datetime | None,
    at: int | None,
    rule: str | None,
    level: str | None,
    grade: str | None,
    state: str | None,
    official_id: str | None,
    unit: str | None,
) -> None:
    """List warnings with their state at --as-of (预警列表)."""
    day = to_day(as_of)
    units: dict[str, str | None] = {}
    with inspection(ledger_dir, at) as insp:
        docs = insp.docs("warnings", {"level": level, "grade": grade, "official": official_id})
        rows = [_row(d, day, _unit(insp, d, units)) for d in docs]
    rows = [
        r
        for r in rows
        if (rule is None or str(r["rule_id"]).startswith(rule))
        and (state is None or r["status"] == state)
        and (unit is None or r["unit"] == unit)
    ]
    rows.sort(key=lambda r: (str(r["raised_at"]), str(r["id"])))
    emit(
        {"as_of": day, "at": at, "warnings": rows},
        as_json,
        table(LIST_COLUMNS, rows) + f"\n{len(rows)} warnings (as of {day})",
    )


def _resolve(insp: Inspection, ident: str) -> Doc:
    """The warning document `ident` names (ref, stream or a unique prefix); UsageError else."""
    if ident.startswith("warning/"):
        doc = insp.doc("warnings", ident)
        if doc is None:
            raise click.BadParameter(f"no warning stream {ident!r}", param_hint="ID")
        return doc
    if len(ident) < 6:
        raise click.BadParameter("give at least 6 characters of the id", param_hint="ID")
    found = [
        d
        for d in insp.docs("warnings")
        if str(d["warning_ref"]).startswith(ident)
        or d["warning"].rsplit("/", 1)[-1].startswith(ident)
        or any(str(p["warning_ref"]).startswith(ident) for p in d.get("previous", []))
    ]
    if not found:
        raise click.BadParameter(
            f"no warning {ident!r}; see `neikong warnings list`", param_hint="ID"
        )
    if len(found) > 1:
        ids = ", ".join(str(d["warning_ref"]) for d in found[:5])
        raise click.BadParameter(f"{ident!r} is ambiguous ({ids} …); give more", param_hint="ID")
    return found[0]


@warnings.command("show")
@common_options
@click.argument("ident", metavar="ID")
def warnings_show(
    *, ledger_dir: Path | None, as_json: bool, as_of: datetime | None, at: int | None, ident: str
) -> None:
    """One warning: rule, levels, attribution, lifecycle and its graded control (分级防控)."""
    day = to_day(as_of)
    units: dict[str, str | None] = {}
    with inspection(ledger_dir, at) as insp:
        doc = _resolve(insp, ident)
        row = _row(doc, day, _unit(insp, doc, units))
    control = control_for(doc["grade"]) if doc["grade"] is not None else None
    out = {
        "as_of": day,
        "at": at,
        **doc,
        "status": row["status"],
        "unit": row["unit"],
        "control": control.as_json() if control else None,
        "control_action": control.action(doc["level"]).as_json() if control else None,
    }
    if as_json:
        _emit_json(out)
        return
    click.echo(
        table([("k", "field 字段"), ("v", "value 值")], [{"k": k, "v": v} for k, v in row.items()])
    )
    if control is not None:
        act = control.action(doc["level"])
        click.echo(
            f"\ngraded control 分级防控: grade {control.grade} {control.zh} ({control.category}),"
            f" focus {control.focus_zh} ({control.focus}): {control.watch}"
        )
        click.echo(f"action at {doc['level']} 处置: {act.zh} / {act.en} [{act.action}]")
    click.echo("\nlevels 等级变化")
    click.echo(
        table(
            [
                ("at", "at 时间"),
                ("level", "level 等级"),
                ("from_level", "from 原等级"),
                ("late", "late 迟报"),
                ("event_id", "event 事件"),
            ],
            doc["levels"],
        )
    )
    click.echo("\nlifecycle 处置记录")
    click.echo(
        table(
            [
                ("at", "at 时间"),
                ("type", "type 类型"),
                ("by", "by 经办"),
                ("position", "pos 位置"),
                ("event_id", "event 事件"),
            ],
            doc["events"],
        )
    )
    if doc["previous"]:
        click.echo(f"\nearlier closed warnings on this stream 此前已关闭: {len(doc['previous'])}")


# -- lifecycle ----------------------------------------------------------------------------------


def _by_option(func: Any) -> Any:
    return click.option("--by", "by", required=True, help="Your official id (签收/处置人).")(func)


def _step(
    ledger_dir: Path | None,
    as_json: bool,
    ident: str,
    *,
    step: str,
    by: str,
    role: str,
    data: dict[str, Any],
    reason: str | None = None,
) -> None:
    if not _ID.match(by):
        raise click.BadParameter(f"{by!r} is not an official id", param_hint="--by")
    with inspection(ledger_dir, None) as insp:
        doc = _resolve(insp, ident)
        try:
            check_transition(doc["state"], step, reason=reason)
        except RuleError as exc:
            raise click.UsageError(f"warning {doc['warning_ref']}: {exc}") from exc
        appended = append_lifecycle(
            insp.ledger,
            doc["warning"],
            step,
            actor={"official": by, "role": role},
            data={"warning_ref": doc["warning_ref"], **data},
            subject={"official": doc["official"]} if doc["official"] else None,
        )
    result = {
        "warning": doc["warning"],
        "warning_ref": doc["warning_ref"],
        "step": step,
        "from_state": doc["state"],
        "state": step,
        "event_id": appended.event_id,
        "position": appended.position,
    }
    emit(
        result,
        as_json,
        f"warning {doc['warning_ref']} ({doc['rule_id']}): {doc['state']} -> {step}"
        f" (event {appended.event_id} at position {appended.position})",
    )


_json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@warnings.command("ack")
@ledger_option
@_json_option
@click.argument("ident", metavar="ID")
@_by_option
@click.option("--note", "note", help="A note code (lower-case letters and _), e.g. seen_by_head.")
def warnings_ack(
    *, ledger_dir: Path | None, as_json: bool, ident: str, by: str, note: str | None
) -> None:
    """Acknowledge a warning (签收) on behalf of the responsible unit."""
    data: dict[str, Any] = {"acknowledged_by": by}
    if note is not None:
        if not _CODE.match(note):
            raise click.BadParameter("a note code: a-z and _, at most 40", param_hint="--note")
        data["note_code"] = note
    _step(ledger_dir, as_json, ident, step="acknowledged", by=by, role="responsible", data=data)


@warnings.command("order-rectification")
@ledger_option
@_json_option
@click.argument("ident", metavar="ID")
@click.option("--deadline", type=click.DateTime(["%Y-%m-%d"]), required=True, help="rectify by")
@_by_option
def warnings_order(
    *, ledger_dir: Path | None, as_json: bool, ident: str, deadline: datetime, by: str
) -> None:
    """Order rectification by a deadline (限期整改)."""
    data = {"rectify_by": deadline.date().isoformat(), "ordered_by": by}
    _step(
        ledger_dir,
        as_json,
        ident,
        step="rectification_ordered",
        by=by,
        role="supervisor",
        data=data,
    )


@warnings.command("rectify")
@ledger_option
@_json_option
@click.argument("ident", metavar="ID")
@_by_option
@click.option("--evidence", required=True, help="Reference of the rectification document.")
@click.option(
    "--on", "on", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Default: today (CST)."
)
def warnings_rectify(
    *,
    ledger_dir: Path | None,
    as_json: bool,
    ident: str,
    by: str,
    evidence: str,
    on: datetime | None,
) -> None:
    """Record the rectification as done (整改完成), with its evidence reference."""
    if not _ID.match(evidence):
        raise click.BadParameter("letters, digits, . _ - (≤ 64)", param_hint="--evidence")
    data = {"rectified_on": to_day(on), "evidence_ref": evidence}
    _step(ledger_dir, as_json, ident, step="rectified", by=by, role="responsible", data=data)


@warnings.command("close")
@ledger_option
@_json_option
@click.argument("ident", metavar="ID")
@_by_option
@click.option("--reason", type=click.Choice(_CLOSE_REASONS), required=True)
def warnings_close(
    *, ledger_dir: Path | None, as_json: bool, ident: str, by: str, reason: str
) -> None:
    """Close a warning; a later trigger of the same rule and key raises a new one."""
    data = {"reason": reason, "closed_by": by}
    _step(
        ledger_dir,
        as_json,
        ident,
        step="closed",
        by=by,
        role="supervisor",
        data=data,
        reason=reason,
    )
