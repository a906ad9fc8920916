"""Inspector commands over the registers: `official show`, `declarations status`,
`violations list` (options and exit codes as in ops/cli_inspect.py)."""

from __future__ import annotations

import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ops.cli import EXIT_TAMPER, _emit_json, main
from ops.cli_inspect import common_options, emit, inspection, official, table, to_day
from ops.cli_pii import record_pii_read, resolve_pii
from projections.base import Doc
from projections.declarations import register_rows
from projections.violations import STATUSES, violation_status

__all__ = ["declarations", "declarations_status", "official_show", "violations", "violations_list"]

_SECTIONS = [
    (
        "appointments",
        "appointments 任职",
        (
            "effective_on",
            "post",
            "unit",
            "rank",
            "recommended_by",
            "examined_by",
            "inspected_by",
            "decided_by",
        ),
    ),
    ("assessments", "assessments 考核", ("year", "result", "incompetent_share")),
    (
        "declarations",
        "declarations 申报",
        ("declaration", "kind", "year", "filed_on", "items", "pii_fields"),
    ),
    ("verifications", "verifications 查核", ("year", "method", "findings")),
    ("talks", "talks 谈话", ("held_on", "kind", "held_by", "reason_code")),
    ("complaints", "complaints 信访", ("stream", "received_on", "category", "finding", "handling")),
    (
        "violations",
        "violations 违规",
        ("stream", "grade", "error_code", "rectify_by", "completed_on"),
    ),
    ("sanctions", "sanctions 处分", ("effective_on", "sanction", "decided_by", "until")),
    ("training", "training 培训", ("completed_on", "course", "hours")),
    ("file_updates", "file updates 档案更新", ("updated_on", "sections", "updated_by")),
    ("warnings", "warnings 预警", ("stream", "rule_id", "level", "state")),
    ("cards", "cards 红黄牌", ("stream", "color", "state")),
    ("commands_rejected", "rejected commands 阻断", ("rule_id", "command", "occurred_at")),
    ("erasures", "erasures 信息删除", ("occurred_at", "fields", "approved_by", "legal_basis")),
    ("pii_reads", "personal-data reads 查阅记录", ("occurred_at", "reader", "command", "fields")),
]


@official.command("show")
@common_options
@click.argument("official_id", metavar="ID")
@click.option(
    "--role",
    type=click.Choice(["inspector", "pii-reader"]),
    default="inspector",
    show_default=True,
    help="pii-reader resolves personal values (checked, and the read is logged).",
)
@click.option("--reader", help="Your official id (required with --role pii-reader).")
@click.option("--purpose", help="Why you read the values (required with --role pii-reader).")
def official_show(
    *,
    ledger_dir: Path | None,
    as_json: bool,
    as_of: datetime | None,
    at: int | None,
    official_id: str,
    role: str,
    reader: str | None,
    purpose: str | None,
) -> None:
    """An official's integrity file (廉政档案). Personal fields show as committed / erased
    unless --role pii-reader is given."""
    reading = role == "pii-reader"
    if reading and not (reader and purpose):
        raise click.UsageError("--role pii-reader needs --reader OFFICIAL and --purpose TEXT")
    if not reading and (reader or purpose):
        raise click.UsageError(
            "personal values are refused without --role pii-reader (reads are logged)"
        )
    with inspection(ledger_dir, at) as insp:
        doc = insp.doc("integrity_file", official_id)
        if doc is None:
            raise click.BadParameter(f"no integrity file for {official_id!r}", param_hint="ID")
        if reading:
            fields = resolve_pii(insp.ledger, doc["pii"])
            assert reader is not None
            assert purpose is not None
            shown = sum(1 for f in fields if "value" in f)
            record_pii_read(
                insp.ledger,
                reader=reader,
                official=official_id,
                command=f"official show {official_id} purpose: {purpose}",
                fields=shown,
            )
        else:
            fields = [
                {
                    "event_id": p["event_id"],
                    "type": p["type"],
                    "field": p["field"],
                    "state": "erased" if p["erased"] else "committed",
                }
                for p in doc["pii"]
            ]
    doc = {**doc, "pii": fields}
    tampered = [f for f in fields if f["state"] == "tampered"]
    if as_json:
        _emit_json({"at": at, **doc})
    else:
        _print_file(doc)
    if tampered:
        click.echo(
            f"neikong: TAMPER EVIDENCE: {len(tampered)} personal value(s) no longer match their"
            " signed commitments; restore the PII store from backup",
            err=True,
        )
        sys.exit(EXIT_TAMPER)


