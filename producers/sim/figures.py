"""Taxpayers' monthly figures: invoice usage (发票系统) and tax burden (征管系统), with the risk
episodes that follow them.

Figures move around each taxpayer's own baseline (±10 %), so a month above 1.5× the
taxpayer's peak, a void ratio above 15 %, invoicing at the ceiling or a burden below 70 % of the
industry warning line happens only in an episode: normal episodes are answered (a risk
response by the taxpayer's manager, or a tax assessment opened), injected ones are ignored and
labelled (R08, R09) or stand as they are (R10, R11). R07 episodes are three quota-increase
matters within 90 days.
"""

from __future__ import annotations

from producers.sim.engine import Engine, Plan, make_event
from producers.sim.events import money
from producers.sim.matters import plan_matter
from producers.sim.timing import DAY, OFFICE_DAY
from producers.sim.world import Taxpayer

__all__ = ["OUTAGE_PERIODS", "plan_month"]

# months the invoice platform was down (R10 `outage_periods`): voids then are the outage's, so
# no void-ratio anomaly is injected into them
OUTAGE_PERIODS = frozenset({"2026-02"})


def _ratio(x: float) -> str:
    return f"{x:.6f}"


def plan_month(eng: Engine, tp: Taxpayer, period: str, t: int) -> None:
    """Plan `tp`'s figures for `period` (YYYY-MM), reported at `t` (office time)."""
    rng = eng.rng
    manager = eng.world.officials[tp.manager]
    fapiao = f"taxpayer/{tp.id}/fapiao"
    ctais = f"taxpayer/{tp.id}/ctais"
    subject = {"taxpayer": tp.id}
    actor = eng.actor(manager, "tax_manager")
    applicable = []
    if t >= tp.busy_until:
        applicable = ["ceiling_invoicing", "low_tax_burden_ignored"]
        if period not in OUTAGE_PERIODS:
            applicable.insert(0, "void_ratio_high")
        if len(tp.history) >= 3:
            applicable.append("invoice_surge_ignored")
        if t - tp.last_quota_change > 120 * DAY:
            applicable.append("frequent_quota_increase")
    kind = eng.choose(applicable)
    normal_episode = None
    if kind is None and t >= tp.busy_until:
        u = rng.random()
        if u < 0.01 and len(tp.history) >= 3:
            normal_episode = "invoice_surge"
        elif u < 0.02:
            normal_episode = "low_tax_burden"

    amount = tp.base_amount * rng.uniform(0.9, 1.1)
    invoices = max(1, int(tp.base_invoices * rng.uniform(0.9, 1.1)))
    if kind == "invoice_surge_ignored" or normal_episode == "invoice_surge":
        amount = max(tp.history[-12:]) * rng.uniform(1.7, 2.5)
        invoices = int(invoices * rng.uniform(1.5, 2.2))
    voided = int(invoices * rng.uniform(0.0, 0.04))
    if kind == "void_ratio_high":
        voided = int(invoices * rng.uniform(0.2, 0.4)) + 1
    at_ceiling = int(invoices * rng.uniform(0.0, 0.15))
    if kind == "ceiling_invoicing":
        at_ceiling = max(1, int(invoices * rng.uniform(0.85, 1.0)))
    amount_fen = int(amount * 100)
    plan = Plan()
    plan.event(
        t,
        make_event(
            "4403-fapiao",
            fapiao,
            "taxpayer.invoice_usage_reported",
            actor,
            subject,
            {
                "period": period,
                "industry": tp.industry.code,
                "invoices": invoices,
                "amount": money(amount_fen),
                "voided": voided,
                "reversed_amount": money(int(amount_fen * rng.uniform(0, 0.03))),
                "at_ceiling": at_ceiling,
                "max_invoice_amount": money(tp.ceiling * 100),
                "quota_quantity": tp.quota,
            },
            t,
        ),
    )
    tp.history.append(amount)
    del tp.history[:-12]

    low = tp.low_months > 0
    if kind == "low_tax_burden_ignored" or normal_episode == "low_tax_burden":
        tp.low_months = 2
        tp.low_kind = kind
        tp.busy_until = t + 70 * DAY
        low = True
    burden = tp.burden * rng.uniform(0.9, 1.1)
    if low:
        burden = tp.industry.warning_ratio * rng.uniform(0.4, 0.65)
    t2 = eng.office_at(t, 60 + 1800 * rng.random())
    plan.event(
        t2,
        make_event(
            "4403-ctais",
            ctais,
            "taxpayer.tax_burden_computed",
            actor,
            subject,
            {
                "period": period,
                "industry": tp.industry.code,
                "revenue": money(amount_fen),
                "tax_paid": money(int(amount_fen * burden)),
                "burden_ratio": _ratio(burden),
                "industry_warning_ratio": _ratio(tp.industry.warning_ratio),
            },
            t2,
        ),
    )
    if low:
        tp.low_months -= 1
        if tp.low_months == 0:  # the second low period: assess, or (injected) ignore
            if tp.low_kind is None:
                t_open = eng.office_at(t2, rng.uniform(3, 15) * OFFICE_DAY)
                plan.event(
                    t_open,
                    make_event(
                        "4403-ctais",
                        ctais,
                        "taxpayer.risk_response_recorded",
                        actor,
                        subject,
                        {
                            "period": period,
                            "trigger": "low_tax_burden",
                            "response": "desk_review",
                            "note_code": "TA-OPENED",
                        },
                        t_open,
                    ),
                )
                plan.call(t_open, lambda when: plan_matter(eng, tp, "tax_assessment", when, ""))
            else:
                due = eng.clock.due(t2, 30, "natural")  # 24:00 CST of the 30th day
                plan.label(
                    due + 1,
                    eng.label("low_tax_burden_ignored", subject, manager.id, due + 1, (ctais,)),
                )
            tp.low_kind = None

    if kind == "invoice_surge_ignored":
        due = eng.clock.working_days_later(t, 10)
        plan.label(due + 1, eng.label(kind, subject, manager.id, due + 1, (fapiao,)))
        tp.busy_until = t + 40 * DAY
    elif normal_episode == "invoice_surge":
        t_resp = eng.office_at(t, rng.uniform(1, 8) * OFFICE_DAY)
        plan.event(
            t_resp,
            make_event(
                "4403-ctais",
                ctais,
                "taxpayer.risk_response_recorded",
                actor,
                subject,
                {
                    "period": period,
                    "trigger": "invoice_surge",
                    "response": rng.choice(("desk_review", "site_check", "interview")),
                    "note_code": "SURGE-CHECKED",
                },
                t_resp,
            ),
        )
        tp.busy_until = t + 40 * DAY
    elif kind in ("void_ratio_high", "ceiling_invoicing"):
        plan.label(t, eng.label(kind, subject, manager.id, t, (fapiao,)))
    elif kind == "frequent_quota_increase":
        tp.busy_until = t + 100 * DAY
        tp.last_quota_change = t
        streams = []
        when = t
        for gap in ((0.5, 5), (12, 25), (12, 25)):
            when = eng.office_at(when, rng.uniform(*gap) * OFFICE_DAY)
            streams.append(plan_matter(eng, tp, "invoice_quota_change", when, ""))
        plan.label(when, eng.label(kind, subject, manager.id, when, tuple(s for s in streams if s)))
    if len(plan.items) > 2:
        plan.items.sort(key=lambda item: item[0])
    eng.schedule(plan)
