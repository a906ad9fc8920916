"""The simulated tax office: bureaus, units, officials with roles and ranks, leadership teams,
and taxpayers by industry with their own invoice and tax-burden baselines.

One bureau (区局) per ~2,000 taxpayers, all in region 4403. Each bureau has a leadership team
(局领导班子: the head and deputies, who decide at approval level 3 and sit in collective
decisions), tax-source management branches (税源管理分局) that take the taxpayers' matters, an
inspection bureau (稽查局: investigators, case reviewers, enforcement), a legal unit (法制科),
and the personnel (人事), discipline (纪检) and inspection-and-audit (督察内审) units that
produce the personnel, complaint and violation records. Officials of county-deputy rank and
above are reportable (they file personal-matters reports, DOMAIN.md §4).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["INDUSTRIES", "Bureau", "Industry", "Official", "Taxpayer", "Unit", "World"]

REGION = "4403"


@dataclass(frozen=True)
class Industry:
    code: str
    warning_ratio: float  # 行业预警税负率
    monthly_amount: tuple[int, int]  # invoiced amount per month, 元
    invoices: tuple[int, int]  # invoices per month


INDUSTRIES: tuple[Industry, ...] = (
    Industry("wholesale", 0.010, (200_000, 8_000_000), (40, 600)),
    Industry("retail", 0.015, (50_000, 1_500_000), (80, 1500)),
    Industry("manufacturing", 0.025, (300_000, 20_000_000), (30, 400)),
    Industry("construction", 0.030, (500_000, 30_000_000), (5, 60)),
    Industry("software", 0.020, (100_000, 5_000_000), (10, 120)),
    Industry("catering", 0.030, (30_000, 600_000), (100, 2000)),
    Industry("transport", 0.025, (80_000, 3_000_000), (20, 300)),
    Industry("chinese_medicine", 0.016, (60_000, 2_000_000), (20, 200)),
    Industry("starch_processing", 0.018, (100_000, 4_000_000), (15, 150)),
)

CEILINGS = (10_000, 100_000, 1_000_000, 10_000_000)  # 最高开票限额 tiers, 元
QUOTAS = (25, 50, 100, 250, 500)


@dataclass
class Official:
    id: str
    unit: str
    bureau: int
    rank: str
    post: str
    role: str  # the role this official acts in (handler, reviewer, approver, …)
    reportable: bool
    level: int = 0  # approval level for approvers (1 section, 2 branch, 3 bureau head)
    appointed_days_ago: int = 0


@dataclass
class Taxpayer:
    id: str
    industry: Industry
    party_kind: str  # entity | individual
    unit: str  # the tax-source branch that manages it
    manager: str  # 税收管理员 (an official id)
    bureau: int
    base_amount: float
    base_invoices: int
    burden: float  # its usual tax-burden ratio
    ceiling: int
    quota: int
    history: list[float] = field(default_factory=list)  # monthly amounts, newest last
    last_quota_change: int = -(10**12)  # epoch seconds
    low_months: int = 0
    low_kind: str | None = None
    busy_until: int = 0  # an anomaly or risk episode is running until then


@dataclass
class Unit:
    id: str
    bureau: int
    kind: str  # leadership | branch | inspection | legal | personnel | discipline | audit | office
    zh: str
    members: list[Official] = field(default_factory=list)
    _roles: dict[str, list[Official]] = field(default_factory=dict)

    def by_role(self, role: str) -> list[Official]:
        """Members acting in `role` (members and roles are fixed once the world is built)."""
        found = self._roles.get(role)
        if found is None:
            found = self._roles[role] = [o for o in self.members if o.role == role]
        return found


@dataclass
class Bureau:
    index: int
    office_unit: str  # the bureau office, owner of collective-decision streams
    leadership: list[Official]
    branches: list[Unit]
    inspection: Unit
    legal: Unit
    personnel: Unit
    discipline: Unit
    audit: Unit


class World:
    """All bureaus, officials and taxpayers of one run; built from the run's generator."""

    def __init__(self, rng: random.Random, taxpayers: int) -> None:
        self.rng = rng
        self.officials: dict[str, Official] = {}
        self.units: dict[str, Unit] = {}
        self.bureaus: list[Bureau] = []
        self.taxpayers: list[Taxpayer] = []
        per_bureau = 2000
        count = max(1, -(-taxpayers // per_bureau))
        for b in range(count):
            n = min(per_bureau, taxpayers - b * per_bureau)
            self._bureau(b, max(n, 1))

    # -- construction ----------------------------------------------------------------------

    def _official(self, unit: Unit, rank: str, post: str, role: str, level: int = 0) -> Official:
        n = len(self.officials) + 1
        reportable = rank in ("county_deputy", "county_chief", "bureau_deputy", "bureau_chief")
        o = Official(
            f"{REGION}-{n:05d}",
            unit.id,
            unit.bureau,
            rank,
            post,
            role,
            reportable,
            level,
            self.rng.randrange(30, 3000),
        )
        self.officials[o.id] = o
        unit.members.append(o)
        return o

    def _unit(self, b: int, u: int, kind: str, zh: str) -> Unit:
        unit = Unit(f"{REGION}-{b + 1:02d}{u:02d}", b, kind, zh)
        self.units[unit.id] = unit
        return unit

    def _bureau(self, b: int, taxpayers: int) -> None:
        rng = self.rng
        office = self._unit(b, 0, "leadership", "局领导班子")
        leaders = [self._official(office, "county_chief", "局长", "approver", 3)]
        for post in ("副局长", "副局长", "副局长", "纪检组长"):
            leaders.append(self._official(office, "county_deputy", post, "approver", 3))
        branches = []
        for i in range(max(2, taxpayers // 500)):
            unit = self._unit(b, 1 + i, "branch", f"税源管理{i + 1}分局")
            self._official(unit, "county_deputy", "分局长", "approver", 2)
            self._official(unit, "section_chief", "副分局长", "approver", 1)
            for _ in range(4):
                self._official(unit, "section_deputy", "审核岗", "reviewer")
            for _ in range(max(4, min(taxpayers, 500) // 60)):
                self._official(unit, "staff", "税收管理员", "handler")
            branches.append(unit)
        inspection = self._unit(b, 20, "inspection", "稽查局")
        self._official(inspection, "county_deputy", "稽查局长", "approver", 2)
        for _ in range(6):
            self._official(inspection, "staff", "检查员", "investigator")
        for _ in range(3):
            self._official(inspection, "section_deputy", "审理员", "case_reviewer")
        for _ in range(3):
            self._official(inspection, "staff", "执行员", "handler")
        legal = self._unit(b, 21, "legal", "法制科")
        self._official(legal, "section_chief", "法制科长", "legal_reviewer")
        self._official(legal, "staff", "法制审核员", "legal_reviewer")
        personnel = self._unit(b, 22, "personnel", "人事科")
        self._official(personnel, "section_chief", "人事科长", "personnel_officer")
        self._official(personnel, "staff", "干部监督员", "cadre_supervisor")
        discipline = self._unit(b, 23, "discipline", "纪检组")
        self._official(discipline, "section_chief", "纪检监察室主任", "discipline_inspector")
        self._official(discipline, "staff", "纪检员", "discipline_inspector")
        audit = self._unit(b, 24, "audit", "督察内审科")
        self._official(audit, "section_chief", "督察内审科长", "auditor")
        self._official(audit, "staff", "督察员", "auditor")
        self.bureaus.append(
            Bureau(b, office.id, leaders, branches, inspection, legal, personnel, discipline, audit)
        )
        for i in range(taxpayers):
            branch = branches[i % len(branches)]
            industry = rng.choice(INDUSTRIES)
            lo, hi = industry.monthly_amount
            amount = lo * (hi / lo) ** rng.random()
            ilo, ihi = industry.invoices
            invoices = rng.randint(ilo, ihi)
            average = amount / invoices
            ceiling = next((c for c in CEILINGS if c >= average * 3), CEILINGS[-1])
            entity = rng.random() < 0.85
            serial = len(self.taxpayers) + 1
            prefix = "91440300" if entity else "92440300"
            self.taxpayers.append(
                Taxpayer(
                    f"{prefix}{serial:09d}{'ABCDEFGHJK'[serial % 10]}",
                    industry,
                    "entity" if entity else "individual",
                    branch.id,
                    rng.choice(branch.by_role("handler")).id,
                    b,
                    amount,
                    invoices,
                    industry.warning_ratio * rng.uniform(1.15, 2.2),
                    ceiling,
                    next((q for q in QUOTAS if q >= invoices), QUOTAS[-1]),
                )
            )

    # -- lookups ----------------------------------------------------------------------------

    def unit_of(self, official: Official) -> Unit:
        return self.units[official.unit]

    def approvers(self, bureau: Bureau, unit: Unit, level: int) -> list[Official]:
        if level >= 3:
            return bureau.leadership[:4]  # the head and the business deputies
        key = f"approver@{level}"
        pool = unit._roles.get(key)
        if pool is None:
            pool = [o for o in unit.by_role("approver") if o.level == level]
            pool = unit._roles[key] = pool or unit.by_role("approver")
        return pool

    @property
    def reportable(self) -> list[Official]:
        """Officials who file personal-matters reports (at least the leadership teams)."""
        return [o for o in self.officials.values() if o.reportable]
