"""Inspector commands: `case list|show`, `official list|show`, `declarations status`,
`violations list`.

Registered on `ops.cli.main` (imported at the end of ops/cli.py). Every command first catches
the projections up with the log (a progress bar on a terminal), then answers from the read
model. Options shared by all of them:

- `--json` machine-readable output;
- `--as-of DATE` the day time-dependent statuses (due / missing / overdue) are judged at
  (default: today in China Standard Time);
- `--at SIZE` the state as of a past log size; refused (exit 2) unless a signed checkpoint
  of exactly that size is published, so a replayed answer is always tied to a signed root.

Personal data: `official show` lists field names and "committed" (or "erased"); values need
`--role pii-reader --reader OFFICIAL --purpose TEXT`, are checked against their signed
commitments before they are shown, and every such read is appended as `audit.pii_read`.

Exit codes: 0 ok, 1 tamper evidence (a personal value no longer matches its commitment),
2 usage (bad option, unknown key, no checkpoint of that size), 3 operational error.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from ledger.checkpoints import (
    key_valid_for_size,
    list_checkpoints,
    read_checkpoint,
    signing_keys,
)
from ledger.ledger import Ledger
from ledger.log_reader import LogReader
from ledger.note import NoteError
from ops.cli import _emit_json, _open, ledger_option, main, progress_bar
from projections.base import Doc
from projections.case_history import case_state, conformance_at, due_day, durations, total
from projections.read_model import ReadModel, read_model_url
from projections.registry import all_projections
from projections.runner import ProjectionRunner

__all__ = [
    "Inspection",
    "as_of_today",
    "case",
    "case_list",
    "case_show",
    "common_options",
    "emit",
    "inspection",
    "official",
    "official_list",
    "table",
    "to_day",
]

CST = timedelta(hours=8)


def as_of_today() -> str:
    """Today's date in China Standard Time (the default `--as-of`)."""
    return (datetime.now(UTC) + CST).date().isoformat()


class Inspection:
    """A ledger with its projections caught up, read now or as of a checkpointed size."""

    def __init__(self, ledger: Ledger, runner: ProjectionRunner, at: int | None) -> None:
        self.ledger = ledger
        self.runner = runner
        self.at = at

    def doc(self, name: str, key: str) -> Doc | None:
        if self.at is None:
            return self.runner.doc(name, key)
        return self.runner.doc_at(name, key, self.at)

    def docs(self, name: str, where: dict[str, str | int | None] | None = None) -> list[Doc]:
        """Documents matching `where` (index column = value); as of `--at` when given."""
        where = {k: v for k, v in (where or {}).items() if v is not None}
        if self.at is None:
            return [doc for _, doc in self.runner.query(name, where)]
        proj = self.runner.projections[name]
        found = []
        for key, _ in self.runner.query(name):
            doc = self.runner.doc_at(name, key, self.at)
            if doc is None:
                continue
            index = proj.index(key, doc)
            if all(index.get(column) == value for column, value in where.items()):
                found.append(doc)
        return found


def _check_at(ledger: Ledger, at: int) -> None:
    """Refuse `--at SIZE` unless a checkpoint of exactly SIZE is published and signed."""
    sizes = list_checkpoints(ledger.directory)
    if at not in sizes:
        near = ", ".join(str(s) for s in sizes[-5:]) or "none yet (`neikong seal --once`)"
        raise click.UsageError(
            f"--at {at}: no signed checkpoint of log size {at}; published sizes: {near}"
        )
    try:
        cp = read_checkpoint(ledger.directory, at)
    except (NoteError, OSError) as exc:
        raise click.UsageError(f"--at {at}: checkpoints/{at} is unreadable: {exc}") from exc
    keys = signing_keys(cp.note, ledger.config.origin, ledger.registry)
    if not any(key_valid_for_size(k, at) for k in keys):
        raise click.UsageError(
            f"--at {at}: checkpoints/{at} is not signed by a checkpoint key valid at that "
            "size; run `neikong checkpoints` and `neikong verify`"
        )


