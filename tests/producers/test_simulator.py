"""The simulated tax office: determinism, catalogue coverage, schema and key-scope validity,
conformance of clean matters to their flows, and every anomaly kind with its evidence."""

from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.envelope import Envelope, SignedRecord
from ledger.flows import load_flows
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.schema import SchemaCatalogue
from ledger.transport import InProcessChannel
from ledger.workdays import default_calendar
from ops.cli import main
from ops.pipeline import emit_simulated, enrol_demo_producers, run_simulation
from producers.producer import Producer
from producers.simulator import (
    KINDS,
    SYSTEMS,
    Label,
    SimAnomalies,
    SimConfigError,
    SimEvent,
    producer_scope,
    simulate,
)
from projections.conformance import check_matter

FLOWS = load_flows()
PRODUCER_PREFIXES = (
    "matter.",
    "taxpayer.",
    "decision.",
    "personnel.",
    "declaration.",
    "complaint.",
    "violation.",
)


def _run(seed: int, events: int, **kw: Any) -> tuple[list[SimEvent], list[Label]]:
    labels: list[Label] = []
    sims = list(simulate(seed, events, labels=labels.append, **kw))
    return sims, labels


def _emit(sims: list[SimEvent], seed: int = 1) -> list[bytes]:
    channel = InProcessChannel()
    rng = random.Random(seed)
    keys = random.Random(99)
    producers = {
        s: Producer(
            s, Signer(Ed25519PrivateKey.from_private_bytes(keys.randbytes(32))), channel, rng=rng
        )
        for s in SYSTEMS
    }
    for _ in emit_simulated(producers, sims, seed=seed):
        pass
    return list(channel.poll(len(channel)))


@pytest.fixture(scope="module")
def run10k() -> tuple[list[SimEvent], list[Label]]:
    return _run(11, 10_000)


@pytest.fixture(scope="module")
def clean10k() -> tuple[list[SimEvent], list[Label]]:
    return _run(12, 10_000, anomalies=SimAnomalies.none())


# -- determinism --------------------------------------------------------------------------------


def test_same_seed_same_events_ids_and_labels() -> None:
    a, la = _run(5, 3000)
    b, lb = _run(5, 3000)
    assert a == b
    assert la == lb
    assert _emit(a) == _emit(b)  # signed records, event ids and PII commitments included
    c, _ = _run(6, 3000)
    assert c != a


# -- coverage, schema, scope ----------------------------------------------------------------------


def test_every_producer_type_of_the_catalogue_appears_in_10k(run10k) -> None:
    sims, _ = run10k
    assert len(sims) == 10_000
    produced = {t for t in SchemaCatalogue().types if t.startswith(PRODUCER_PREFIXES)}
    seen = Counter(s.type for s in sims)
    assert produced - set(seen) == set()
    assert set(seen) <= produced


def test_every_event_is_schema_valid_and_in_its_key_scope(run10k) -> None:
    sims, _ = run10k
    catalogue = SchemaCatalogue()
    scopes = {s: producer_scope(s) for s in SYSTEMS}
    records = _emit(sims)
    assert len(records) == len(sims)
    last: dict[str, str] = {}
    with_pii = 0
    for raw in records:
        record = SignedRecord.decode(raw)
        body = orjson.loads(record.body)
        catalogue.validate(body)
        envelope = Envelope.from_json(body)
        assert scopes[body["producer"]["system"]].allows(envelope) is None, body["stream"]
        assert body["occurred_at"] >= last.get(body["stream"], "")  # time order per stream
        last[body["stream"]] = body["occurred_at"]
        pii = body.get("pii", {})
        named = {f for item in body["data"].get("items", []) for f in item.get("pii_fields", [])}
        assert named == set(pii)
        with_pii += bool(pii)
    assert with_pii > 10


def test_personal_values_never_in_data(run10k) -> None:
    sims, _ = run10k
    for sim in sims:
        if not sim.pii:
            continue
        text = orjson.dumps(sim.data).decode()
        for value in sim.pii.values():
            assert str(value) not in text, (sim.type, value)


