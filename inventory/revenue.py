"""Revenue estimates for a community concession: does it balance.

From the inventory's usable area to the operator's answer: each activated space gets a
use class (commercial, semi-public, public) by the scenario's rules, the use classes'
tariffs give rent, parking and property fees and services are added, subsidies, costs
and capex subtracted, year by year (and month by month) over the concession; then
payback (to the year and to the month), NPV and IRR
(numpy-financial), and the same run (a) as surveyed, (b) with only clean-title spaces
and (c) with every title gap resolved.

The library works on a DataFrame of spaces (:func:`inventory.listing.spaces` gives one),
so it runs in a notebook without a database. Money is in yuan; reports use 万元.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy_financial as npf
import pandas as pd

from inventory.errors import InputError, ScenarioError
from inventory.gaps import annotate
from inventory.scenario import (
    PERIODS,
    STREAMS,
    USE_CLASSES,
    WAN,
    Scenario,
    load_scenario,
)


def allocate(spaces: pd.DataFrame, scenario: Scenario, resolved: bool = False) -> pd.DataFrame:
    """Give each space a use class; return survey_ref, kind, area_m2, use_class, allowed, reason.

    Overrides first. Then, largest space first, each space takes the allowed class whose
    target area (target share × total area) is furthest from being met. Spaces with a
    title gap, and spaces on allocated land, may only take the classes the scenario
    allows them — unless ``resolved`` (every gap resolved).

    Raises:
        ScenarioError: a space has a negative or missing area, or an override names a
            space that is not among them.

    """
    frame = annotate(spaces) if "gap_severity" not in spaces else spaces.copy()
    area = frame[scenario.area_basis].astype(float)
    area = area.fillna(frame["usable_area_m2"].astype(float)).fillna(
        frame["footprint_area_m2"].astype(float)
    )
    bad = frame.loc[~(area >= 0), "survey_ref"].tolist()
    if bad:
        raise ScenarioError(
            f"Spaces {', '.join(map(str, bad))} have no usable or negative area; fix the survey or leave them out of spaces.activated."
        )
    missing = sorted(set(scenario.overrides) - set(frame["survey_ref"]))
    if missing:
        raise ScenarioError(
            f"allocation.overrides names {', '.join(missing)}, which are not among the activated spaces."
        )
    frame = frame.assign(area_m2=area.to_numpy()).sort_values(
        ["area_m2", "survey_ref"], ascending=[False, True]
    )
    target = {n: c.target_share * frame["area_m2"].sum() for n, c in scenario.use_classes.items()}
    given = dict.fromkeys(USE_CLASSES, 0.0)
    uses, allowed_list, reasons = [], [], []
    for _, row in frame.iterrows():
        allowed = list(USE_CLASSES)
        why = ["largest unmet target share"]
        for rule in scenario.rules:
            if (resolved and rule.about_title) or not rule.matches(row, row["area_m2"]):
                continue
            allowed = [u for u in allowed if u in rule.allow]
            why.append(rule.why or f"rule {rule.when}: {'/'.join(rule.allow)} only")
        if not allowed:
            raise ScenarioError(
                f"No use class is left for {row['survey_ref']} after the allocation rules "
                f"({'; '.join(why[1:])}); loosen a rule or add an override."
            )
        why = "; ".join(why[1:]) or why[0]
        if row["survey_ref"] in scenario.overrides:
            use = scenario.overrides[row["survey_ref"]]
            why = "override in the scenario"
        else:
            use = max(allowed, key=lambda u: (target[u] - given[u], -list(USE_CLASSES).index(u)))
        given[use] += row["area_m2"]
        uses.append(use)
        allowed_list.append(allowed)
        reasons.append(why)
    out = frame[["survey_ref", "kind", "area_m2", "gap_severity"]].copy()
    out["use_class"] = uses
    out["use_class_zh"] = [USE_CLASSES[u][0] for u in uses]
    out["allowed"] = [", ".join(a) for a in allowed_list]
    out["reason"] = reasons
    tariff = out["use_class"].map(lambda u: scenario.use_classes[u].tariff_yuan_m2_day)
    occupancy = out["use_class"].map(lambda u: scenario.use_classes[u].occupancy)
    out["rent_wan_year_mature"] = (out["area_m2"] * tariff * occupancy * 365 / WAN).round(2)
    return out.reset_index(drop=True)


# ---- cash flow ---------------------------------------------------------------------------


def _ramp(values: list[float], year: int, mature: float = 1.0) -> float:
    return values[year - 1] if year <= len(values) else mature


def cash_flow(
    allocation: pd.DataFrame,
    scenario: Scenario,
    *,
    parking_spaces: int,
    managed_floor_area_m2: float,
) -> pd.DataFrame:
    """Return the yearly cash flow (万元) for years 0..N: streams, costs, net, cumulative."""
    s = scenario
    rent_by_class = allocation.groupby("use_class")["rent_wan_year_mature"].sum()
    parking_mature = parking_spaces * s.parking_fee_yuan_space_year * s.parking_occupancy / WAN
    fee_full = s.property_fee_yuan_m2_month * 12 * managed_floor_area_m2 / WAN  # at 100% collection
    loan = s.loan_share * s.capex_initial_wan
    payment = (
        -npf.pmt(s.loan_rate, s.loan_term_years, loan)
        if loan and s.loan_rate
        else (loan / s.loan_term_years if loan else 0.0)
    )
    balance = loan
    rows = [{"year": 0, "capex": s.capex_initial_wan, "loan_in": loan}]
    for y in range(1, s.concession_years + 1):
        grow = (1 + s.cost_escalation) ** (y - 1)
        interest = balance * s.loan_rate
        repay = min(balance, payment - interest) if y <= s.loan_term_years and balance > 0 else 0.0
        balance -= repay
        rows.append(
            {
                "year": y,
                "rent": _ramp(s.occupancy_ramp, y)
                * sum(
                    rent * (1 + s.use_classes[use].escalation) ** (y - 1)
                    for use, rent in rent_by_class.items()
                ),
                "parking": parking_mature * _ramp(s.parking_ramp, y),
                "property_fee": fee_full * _ramp(s.collection_by_year, y, s.collection_mature),
                "services": s.services_wan_year * _ramp(s.services_ramp, y),
                "subsidy": s.subsidy_wan_by_year[y - 1] if y <= len(s.subsidy_wan_by_year) else 0.0,
                "operating_cost": (
                    s.operating_by_year_wan[y - 1]
                    if y <= len(s.operating_by_year_wan)
                    else s.operating_wan_year * grow
                ),
                "capex": s.capex_later_wan.get(y, 0.0),
                "interest": interest if loan else 0.0,
                "repayment": repay,
            }
        )
    cf = pd.DataFrame(rows).fillna(0.0)
    cf["revenue"] = cf[list(STREAMS)].sum(axis=1)
    before_tax = cf["revenue"] + cf["subsidy"] - cf["operating_cost"] - cf["interest"]
    cf["tax"] = np.maximum(before_tax, 0) * s.tax_rate
    cf["net"] = before_tax - cf["tax"] - cf["capex"] + cf["loan_in"] - cf["repayment"]
    cf["cumulative"] = cf["net"].cumsum()
    cf["discounted"] = cf["net"] / (1 + s.discount_rate) ** cf["year"]
    cf["cumulative_discounted"] = cf["discounted"].cumsum()
    return cf.round(3)


def monthly_cash_flow(yearly: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """Return the cash flow (万元) month by month, months 0..12N, from the yearly one.

    Each year's streams, subsidy and operating cost are spread evenly over its twelve
    months (so a year's months add up to the year); capex falls in the first month of its
    year (the initial capex and loan in month 0). A loan is an annuity of monthly payments
    at a twelfth of the yearly rate over its term, and tax is on each month's positive
    profit. Discounting is monthly at the yearly rate's equivalent, so a month-end flow at
    month 12y is discounted exactly as the yearly flow of year y.
    """
    s = scenario
    years = yearly.set_index("year")
    n = int(years.index.max())
    months = np.arange(0, 12 * n + 1)
    year_of = np.where(months == 0, 0, (months + 11) // 12)
    cf = pd.DataFrame({"month": months, "year": year_of})
    for col in (*STREAMS, "subsidy", "operating_cost"):
        cf[col] = np.where(months == 0, 0.0, years[col].reindex(year_of).to_numpy() / 12)
    first_month = (months == 0) | (months % 12 == 1)
    cf["capex"] = np.where(first_month, years["capex"].reindex(year_of).to_numpy(), 0.0)
    loan = s.loan_share * s.capex_initial_wan
    rate, term = s.loan_rate / 12, 12 * s.loan_term_years
    interest = np.zeros(len(months))
    repayment = np.zeros(len(months))
    if loan:
        payment = -npf.pmt(rate, term, loan) if rate else loan / term
        balance = loan
        for m in range(1, min(term, len(months) - 1) + 1):
            interest[m] = balance * rate
            repayment[m] = min(balance, payment - interest[m])
            balance -= repayment[m]
    cf["loan_in"] = np.where(months == 0, loan, 0.0)
    cf["interest"] = interest
    cf["repayment"] = repayment
    cf["revenue"] = cf[list(STREAMS)].sum(axis=1)
    before_tax = cf["revenue"] + cf["subsidy"] - cf["operating_cost"] - cf["interest"]
    cf["tax"] = np.maximum(before_tax, 0) * s.tax_rate
    cf["net"] = before_tax - cf["tax"] - cf["capex"] + cf["loan_in"] - cf["repayment"]
    cf["cumulative"] = cf["net"].cumsum()
    cf["discounted"] = cf["net"] / (1 + s.discount_rate) ** (cf["month"] / 12)
    cf["cumulative_discounted"] = cf["discounted"].cumsum()
    return cf.round(4)


@dataclass
class Metrics:
    """What an operator asks of a cash flow."""

    npv_wan: float
    irr: float | None
    irr_unique: bool
    sign_changes: int
    payback_year: int | None
    discounted_payback_year: int | None
    mature_revenue_wan: float
    mature_operating_cost_wan: float
    revenue_by_stream_wan: dict[str, float]
    payback_month: int | None = None
    discounted_payback_month: int | None = None


def payback_year(cumulative: pd.Series) -> int | None:
    """Return the first period from which the cumulative cash flow stays at or above zero.

    Periods are those of ``cumulative``: years of a yearly flow, months of a monthly one.
    """
    values = cumulative.to_numpy()
    below = np.flatnonzero(values < 0)
    if len(below) == 0:
        return 1 if len(values) > 1 else None
    last = int(below[-1]) + 1
    return last if last < len(values) else None


def metrics(cf: pd.DataFrame, discount_rate: float, monthly: pd.DataFrame | None = None) -> Metrics:
    """NPV at ``discount_rate``, IRR (flagged when not unique), paybacks, mature figures.

    With ``monthly`` (:func:`monthly_cash_flow` of ``cf``), the paybacks are also given
    to the month.
    """
    net = cf["net"].to_numpy()
    signs = np.sign(net[net != 0])
    changes = int((signs[1:] != signs[:-1]).sum())
    irr = npf.irr(net)
    mature = cf.iloc[-1]
    return Metrics(
        npv_wan=round(float(npf.npv(discount_rate, net)), 1),
        irr=None if irr is None or np.isnan(irr) else round(float(irr), 4),
        irr_unique=changes <= 1,
        sign_changes=changes,
        payback_year=payback_year(cf["cumulative"]),
        discounted_payback_year=payback_year(cf["cumulative_discounted"]),
        mature_revenue_wan=round(float(mature["revenue"]), 1),
        mature_operating_cost_wan=round(float(mature["operating_cost"]), 1),
        revenue_by_stream_wan={k: round(float(mature[k]), 1) for k in STREAMS},
        payback_month=None if monthly is None else payback_year(monthly["cumulative"]),
        discounted_payback_month=(
            None if monthly is None else payback_year(monthly["cumulative_discounted"])
        ),
    )


# ---- the three variants ------------------------------------------------------------------


@dataclass
class Variant:
    """One run of the scenario over one set of spaces."""

    name: str
    allocation: pd.DataFrame
    cash_flow: pd.DataFrame
    metrics: Metrics
    monthly: pd.DataFrame | None = None


@dataclass
class RevenueResult:
    """The scenario as surveyed, with clean titles only, and with all gaps resolved."""

    scenario: Scenario
    variants: dict[str, Variant]
    at_risk_rent_share: float  # share of mature rent from spaces with a title gap
    at_risk_revenue_share: float  # the same, of all mature revenue

    def summary(self) -> pd.DataFrame:
        """One row per variant: mature revenue by stream, cost, NPV, IRR, paybacks."""
        rows = []
        for v in self.variants.values():
            m = v.metrics
            rows.append(
                {
                    "variant": v.name,
                    **{f"{k}_wan": x for k, x in m.revenue_by_stream_wan.items()},
                    "revenue_wan": m.mature_revenue_wan,
                    "operating_cost_wan": m.mature_operating_cost_wan,
                    "npv_wan": m.npv_wan,
                    "irr_pct": None if m.irr is None else round(100 * m.irr, 2),
                    "irr_unique": m.irr_unique,
                    "payback_year": m.payback_year,
                    "discounted_payback_year": m.discounted_payback_year,
                    "payback_month": m.payback_month,
                    "discounted_payback_month": m.discounted_payback_month,
                }
            )
        out = pd.DataFrame(rows)
        periods = ["payback_year", "discounted_payback_year", "payback_month"]
        periods.append("discounted_payback_month")
        return out.astype(dict.fromkeys(periods, "Int64"))  # a period, or none: no 17.0

    def yearly(self) -> pd.DataFrame:
        """All variants' yearly cash flows, one block per variant."""
        return pd.concat(
            [v.cash_flow.assign(variant=v.name) for v in self.variants.values()], ignore_index=True
        )

    def cash_flows(self, period: str = "year") -> pd.DataFrame:
        """All variants' cash flows by ``period``: "year" or "month".

        Raises:
            InputError: ``period`` is neither.

        """
        if period not in PERIODS:
            raise InputError(f"`period={period!r}` is not a period; use year or month.")
        return self.yearly() if period == "year" else self.monthly()

    def tables(self, period: str = "year") -> dict[str, pd.DataFrame]:
        """Return, by name, the summary, the cash flows by ``period`` and the allocation.

        What ``inventory revenue --output`` writes (layers of one file, or files).
        """
        return {
            "summary": self.summary(),
            f"{period}ly": self.cash_flows(period),
            "allocation": self.variants["as surveyed"].allocation,
        }

    def monthly(self) -> pd.DataFrame:
        """All variants' monthly cash flows (see :func:`monthly_cash_flow`), one block each."""
        return pd.concat(
            [v.monthly.assign(variant=v.name) for v in self.variants.values()], ignore_index=True
        )


def estimate(
    spaces: pd.DataFrame, scenario: Scenario, *, managed_floor_area_m2: float | None = None
) -> RevenueResult:
    """Run the scenario on ``spaces`` (one community's spaces, as from the inventory).

    Parking spaces and the managed floor area come from the inventory unless the scenario
    gives them (``managed_floor_area_m2`` here is the community's floor area).

    Raises:
        ScenarioError: the scenario's spaces are not in the inventory, or an area is missing.

    """
    s = scenario
    frame = annotate(spaces)
    parking = s.parking_spaces
    if parking is None:
        parking = int(
            frame.loc[frame["kind"] == "parking", "parking_spaces"].astype(float).fillna(0).sum()
        )
    managed = s.managed_floor_area_m2 or managed_floor_area_m2
    if not managed:
        raise ScenarioError(
            "No managed floor area for the property fee: set property_fee.managed_floor_area_m2 "
            "in the scenario, or record the community's floor area."
        )
    rooms = frame[frame["kind"] != "parking"]
    if s.activated is not None:
        absent = sorted(set(s.activated) - set(rooms["survey_ref"]))
        if absent:
            raise ScenarioError(
                f"spaces.activated names {', '.join(absent)}, which the inventory does not hold (for {s.community or 'this community'})."
            )
        rooms = rooms[rooms["survey_ref"].isin(s.activated)]
    variants = {}
    base = allocate(rooms, s)
    clean_rooms = rooms[rooms["gap_severity"].isna()]
    extra = frame[frame["survey_ref"].isin(s.resolution_add)]
    resolved_rooms = pd.concat([rooms, extra[~extra["survey_ref"].isin(rooms["survey_ref"])]])
    for name, alloc in (
        ("as surveyed", base),
        ("clean titles only", allocate(clean_rooms, s) if len(clean_rooms) else base.iloc[0:0]),
        ("all gaps resolved", allocate(resolved_rooms, s, resolved=True)),
    ):
        cf = cash_flow(alloc, s, parking_spaces=parking, managed_floor_area_m2=managed)
        by_month = monthly_cash_flow(cf, s)
        variants[name] = Variant(name, alloc, cf, metrics(cf, s.discount_rate, by_month), by_month)
    rent = base["rent_wan_year_mature"]
    gap_rent = rent[base["gap_severity"].notna()].sum()
    mature_revenue = variants["as surveyed"].metrics.mature_revenue_wan
    return RevenueResult(
        scenario=s,
        variants=variants,
        at_risk_rent_share=round(float(gap_rent / rent.sum()), 4) if rent.sum() else 0.0,
        at_risk_revenue_share=round(float(gap_rent / mature_revenue), 4) if mature_revenue else 0.0,
    )


def estimate_in_store(engine, scenario: str | Path, community: str | None = None) -> RevenueResult:
    """Run a scenario (a file, or a shipped one by name) on a community's spaces in the store.

    The community is the scenario's own unless ``community`` names another; the managed
    floor area is the community's recorded floor area.

    Raises:
        ScenarioError: the scenario is invalid, or the community has no spaces.

    """
    from inventory import listing, store  # the engine-free API above needs neither

    sc = load_scenario(scenario)
    name = community or sc.community
    spaces = listing.spaces(engine, community=name)
    if spaces.empty:
        raise ScenarioError(
            f"No spaces for community {name!r} in the store; import its survey or pass `community`."
        )
    floor_area = store.community_floor_area(engine, name)
    return estimate(spaces, sc, managed_floor_area_m2=floor_area)


def plot(result: RevenueResult, path: str | Path) -> Path:
    """Write a PNG of cumulative cash flow per variant (万元), for reports."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for v in result.variants.values():
        ax.plot(v.cash_flow["year"], v.cash_flow["cumulative"], marker="o", ms=3, label=v.name)
    ax.axhline(0, color="grey", lw=0.8)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("Year of concession")
    ax.set_ylabel("Cumulative net cash flow (10,000 yuan)")
    ax.set_title(result.scenario.name)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p)
    plt.close(fig)
    return p