@contextmanager
def inspection(ledger_dir: Path | None, at: int | None) -> Iterator[Inspection]:
    """Open the ledger, check `--at`, catch the projections up, yield an `Inspection`."""
    with _open(ledger_dir) as ledger:
        if at is not None:
            _check_at(ledger, at)
        model = ReadModel(read_model_url(ledger.directory, ledger.config.store_url))
        reader = LogReader(ledger.store.config)
        try:
            runner = ProjectionRunner(reader, model, all_projections())
            behind = reader.max_position() - min(
                model.tracking().get(n, (0, 0))[1] for n in runner.projections
            )
            with progress_bar(max(behind, 0), "projections") as update:
                runner.catch_up(progress=update)
            yield Inspection(ledger, runner, at)
        finally:
            reader.conn.close()
            model.close()


# -- output -----------------------------------------------------------------------------------


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(_cell(v) for v in value) or "-"
    return str(value)


def table(columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]]) -> str:
    """An aligned text table; `columns` are (key, header) pairs, headers bilingual."""
    cells = [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    headers = [label for _, label in columns]
    widths = [max([_width(h)] + [_width(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v + " " * (w - _width(v)) for v, w in zip(values, widths, strict=True)
        ).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def emit(value: Any, as_json: bool, text: str) -> None:
    if as_json:
        _emit_json(value)
    else:
        click.echo(text)


# -- shared options ---------------------------------------------------------------------------


def common_options(func: Any) -> Any:
    for option in reversed(
        [
            ledger_option,
            click.option("--json", "as_json", is_flag=True, help="Machine-readable output."),
            click.option(
                "--as-of",
                "as_of",
                type=click.DateTime(["%Y-%m-%d"]),
                default=None,
                help="Judge due / missing / overdue at this date (default: today, CST).",
            ),
            click.option(
                "--at",
                "at",
                type=click.IntRange(1),
                default=None,
                help="Show the state at this log size (needs a signed checkpoint of it).",
            ),
        ]
    ):
        func = option(func)
    return func


def to_day(as_of: datetime | None) -> str:
    return as_of.date().isoformat() if as_of is not None else as_of_today()


# -- case -------------------------------------------------------------------------------------

CASE_COLUMNS = [
    ("matter", "matter 事项"),
    ("matter_type", "type 类型"),
    ("unit", "unit 单位"),
    ("state", "state 状态"),
    ("accepted_on", "accepted 受理"),
    ("due_day", "due 期限"),
    ("handler", "handler 承办人"),
    ("findings", "findings 问题"),
]


def _case_row(doc: Doc, as_of: str) -> dict[str, Any]:
    return {
        "matter": doc["matter"],
        "matter_type": doc["matter_type"],
        "unit": doc["unit"],
        "state": case_state(doc, as_of),
        "accepted_on": doc["accepted_on"],
        "due_day": due_day(doc),
        "handler": doc["handler"],
        "findings": len(conformance_at(doc, as_of)),
    }


@main.group()
def case() -> None:
    """Case histories of authority matters (权力事项): list and replay."""


@case.command("list")
@common_options
@click.option("--unit", help="Only this unit's matters.")
@click.option("--type", "matter_type", help="Only this matter type (licence, penalty, …).")
@click.option(
    "--state",
    type=click.Choice(["open", "overdue", "concluded", "withdrawn"]),
    help="Only matters in this state (overdue judged at --as-of).",
)
@click.option("--handler", help="Only matters this official handles.")
@click.option("--limit", type=click.IntRange(1), default=None)
def case_list(
    *,
    ledger_dir: Path | None,
    as_json: bool,
    as_of: datetime | None,
    at: int | None,
    unit: str | None,
    matter_type: str | None,
    state: str | None,
    handler: str | None,
    limit: int | None,
) -> None:
    """List matters with their state at --as-of (案件列表)."""
    day = to_day(as_of)
    with inspection(ledger_dir, at) as insp:
        docs = insp.docs(
            "case_history", {"unit": unit, "matter_type": matter_type, "handler": handler}
        )
    rows = [_case_row(d, day) for d in docs]
    rows = [r for r in rows if state is None or r["state"] == state][:limit]
    emit(
        {"as_of": day, "at": at, "cases": rows},
        as_json,
        table(CASE_COLUMNS, rows) + f"\n{len(rows)} matters (as of {day})",
    )


@case.command("show")
@common_options
@click.argument("stream")
def case_show(
    *, ledger_dir: Path | None, as_json: bool, as_of: datetime | None, at: int | None, stream: str
) -> None:
    """One matter's timeline, actors, step durations and conformance findings (案件履历)."""
    day = to_day(as_of)
    with inspection(ledger_dir, at) as insp:
        doc = insp.doc("case_history", stream)
    if doc is None:
        raise click.BadParameter(f"no matter {stream!r} in the log", param_hint="STREAM")
    summary = _case_row(doc, day)
    if as_json:
        _emit_json(
            {
                "as_of": day,
                "at": at,
                **doc,
                "durations": durations(doc),
                "total": total(doc),
                "state_as_of": summary["state"],
                "conformance_as_of": conformance_at(doc, day),
            }
        )
        return
    click.echo(table([("k", "field 字段"), ("v", "value 值")], _pairs(summary)))
    click.echo("\ntimeline 时间线")
    click.echo(
        table(
            [
                ("seq", "seq 序号"),
                ("occurred_at", "at 时间"),
                ("type", "type 类型"),
                ("step", "step 环节"),
                ("official", "actor 经办"),
                ("role", "role 角色"),
                ("position", "pos 位置"),
                ("event_id", "event 事件"),
            ],
            doc["timeline"],
        )
    )
    click.echo("\nactors 参与人")
    roles = [{"role": r, "officials": o} for r, o in sorted(doc["actors"].items())]
    click.echo(table([("role", "role 角色"), ("officials", "officials 人员")], roles))
    click.echo("\ndurations 用时")
    click.echo(
        table(
            [("step", "step 环节"), ("days", "days 天数"), ("calendar", "calendar 日历")],
            durations(doc),
        )
    )
    t = total(doc)
    if t:
        click.echo(
            f"total 总用时: {_cell(t['days'])} {t['calendar']} days, limit 时限 "
            f"{_cell(t['limit_days'])} (last day {_cell(t['due_day'])}), "
            f"within limit: {_cell(t['within_limit'])}"
        )
    for decision in doc["collective_decisions"]:
        click.echo(
            f"collective decision 集体决策 {decision['held_on']}: {decision['outcome']}, "
            f"{len(decision['participants'])} of {decision['leadership_size']} present"
        )
    findings = conformance_at(doc, day)
    click.echo(f"\nconformance findings 流程问题 (as of {day}): {len(findings)}")
    for finding in findings:
        click.echo(f"  {finding['kind']} step={_cell(finding['step'])} seq={_cell(finding['seq'])}")
        click.echo(f"    {finding['detail']}")


def _pairs(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"k": k, "v": v} for k, v in values.items()]


# -- officials --------------------------------------------------------------------------------


@main.group()
def official() -> None:
    """Integrity files (廉政档案) of officials."""


@official.command("list")
@common_options
@click.option("--unit", help="Only officials of this unit.")
def official_list(
    *,
    ledger_dir: Path | None,
    as_json: bool,
    as_of: datetime | None,
    at: int | None,
    unit: str | None,
) -> None:
    """Officials with an integrity file (干部列表)."""
    with inspection(ledger_dir, at) as insp:
        docs = insp.docs("integrity_file", {"unit": unit})
    rows = [
        {
            "official": d["official"],
            "unit": d["unit"],
            "post": d["post"],
            "rank": d["rank"],
            "reportable": d["reportable"],
            "violations": len(d["violations"]),
            "sanctions": len(d["sanctions"]),
            "warnings": len(d["warnings"]),
        }
        for d in docs
    ]
    columns = [
        ("official", "official 干部"),
        ("unit", "unit 单位"),
        ("post", "post 职务"),
        ("rank", "rank 职级"),
        ("reportable", "reports 报告"),
        ("violations", "violations 违规"),
        ("sanctions", "sanctions 处分"),
        ("warnings", "warnings 预警"),
    ]
    emit({"at": at, "officials": rows}, as_json, table(columns, rows) + f"\n{len(rows)} officials")