def _print_file(doc: Doc) -> None:
    click.echo(
        f"integrity file 廉政档案  {doc['official']}  unit 单位 {doc['unit'] or '-'}  "
        f"post 职务 {doc['post'] or '-'}  rank 职级 {doc['rank'] or '-'}  "
        f"reportable 需报告 {'yes' if doc['reportable'] else 'no'}"
    )
    for section, label, fields in _SECTIONS:
        entries = doc.get(section) or []
        if not entries:
            continue
        click.echo(f"\n{label} ({len(entries)})")
        rows = [
            {**e, "findings": [f"{f['item_code']}:{f['finding']}" for f in e.get("findings", [])]}
            for e in entries
        ]
        click.echo(table([(f, f) for f in fields], rows))
    if doc["pii"]:
        click.echo(f"\npersonal fields 个人信息 ({len(doc['pii'])})")
        rows = [{**f, "value": f.get("value", f["state"])} for f in doc["pii"]]
        click.echo(
            table(
                [("field", "field 字段"), ("value", "value 值"), ("event_id", "event 事件")], rows
            )
        )


# -- declarations -----------------------------------------------------------------------------


@main.group()
def declarations() -> None:
    """Personal-matters declarations (个人有关事项报告)."""


@declarations.command("status")
@common_options
@click.option("--year", type=click.IntRange(2000, 2100), required=True)
@click.option("--unit", help="Only officials of this unit.")
@click.option("--official", "official_id", help="Only this official.")
@click.option(
    "--status", type=click.Choice(["due", "filed", "late", "missing"]), help="Only this status."
)
def declarations_status(
    *,
    ledger_dir: Path | None,
    as_json: bool,
    as_of: datetime | None,
    at: int | None,
    year: int,
    unit: str | None,
    official_id: str | None,
    status: str | None,
) -> None:
    """Who owed which report for YEAR, and its status at --as-of (annual due Jan 31 of the
    next year; change and initial reports 30 days after the event)."""
    day = to_day(as_of)
    with inspection(ledger_dir, at) as insp:
        docs = insp.docs("declarations", {"official": official_id})
        units = {d["official"]: d["unit"] for d in insp.docs("integrity_file")}
    by_official: dict[str, list[Doc]] = defaultdict(list)
    for d in docs:
        by_official[d["official"]].append(d)
    rows: list[dict[str, Any]] = []
    for who in sorted(by_official):
        if unit is not None and units.get(who) != unit:
            continue
        for row in register_rows(by_official[who], who, year, day):
            row["unit"] = units.get(who)
            rows.append(row)
    rows = [r for r in rows if status is None or r["status"] == status]
    columns = [
        ("official", "official 干部"),
        ("unit", "unit 单位"),
        ("kind", "kind 类别"),
        ("trigger_on", "event 事由日"),
        ("item_code", "item 事项"),
        ("due_on", "due 截止"),
        ("filed_on", "filed 报告日"),
        ("status", "status 状态"),
        ("findings", "findings 查核"),
    ]
    shown = [
        {**r, "findings": [f"{f['item_code']}:{f['finding']}" for f in r["findings"]]} for r in rows
    ]
    emit(
        {"year": year, "as_of": day, "at": at, "rows": rows},
        as_json,
        table(columns, shown) + f"\n{len(rows)} lines for {year} (as of {day})",
    )


# -- violations -------------------------------------------------------------------------------


@main.group()
def violations() -> None:
    """The violation register (违规记录查询)."""


@violations.command("list")
@common_options
@click.option("--unit")
@click.option("--official", "official_id")
@click.option("--grade", type=click.IntRange(1, 4))
@click.option("--status", type=click.Choice(STATUSES), help="overdue is judged at --as-of.")
def violations_list(
    *,
    ledger_dir: Path | None,
    as_json: bool,
    as_of: datetime | None,
    at: int | None,
    unit: str | None,
    official_id: str | None,
    grade: int | None,
    status: str | None,
) -> None:
    """Violations with their rectification status at --as-of."""
    day = to_day(as_of)
    with inspection(ledger_dir, at) as insp:
        docs = insp.docs("violations", {"unit": unit, "official": official_id, "grade": grade})
    rows = [
        {**{k: v for k, v in d.items() if k != "events"}, "status": violation_status(d, day)}
        for d in docs
    ]
    rows = [r for r in rows if status is None or r["status"] == status]
    columns = [
        ("violation", "violation 违规"),
        ("unit", "unit 单位"),
        ("official", "official 干部"),
        ("grade", "grade 等级"),
        ("error_code", "error 过错"),
        ("source", "source 来源"),
        ("found_on", "found 发现"),
        ("rectify_by", "rectify by 整改期限"),
        ("completed_on", "done 完成"),
        ("status", "status 状态"),
    ]
    emit(
        {"as_of": day, "at": at, "violations": rows},
        as_json,
        table(columns, rows) + f"\n{len(rows)} violations (as of {day})",
    )