def test_references_resolve_to_the_referenced_events(run10k) -> None:
    sims, _ = run10k
    bodies = [orjson.loads(SignedRecord.decode(r).body) for r in _emit(sims)]
    ids = {b["event_id"]: b for b in bodies}
    refs = [(b, "decision_ref") for b in bodies if "decision_ref" in b["data"]]
    refs += [(b, "report_ref") for b in bodies if "report_ref" in b["data"]]
    assert refs
    for body, name in refs:
        target = ids[body["data"][name]]
        assert target["occurred_at"] <= body["occurred_at"]
        if name == "decision_ref":
            assert body["stream"] in target["data"]["matters"]
        else:
            assert target["type"] == "declaration.personal_matters_reported"


def test_working_hours_and_days() -> None:
    calendar = default_calendar()
    sims, _ = _run(3, 4000)
    for sim in sims:
        moment = datetime.strptime(sim.occurred_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        local = calendar.local_date(moment)
        assert calendar.is_working_day(local), sim
        minutes = (moment.hour + 8) % 24 * 60 + moment.minute
        assert 8 * 60 + 30 <= minutes < 17 * 60 + 30, sim


# -- flows --------------------------------------------------------------------------------


def _streams(sims: list[SimEvent]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sim in sims:
        events = out[sim.stream]
        events.append(
            {
                "subject": sim.subject,
                "type": sim.type,
                "stream_seq": len(events) + 1,
                "occurred_at": sim.occurred_at,
                "actor": sim.actor,
                "data": sim.data,
            }
        )
    return out


def test_clean_matters_conform_to_their_flows(clean10k) -> None:
    sims, labels = clean10k
    assert labels == []
    flows = load_flows()
    calendar = default_calendar()
    checked = Counter()
    for stream, events in _streams(sims).items():
        if not stream.startswith("matter/"):
            continue
        findings = check_matter(events, flows, calendar)
        assert findings == [], (stream, findings)
        checked[events[0]["data"]["matter_type"]] += 1
    assert set(checked) == set(flows)  # every flow exercised
    assert sum(checked.values()) > 500


def test_rate_zero_gives_no_labels() -> None:
    _, labels = _run(4, 6000, anomalies=SimAnomalies.none())
    assert labels == []
    _, labels = _run(4, 6000, anomalies=SimAnomalies(rate=0.0, kinds={"approval_skipped": 0}))
    assert labels == []


def test_default_rate_labels_about_two_percent(run10k) -> None:
    sims, labels = run10k
    matters = sum(1 for s in sims if s.type == "matter.accepted")
    matter_labels = sum(1 for lb in labels if "matter" in lb.key)
    assert 0.005 * matters <= matter_labels <= 0.05 * matters
    assert {lb.kind for lb in labels} <= set(KINDS)


# -- each anomaly kind, forced -------------------------------------------------------------

# kind -> (events, start) long enough for the obligation to arise and its deadline to pass
RUNS: dict[str, int] = {
    "annual_report_missing": 3000,
    "change_not_reported": 4000,
    "concealment_found": 6000,
    "discretion_outlier": 3000,
    "frequent_quota_increase": 6000,
    "incompetent_votes": 3000,
    "initial_report_missing": 14000,
    "integrity_file_stale": 6000,
    "invoice_surge_ignored": 6000,
    "low_tax_burden_ignored": 6000,
    "penalty_case_overdue": 6000,
    "rectification_overdue": 4000,
}


def _dec(text: str) -> Decimal:
    return Decimal(text)


def _by_type(events: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == type_]


def _steps(events: list[dict[str, Any]]) -> list[str]:
    dedicated = {
        "matter.legal_review_completed": "legal_review",
        "matter.penalty_notice_served": "penalty_notice",
        "matter.penalty_decided": "penalty_decided",
    }
    return [
        dedicated.get(e["type"]) or e["data"].get("step")
        for e in events
        if e["type"] == "matter.step_completed" or e["type"] in dedicated
    ]


def _actor_of(events: list[dict[str, Any]], step: str) -> str:
    return next(
        e["actor"]["official"]
        for e in events
        if e["type"] == "matter.step_completed" and e["data"]["step"] == step
    )


TIER = {
    "first_corrected": (Decimal("0.5"), Decimal("0.5")),
    "uncooperative": (Decimal("0.5"), Decimal("1")),
    "serious": (Decimal("1"), Decimal("5")),
}


def _check(kind: str, label: Label, s: dict[str, list[dict[str, Any]]]) -> None:
    key = label.key
    main_stream = label.evidence[0]
    ev = s.get(main_stream, [])
    flows = FLOWS
    if "matter" in key:
        assert key["matter"] == main_stream
        assert ev[0]["type"] == "matter.accepted"
        accepted = ev[0]["data"]
    steps = _steps(ev)
    if kind == "approval_skipped":
        assert "approve" not in steps
        assert ev[-1]["type"] == "matter.concluded"
    elif kind == "same_person_handles_and_approves":
        assert ev[0]["actor"]["official"] == _actor_of(ev, "approve") == label.official
    elif kind in ("processing_deadline", "refund_late"):
        assert label.at > accepted["due_at"]
        if ev[-1]["type"] == "matter.concluded":
            assert ev[-1]["occurred_at"] > accepted["due_at"]
    elif kind == "step_out_of_order":
        flow = flows[accepted["matter_type"]]
        assert any(
            later in (flow.step(st).after if flow.step(st) else ())
            for i, st in enumerate(steps)
            for later in steps[i + 1 :]
        )
    elif kind == "major_matter_few_deciders":
        assert accepted["major"] is True
        decisions = [e for st in label.evidence[1:] for e in s[st]]
        assert all(len(d["data"]["participants"]) <= 2 for d in decisions)
    elif kind == "major_enforcement_without_legal_review":
        decided = _by_type(ev, "matter.penalty_decided")[0]
        assert decided["data"]["major"] is True
        assert "legal_review" not in steps
    elif kind == "refund_fast_track":
        assert "refund_check" not in steps
        assert "refund_pay" in steps
    elif kind == "penalty_outside_tier":
        d = _by_type(ev, "matter.penalty_decided")[0]["data"]
        lo, hi = TIER[d["circumstances"]]
        assert not lo <= _dec(d["ratio"]) <= hi
    elif kind == "penalty_no_reason":
        assert _by_type(ev, "matter.penalty_decided")[0]["data"]["discretion_reason"] == ""
    elif kind == "hearing_right_violation":
        notice = _by_type(ev, "matter.penalty_notice_served")[0]["data"]
        threshold = 2000 if notice["party_kind"] == "individual" else 10000
        assert notice["hearing_rights"] is False
        assert _dec(notice["proposed_fine"]) >= threshold
    elif kind == "penalty_case_overdue":
        decided = _by_type(ev, "matter.penalty_decided")
        assert label.at > accepted["due_at"]
        assert not decided or decided[0]["occurred_at"] > accepted["due_at"]
    elif kind == "penalty_without_review":
        assert "case_review" not in steps
        assert "penalty_decided" in steps
    elif kind == "withdrawn_without_approval":
        assert ev[-1]["type"] == "matter.withdrawn"
        assert ev[-1]["data"]["approved_by"] is None
    elif kind == "reduced_without_approval":
        amended = _by_type(ev, "matter.amended")[0]["data"]
        assert amended["approved_by"] is None
        assert _dec(amended["after"]) < _dec(amended["before"])
    elif kind == "frequent_quota_increase":
        accepted_at = sorted(s[st][0]["occurred_at"] for st in label.evidence)
        assert len(accepted_at) >= 3
        assert all(
            s[st][0]["data"]["matter_type"] == "invoice_quota_change" for st in label.evidence
        )
        first = datetime.fromisoformat(accepted_at[0].replace("Z", "+00:00"))
        third = datetime.fromisoformat(accepted_at[2].replace("Z", "+00:00"))
        assert (third - first).days <= 90
    elif kind == "invoice_surge_ignored":
        amounts = [_dec(e["data"]["amount"]) for e in ev]
        surge = next(i for i in range(1, len(amounts)) if amounts[i] > 3 * max(amounts[:i]) / 2)
        period = ev[surge]["data"]["period"]
        responses = s.get(f"taxpayer/{key['taxpayer']}/ctais", [])
        assert not [
            r
            for r in _by_type(responses, "taxpayer.risk_response_recorded")
            if r["data"]["period"] == period
        ]
    elif kind == "low_tax_burden_ignored":
        low = [
            _dec(e["data"]["burden_ratio"])
            < Decimal("0.7") * _dec(e["data"]["industry_warning_ratio"])
            for e in _by_type(ev, "taxpayer.tax_burden_computed")
        ]
        assert any(a and b for a, b in itertools.pairwise(low))
        assessments = [
            st
            for st, e in s.items()
            if st.startswith("matter/")
            and e[0]["data"]["matter_type"] == "tax_assessment"
            and e[0]["subject"].get("taxpayer") == key["taxpayer"]
            and ev[0]["occurred_at"] < e[0]["occurred_at"] < label.at
        ]
        assert assessments == []
    elif kind == "void_ratio_high":
        assert any(e["data"]["voided"] > Decimal("0.15") * e["data"]["invoices"] for e in ev)
    elif kind == "ceiling_invoicing":
        assert any(e["data"]["at_ceiling"] >= Decimal("0.8") * e["data"]["invoices"] for e in ev)
    elif kind == "discretion_outlier":
        assert len(label.evidence) == 5
        for st in label.evidence:
            d = _by_type(s[st], "matter.penalty_decided")[0]
            assert d["actor"]["official"] == label.official
            assert _dec(d["data"]["ratio"]) == TIER[d["data"]["circumstances"]][0]
    elif kind == "annual_report_missing":
        year = int(label.at[:4]) - 1
        assert not [
            e
            for e in ev
            if e["type"] == "declaration.personal_matters_reported"
            and e["data"]["kind"] == "annual"
            and e["data"]["year"] == year
        ]
    elif kind == "change_not_reported":
        observed = _by_type(ev, "declaration.matter_observed")
        assert observed
        changes = [
            e
            for e in ev
            if e["type"] == "declaration.personal_matters_reported"
            and e["data"]["kind"] == "change"
        ]
        assert len(changes) < len(observed)
    elif kind == "concealment_found":
        found = [
            f
            for e in _by_type(ev, "declaration.verification_completed")
            for f in e["data"]["findings"]
            if f["finding"] == "concealment"
        ]
        assert found
    elif kind == "initial_report_missing":
        appointed = _by_type(ev, "personnel.appointed")
        assert any(a["data"]["reportable"] for a in appointed)
        declarations = s.get(label.evidence[1], [])
        assert not [
            e
            for e in declarations
            if e["type"] == "declaration.personal_matters_reported"
            and e["data"]["kind"] == "initial"
            and e["occurred_at"] > appointed[-1]["occurred_at"]
        ]
    elif kind == "integrity_file_stale":
        appointed = _by_type(ev, "personnel.appointed")[-1]
        assert not [
            e
            for e in _by_type(ev, "personnel.integrity_file_updated")
            if e["occurred_at"] > appointed["occurred_at"] and e["occurred_at"] < label.at
        ]
    elif kind == "incompetent_votes":
        votes = _by_type(ev, "personnel.assessment_tallied")[-1]["data"]["votes"]
        assert 3 * votes["incompetent"] >= sum(votes.values())
    elif kind == "rectification_overdue":
        ordered = _by_type(ev, "violation.rectification_ordered")[0]["data"]["rectify_by"]
        done = _by_type(ev, "violation.rectification_completed")
        assert not done or done[0]["data"]["completed_on"] > ordered
    else:  # pragma: no cover - a new kind needs its evidence check here
        raise AssertionError(f"no evidence check for {kind}")


def _is_refund(label: Any, streams: dict[str, list[dict[str, Any]]]) -> bool | None:
    if "matter" not in label.key:
        return False
    events = streams.get(label.key["matter"])
    if not events or events[0]["type"] != "matter.accepted":
        return None
    return bool(events[0]["data"]["matter_type"].startswith("refund"))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_forced_kind_is_labelled_with_its_evidence(kind: str) -> None:
    sims, labels = _run(21, RUNS.get(kind, 5000), anomalies=SimAnomalies.only(kind))
    assert labels, f"{kind}: no label"
    assert {lb.kind for lb in labels} == {kind}
    streams = _streams(sims)
    for label in labels:
        assert label.rules[: len(KINDS[kind].rules)] == KINDS[kind].rules
        refund = _is_refund(label, streams)  # a refund's handler approving is R12b too
        extra = {("R12",)} if kind == "same_person_handles_and_approves" and refund else {()}
        if refund is None:  # the matter began before the events kept
            extra = {(), ("R12",)}
        assert label.rules[len(KINDS[kind].rules) :] in extra
        assert label.rules[0].startswith("R")
        assert len(label.key) == 1
        assert set(label.key) <= {"matter", "official", "taxpayer"}
        assert label.official is None or label.official.startswith("4403-")
        if label.evidence[0] in streams:
            _check(kind, label, streams)


def test_matter_anomalies_make_the_conformance_checker_object() -> None:
    flows, calendar = load_flows(), default_calendar()
    expected = {
        "approval_skipped": "missing_step",
        "step_out_of_order": "out_of_order",
        "same_person_handles_and_approves": "duty_conflict",
        "processing_deadline": "deadline_exceeded",
    }
    for kind, finding in expected.items():
        sims, labels = _run(22, 3000, anomalies=SimAnomalies.only(kind))
        streams = _streams(sims)
        judged = [lb for lb in labels if lb.key["matter"] in streams]
        assert judged
        for label in judged:
            kinds = {
                f.kind
                for f in check_matter(streams[label.key["matter"]], flows, calendar, as_of=label.at)
            }
            assert finding in kinds, (kind, label.key, kinds)


# -- configuration -------------------------------------------------------------------------------


def test_anomaly_configuration_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("rate: 0.05\nkinds: {approval_skipped: 0.5, void_ratio_high: 0}\n")
    config = SimAnomalies.from_yaml(path)
    assert config.rate == 0.05
    assert config.kinds == {"approval_skipped": 0.5, "void_ratio_high": 0.0}
    path.write_text("kinds: {no_such_kind: 0.1}\n")
    with pytest.raises(SimConfigError, match="unknown anomaly kind"):
        SimAnomalies.from_yaml(path)
    with pytest.raises(SimConfigError, match="outside"):
        SimAnomalies(rate=1.5)


def test_choose_respects_rates() -> None:
    rng = random.Random(1)
    assert SimAnomalies.none().choose(rng, ["approval_skipped"]) is None
    forced = SimAnomalies.only("approval_skipped")
    assert all(
        forced.choose(rng, ["void_ratio_high", "approval_skipped"]) == "approval_skipped"
        for _ in range(100)
    )
    shared = SimAnomalies(rate=0.5)
    got = Counter(shared.choose(rng, ["a_kind", "b_kind"]) for _ in range(4000))
    assert 900 < got["a_kind"] < 1100
    assert 900 < got["b_kind"] < 1100


# -- through the pipeline and the CLI ------------------------------------------------------------


def test_run_simulation_writes_labels_and_opens_pii(tmp_path: Path) -> None:
    with Ledger.init(tmp_path / "l") as ledger:
        signers = enrol_demo_producers(ledger)
        with ledger.pii_store() as pii:
            stats = run_simulation(
                ledger,
                signers,
                events=3000,
                seed=2,
                workers=0,
                anomalies=SimAnomalies(rate=0.2),
                pii_store=pii,
            )
            assert stats.outcomes == {"appended": 3000}
            assert ledger.store.dead_letter_counts() == {}
            rows = pii.fields_of("4403-00001") + [
                f for o in ("4403-00002", "4403-00003", "4403-00004") for f in pii.fields_of(o)
            ]
            assert rows
            value = pii.get(rows[0][0])
            assert value is not None
            assert value.field == rows[0][1]
    lines = (tmp_path / "l" / "labels.jsonl").read_bytes().splitlines()
    assert len(lines) == len(stats.labels) > 0
    first = orjson.loads(lines[0])
    assert set(first) == {"kind", "rules", "key", "official", "at", "evidence"}


def test_cli_simulate(tmp_path: Path) -> None:
    directory = tmp_path / "sim"
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "simulate",
            "--ledger",
            str(directory),
            "--events",
            "2500",
            "--seed",
            "4",
            "--anomaly-rate",
            "0.1",
            "--workers",
            "0",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.output)
    assert summary["events"] == 2500
    assert summary["outcomes"] == {"appended": 2500}
    assert sum(summary["events_by_type"].values()) == 2500
    labels = (directory / "labels.jsonl").read_bytes().splitlines()
    assert sum(summary["anomalies_by_kind"].values()) == len(labels)
    again = runner.invoke(main, ["simulate", "--ledger", str(directory), "--events", "10"])
    assert again.exit_code == 3
    assert "already holds a simulated run" in again.output
    config = tmp_path / "a.yaml"
    config.write_text("rate: 0\nkinds: {void_ratio_high: 1}\n")
    result = runner.invoke(
        main,
        [
            "simulate",
            "--ledger",
            str(directory),
            "--fresh",
            "--events",
            "1500",
            "--anomalies",
            str(config),
            "--workers",
            "0",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert set(orjson.loads(result.output)["anomalies_by_kind"]) == {"void_ratio_high"}
