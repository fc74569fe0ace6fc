"""Revenue of a renewal model: does it balance, stage by stage, stream by stream, community by community.

From the inventory's spaces to the answer of the published comparison of models (Tang
et al., Table 1): each let space gets a use class by the scenario's rules (its surveyed
current use decides when it names one; a space with a blocking title gap earns nothing
unless a rule gives it a permit path); the scenario's streams give the yearly operating
revenue and their own costs (Rk, Ck); the works, contributions and sales give the
renovation stage (Ro, Co); then subsidies, loans and tax, year by year and month by
month over the concession; payback (to the year and to the month), NPV and IRR
(numpy-financial). The same run (a) as surveyed, (b) with clean-title spaces only and
(c) with every title gap resolved.

Over a package of communities (片区统筹), every flow is worked out per community (its
own spaces, parking, floor area, works), so the result says what each community brings
to the package and how much of the package's floor area the revenue can fund.

The library works on DataFrames (:func:`inventory.listing.spaces` gives one), so it runs
in a notebook without a database. Money is in yuan in scenarios; results are in 万元.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy_financial as npf
import pandas as pd

from inventory import i18n
from inventory.errors import InputError, ScenarioError
from inventory.gaps import annotate, annotated_policy, gap_label, load_policy
from inventory.scenario import (
    PARTIES,
    PERIODS,
    WAN,
    Scenario,
    Stream,
    load_scenario,
)

log = logging.getLogger(__name__)

VARIANTS = ("as surveyed", "clean titles only", "all gaps resolved")


# ---- use allocation -------------------------------------------------------------------------


def _area(frame: pd.DataFrame, basis: str) -> pd.Series:
    area = frame[basis].astype(float)
    for fallback in ("usable_area_m2", "floor_area_m2", "footprint_area_m2"):
        if fallback in frame:
            area = area.fillna(frame[fallback].astype(float))
    return area


def _current_class(use: object, scenario: Scenario) -> str | None:
    """Return the use class whose ``current_uses`` name the surveyed use (or one within it)."""
    if not isinstance(use, str) or not use.strip():
        return None
    for name, c in scenario.use_classes.items():
        if use in c.current_uses:
            return name
    hits = {n for n, c in scenario.use_classes.items() for u in c.current_uses if u and u in use}
    return hits.pop() if len(hits) == 1 else None


def _title_path(row, resolved: bool, policy: str, temporary_uses: dict) -> tuple[str, list]:
    """Return how a space's title lets it operate (a phrase), and the uses that bound it.

    No bound (an empty list) when the title is clean, or resolved outright.
    """
    gaps = row.get("gaps")
    gaps = list(gaps) if isinstance(gaps, list | tuple | np.ndarray) else []
    if not isinstance(row.get("gap_severity"), str):
        return "clean title", []
    granted = [u for g in gaps for u in temporary_uses.get(g, ())]
    granted = list(dict.fromkeys(granted))
    recorded = row.get("permit_uses")
    recorded = list(recorded) if isinstance(recorded, list | tuple | np.ndarray) else []
    if resolved:
        if granted:
            return f"temporary-use permit under {policy} ({'、'.join(granted)})", granted
        return "resolved (assumed): " + "; ".join(gap_label(g) for g in gaps), []
    if recorded:
        return f"transitional permit ({'、'.join(recorded)})", recorded
    if granted:
        return f"temporary use under {policy} ({'、'.join(granted)})", granted
    return f"{row['gap_severity']} title gap", []


def allocate(
    spaces: pd.DataFrame, scenario: Scenario, resolved: bool = False, policy=None
) -> pd.DataFrame:
    """Give each space a use class and its mature rent (万元/year).

    Returns survey_ref, community, kind, area_m2, units, gap_severity, use_class,
    use_class_zh, use_class_en, allowed, earns, path, reason, rent_wan_year_mature.

    In order: an override in the scenario; else the surveyed current use, when a class
    names it (``current_uses``) and the rules allow it; else, largest space first, the
    allowed class furthest from its target area (``target_area_m2``, or its target share
    of the total). A space with a blocking title gap is allocated but earns nothing
    (``earns`` false) unless a rule with ``permit = true`` matches it.

    A space with a title gap that operates under a valid transitional permit (its
    ``permit_uses``, from :func:`inventory.listing.spaces`) is let only for the classes
    its permitted uses name (:meth:`UseClass.licensed_by`); under a ``policy`` whose gap
    rule grants a temporary use (``uses``, e.g. community services in Beijing 2021) so is
    a space that rule names. With ``resolved`` (every gap resolved) the rules about title
    stand aside, and each gap is resolved by the path the regime offers: its temporary-use
    permit where it grants one (so still those uses only), else, as assumed, a change of
    use or the missing papers. ``path`` says which, space by space.

    Raises:
        ScenarioError: a space has a negative or missing area, or the rules leave a space
            no class. (An override of a space not among ``spaces`` waits for it: the
            boiler room let once its gap is resolved.)

    """
    frame = annotate(spaces, policy=policy) if "gap_severity" not in spaces else spaces.copy()
    regime = load_policy(policy if policy is not None else annotated_policy(spaces))
    temporary_uses = {r.gap: r.uses for r in regime.rules if r.uses}
    area = _area(frame, scenario.area_basis)
    bad = frame.loc[~(area >= 0), "survey_ref"].tolist()
    if bad:
        raise ScenarioError(
            f"Spaces {', '.join(map(str, bad))} have no usable or negative area; fix the survey "
            "or leave them out of spaces.activated."
        )
    classes = scenario.use_classes
    frame = frame.assign(area_m2=area.to_numpy())
    frame["_decided"] = [
        0 if ref in scenario.overrides else (1 if _current_class(u, scenario) else 2)
        for ref, u in zip(
            frame["survey_ref"], frame.get("current_use", [None] * len(frame)), strict=True
        )
    ]
    frame = frame.sort_values(["_decided", "area_m2", "survey_ref"], ascending=[True, False, True])
    total = float(frame["area_m2"].sum())
    target = {
        n: c.target_area_m2 if c.target_area_m2 is not None else (c.target_share or 0.0) * total
        for n, c in classes.items()
    }
    given = dict.fromkeys(classes, 0.0)
    order = list(classes)
    uses, allowed_list, reasons, earns, paths = [], [], [], [], []
    # each row as a dict of its values: a Series made per row cost ~30 µs (1 s of a
    # district's estimate, which allocates three times)
    for row in frame.to_dict("records"):
        allowed = list(order)
        why: list[str] = []
        permit = False
        for rule in scenario.rules:
            if (resolved and rule.about_title) or not rule.matches(row, row["area_m2"]):
                continue
            allowed = [u for u in allowed if u in rule.allow]
            permit = permit or rule.permit
            why.append(rule.why or f"rule {rule.when}: {'/'.join(rule.allow)} only")
        if not allowed:
            raise ScenarioError(
                f"No use class is left for {row['survey_ref']} after the allocation rules "
                f"({'; '.join(why)}); loosen a rule or add an override."
            )
        path, licence = _title_path(row, resolved, regime.name, temporary_uses)
        licensed = [u for u in allowed if classes[u].licensed_by(licence)] if licence else allowed
        unlicensed = False
        current = _current_class(row.get("current_use"), scenario)
        if row["survey_ref"] in scenario.overrides:
            use = scenario.overrides[row["survey_ref"]]
            why = ["override in the scenario"]
            unlicensed = bool(licence) and use not in licensed
        elif current in licensed:
            use = current
            why = [f"current use {row['current_use']}", *why]
        else:
            if current is not None:
                why.append(f"current use {row['current_use']} ({current}) not allowed here")
            pool = licensed or allowed
            unlicensed = not licensed
            use = max(pool, key=lambda u: (target[u] - given[u], -order.index(u)))
            why = why or ["furthest from its target area"]
        if licence and not unlicensed and licensed != allowed:
            why.append(f"{path}: {'/'.join(licensed)} only")
        blocked = row["gap_severity"] == "blocking" and not resolved and not permit
        if blocked:
            why.append(f"blocking title gap ({row.get('gap_detail') or 'blocking'}): earns nothing")
        elif unlicensed:
            named = f"not {classes[use].label_en}" if licensed else "which names no use class here"
            why.append(
                f"{path} allows {'、'.join(licence)}, {named}: earns nothing (name the use in "
                "a class's permit_uses, or obtain a change of use)"
            )
        given[use] += row["area_m2"]
        uses.append(use)
        allowed_list.append(licensed if licence and licensed else allowed)
        reasons.append("; ".join(why))
        earns.append(not blocked and not unlicensed)
        paths.append(path)
    cols = ["survey_ref", "community", "kind", "area_m2", "gap_severity"]
    out = frame[[c for c in cols if c in frame]].copy()
    if "community" not in out:
        out["community"] = None
    units = frame["units"] if "units" in frame else pd.Series(np.nan, index=frame.index)
    out["units"] = units.astype(float).fillna(1.0).to_numpy()
    out["use_class"] = uses
    out["use_class_zh"] = [classes[u].label_zh for u in uses]
    out["use_class_en"] = [classes[u].label_en for u in uses]
    out["allowed"] = [", ".join(a) for a in allowed_list]
    out["earns"] = earns
    out["path"] = paths
    out["reason"] = reasons
    rent = [
        (
            u_count * classes[u].tariff_yuan_unit_month * 12
            if classes[u].tariff_yuan_unit_month is not None
            else a * classes[u].tariff_yuan_m2_day * 365
        )
        * classes[u].occupancy
        / WAN
        if ok
        else 0.0
        for u, a, u_count, ok in zip(uses, out["area_m2"], out["units"], earns, strict=True)
    ]
    out["rent_wan_year_mature"] = np.round(rent, 2)
    return out.reset_index(drop=True)


# ---- the inventory a scenario runs on --------------------------------------------------------


@dataclass
class Inventory:
    """What the flows need from the inventory, per community of the package."""

    spaces: pd.DataFrame  # annotated spaces of every community of the package
    communities: list[str]
    floor_area_m2: np.ndarray  # per community (nan: not recorded)
    households: np.ndarray

    @property
    def weights(self) -> np.ndarray:
        """Shares by floor area (equal when none is recorded): how shared flows split."""
        area = np.nan_to_num(self.floor_area_m2)
        if area.sum() > 0:
            return area / area.sum()
        return np.full(len(self.communities), 1 / len(self.communities))

    def index(self, community: str | None) -> int:
        """Return the position of ``community`` in the package."""
        return self.communities.index(community)

    def per_community(self, values: pd.Series) -> np.ndarray:
        """Sum ``values`` (indexed like ``spaces``) per community."""
        sums = values.groupby(self.spaces["community"]).sum()
        return np.array([float(sums.get(c, 0.0)) for c in self.communities])

    def parking(self) -> np.ndarray:
        """Return the parking spaces per community."""
        parking = self.spaces["kind"] == "parking"
        counts = self.spaces["parking_spaces"].astype(float).fillna(0.0).where(parking, 0.0)
        return self.per_community(counts)

    def units(self, kind: str) -> np.ndarray:
        """Units of ``kind`` per community; a feature without a count counts as one."""
        units = (
            self.spaces["units"]
            if "units" in self.spaces
            else pd.Series(np.nan, index=self.spaces.index)
        )
        counts = units.astype(float).fillna(1.0).where(self.spaces["kind"] == kind, 0.0)
        return self.per_community(counts)

    def floor_area_of(self, kind: str) -> np.ndarray:
        """Return the floor area of ``kind`` per community, m²."""
        area = _area(self.spaces, "floor_area_m2").fillna(0.0)
        return self.per_community(area.where(self.spaces["kind"] == kind, 0.0))


def _spread(inv: Inventory, community: str | None, total: float) -> np.ndarray:
    """Split a package-wide amount by floor area, or give all of it to ``community``."""
    out = np.zeros(len(inv.communities))
    if community is None:
        return total * inv.weights
    out[inv.index(community)] = total
    return out


def _check_communities(scenario: Scenario, inv: Inventory) -> None:
    named = [
        (f"{what} {getattr(x, 'name', '')!r}", x.community)
        for what, items in (
            ("stream", scenario.streams),
            ("operating cost", scenario.operating_costs),
            ("works", scenario.works),
            ("contribution", scenario.contributions),
            ("sale", scenario.sales),
            ("subsidy", scenario.subsidies),
        )
        for x in items
        if x.community is not None
    ]
    for what, community in named:
        if community not in inv.communities:
            raise ScenarioError(
                f"{scenario.source}: {what} is for community {community!r}, which is not in "
                f"the scenario's communities ({', '.join(inv.communities)})."
            )


# ---- flows ----------------------------------------------------------------------------------


def _ramp(values: list[float], k: int, mature: float = 1.0) -> float:
    return values[k - 1] if 1 <= k <= len(values) else mature


def mature_year(scenario: Scenario) -> int:
    """Return the mature year: the first in which every stream has left its ramp."""
    ends = [
        s.start_year - 1 + max(len(s.ramp), len(s.collection_by_year)) + 1 for s in scenario.streams
    ]
    return int(min(scenario.concession_years, max([1, *ends])))


def _managed_area(stream: Stream, inv: Inventory) -> np.ndarray:
    if stream.managed_floor_area_m2 is not None:
        return _spread(inv, stream.community, stream.managed_floor_area_m2)
    area = np.nan_to_num(inv.floor_area_m2)
    if stream.community is not None:
        only = np.zeros_like(area)
        only[inv.index(stream.community)] = area[inv.index(stream.community)]
        return only
    return area


def _stream_units(stream: Stream, inv: Inventory) -> np.ndarray:
    if stream.units_from_kind is not None:
        units = inv.units(stream.units_from_kind)
        if stream.community is not None:
            keep = np.zeros_like(units)
            keep[inv.index(stream.community)] = units[inv.index(stream.community)]
            return keep
        return units
    return _spread(inv, stream.community, float(stream.units or 0))


def _stream_flows(
    stream: Stream, scenario: Scenario, inv: Inventory, alloc: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (revenue, cost, managed area) of ``stream``: revenue and cost per community × year."""
    n = scenario.concession_years
    c = len(inv.communities)
    revenue = np.zeros((c, n + 1))
    cost = np.zeros((c, n + 1))
    area = (
        _managed_area(stream, inv)
        if stream.type == "property_fee" or stream.cost_yuan_m2_year
        else np.zeros(c)
    )
    if stream.type == "property_fee" and not area.sum():
        raise ScenarioError(
            f"{scenario.source}: stream {stream.name!r} charges a property fee, but no managed "
            "floor area is known: set managed_floor_area_m2, or record the communities' "
            "floor area (import them with `--communities`)."
        )
    units = _stream_units(stream, inv) if stream.type in ("per_unit", "master_lease") else None
    if stream.type == "rent":
        by = alloc.groupby(["community", "use_class"], dropna=False)["rent_wan_year_mature"].sum()
    last = stream.last_year or n
    for y in range(stream.start_year, min(last, n) + 1):
        k = y - stream.start_year + 1
        grow = (1 + stream.escalation) ** (k - 1)
        factor = _ramp(stream.ramp, k)
        if stream.type == "rent":
            mature = np.zeros(c)
            for (community, use), rent in by.items():
                i = inv.index(community) if community in inv.communities else 0
                mature[i] += rent * (1 + scenario.use_classes[use].escalation) ** (k - 1)
        elif stream.type == "parking":
            spaces = (
                inv.parking()
                if stream.spaces is None
                else _spread(inv, stream.community, float(stream.spaces))
            )
            mature = spaces * stream.fee_yuan_space_year * stream.occupancy / WAN
        elif stream.type == "property_fee":
            factor = _ramp(stream.collection_by_year, k, stream.collection_mature)
            mature = stream.fee_yuan_m2_month * 12 * area / WAN
        elif stream.type == "fixed":
            mature = _spread(inv, stream.community, stream.wan_year)
        elif stream.type == "per_unit":
            mature = units * stream.yuan_unit_year * stream.occupancy / WAN
        else:  # master lease: the lease-in rent is owed whether or not a unit is let
            mature = units * stream.let_out_yuan_unit_month * 12 * stream.occupancy / WAN
            cost[:, y] += units * stream.lease_in_yuan_unit_month * 12 / WAN
        revenue[:, y] = mature * factor * grow
        cost_grow = (1 + stream.cost_escalation) ** (k - 1)
        fixed = _spread(inv, stream.community, stream.cost_wan_year)
        cost[:, y] = (
            cost[:, y] * grow
            + (fixed + stream.cost_yuan_m2_year * area / WAN) * cost_grow
            + stream.cost_share * revenue[:, y]
        )
    return revenue, cost, area


@dataclass
class _Flows:
    """Every flow of one variant, per community × year, and the lines behind them."""

    streams: dict[str, tuple[np.ndarray, np.ndarray]]
    general_cost: np.ndarray
    works: np.ndarray
    works_lines: list[tuple[str, str, float, int, int]]  # name, paid_by, 万元, year, priority
    contributions: np.ndarray
    contribution_lines: list[tuple[str, str, float, int]]  # name, party, 万元, year
    sales: np.ndarray
    sale_lines: list[tuple[str, str, float, int]]
    subsidy: np.ndarray
    subsidy_by_party: dict[str, float]
    managed_area: dict[str, float]


def _flows(scenario: Scenario, inv: Inventory, alloc: pd.DataFrame) -> _Flows:
    s = scenario
    n, c = s.concession_years, len(inv.communities)
    zeros = lambda: np.zeros((c, n + 1))  # noqa: E731
    streams, areas = {}, {}
    for stream in s.streams:
        revenue, cost, area = _stream_flows(stream, s, inv, alloc)
        streams[stream.name] = (revenue, cost)
        areas[stream.name] = float(area.sum())
    general = zeros()
    for oc in s.operating_costs:
        for y in range(oc.start_year, min(oc.end_year or n, n) + 1):
            if y <= len(oc.by_year_wan):
                general[:, y] += _spread(inv, oc.community, oc.by_year_wan[y - 1])
                continue
            grow = (1 + oc.escalation) ** (y - oc.start_year)
            area = np.nan_to_num(inv.floor_area_m2)
            if oc.community is not None:
                area = np.where(np.arange(c) == inv.index(oc.community), area, 0.0)
            general[:, y] += (
                _spread(inv, oc.community, oc.wan_year) + oc.yuan_m2_year * area / WAN
            ) * grow
    works, works_lines = zeros(), []
    contributions, contribution_lines = zeros(), []
    by_name = {st.name: st for st in s.streams}
    for w in s.works:
        if w.fit_out_of is not None:
            st = by_name[w.fit_out_of]
            per = _stream_units(st, inv) * st.fit_out_yuan_unit / WAN
        elif w.cost_yuan_m2_floor:
            area = np.nan_to_num(inv.floor_area_m2)
            if not area.sum():
                raise ScenarioError(
                    f"{s.source}: works {w.name!r} costs {w.cost_yuan_m2_floor:g} 元 per m² of "
                    "floor area, but no community of the scenario has a recorded floor area."
                )
            per = w.cost_yuan_m2_floor * area / WAN
            if w.community is not None:
                per = np.where(np.arange(c) == inv.index(w.community), per, 0.0)
        else:
            per = _spread(inv, w.community, w.cost_wan)
        works[:, w.year] += per
        works_lines.append((w.name, w.paid_by, float(per.sum()), w.year, w.priority))
        if w.paid_by != "operator":  # a party paying works itself: its contribution
            contributions[:, w.year] += per
            contribution_lines.append((w.name, w.paid_by, float(per.sum()), w.year))
    known = set(inv.spaces["survey_ref"])
    for cb in s.contributions:
        absent = sorted(set(cb.spaces) - known)
        if absent:
            raise ScenarioError(
                f"{s.source}: contribution {cb.name!r} rests on {', '.join(absent)}, which the "
                f"inventory does not hold for {', '.join(inv.communities)}."
            )
        if cb.year > n:
            raise ScenarioError(
                f"{s.source}: contribution {cb.name!r} year = {cb.year} is after the "
                f"concession's last year ({n})."
            )
        contributions[:, cb.year] += _spread(inv, cb.community, cb.wan)
        for party, share in zip(cb.parties, cb.shares, strict=True):
            contribution_lines.append((cb.name, party, cb.wan * share, cb.year))
    sales, sale_lines = zeros(), []
    for sale in s.sales:
        units = (
            inv.units(sale.units_from_kind)
            if sale.units_from_kind
            else _spread(inv, sale.community, float(sale.units or 0))
        )
        if sale.price_yuan_unit:
            per = units * sale.price_yuan_unit / WAN
        else:
            if sale.area_m2 is not None:
                area = _spread(inv, sale.community, sale.area_m2)
            elif sale.area_from_kind is not None:
                area = inv.floor_area_of(sale.area_from_kind)
            else:
                area = units * sale.area_per_unit_m2
            per = area * sale.price_yuan_m2 / WAN
        if not per.sum() and (sale.units_from_kind or sale.area_from_kind):
            raise ScenarioError(
                f"{s.source}: sale {sale.name!r} counts the "
                f"{sale.units_from_kind or sale.area_from_kind} of the inventory, and there are "
                f"none in {', '.join(inv.communities)}; import them or give the amount."
            )
        sales[:, sale.year] += per
        sale_lines.append((sale.name, sale.party, float(per.sum()), sale.year))
    subsidy, by_party = zeros(), {}
    for sub in s.subsidies:
        for y, amount in enumerate(sub.by_year_wan[:n], start=1):
            subsidy[:, y] += _spread(inv, sub.community, amount)
        by_party[sub.party] = by_party.get(sub.party, 0.0) + sum(sub.by_year_wan[:n])
    return _Flows(
        streams,
        general,
        works,
        works_lines,
        contributions,
        contribution_lines,
        sales,
        sale_lines,
        subsidy,
        by_party,
        areas,
    )


def cash_flow(flows: _Flows, scenario: Scenario) -> pd.DataFrame:
    """Return the yearly cash flow (万元) for years 0..N of the whole package.

    Columns: year, one per stream (its revenue), revenue, subsidy, operating_cost, works,
    contributions, sales, renovation_net (contributions + sales − works), operation_net
    (revenue + subsidy − operating_cost), loan_in, interest, repayment, tax, net,
    cumulative, discounted, cumulative_discounted.
    """
    s = scenario
    n = s.concession_years
    cf = pd.DataFrame({"year": np.arange(n + 1)})
    if s.first_year:
        cf["calendar_year"] = cf["year"] + s.first_year - 1
    for name, (revenue, _) in flows.streams.items():
        cf[name] = revenue.sum(axis=0)
    cf["revenue"] = sum(r.sum(axis=0) for r, _ in flows.streams.values())
    cf["subsidy"] = flows.subsidy.sum(axis=0)
    cf["operating_cost"] = flows.general_cost.sum(axis=0) + sum(
        c.sum(axis=0) for _, c in flows.streams.values()
    )
    cf["works"] = flows.works.sum(axis=0)
    cf["contributions"] = flows.contributions.sum(axis=0)
    cf["sales"] = flows.sales.sum(axis=0)
    cf["renovation_net"] = cf["contributions"] + cf["sales"] - cf["works"]
    cf["operation_net"] = cf["revenue"] + cf["subsidy"] - cf["operating_cost"]
    operator_works = sum(w[2] for w in flows.works_lines if w[1] == "operator" and w[3] == 0)
    loan = s.loan_share * operator_works
    payment = (
        -npf.pmt(s.loan_rate, s.loan_term_years, loan)
        if loan and s.loan_rate
        else (loan / s.loan_term_years if loan else 0.0)
    )
    balance = loan
    interest, repayment = np.zeros(n + 1), np.zeros(n + 1)
    for y in range(1, n + 1):
        interest[y] = balance * s.loan_rate
        if y <= s.loan_term_years and balance > 0:
            repayment[y] = min(balance, payment - interest[y])
            balance -= repayment[y]
    cf["loan_in"] = np.where(cf["year"] == 0, loan, 0.0)
    cf["interest"] = interest
    cf["repayment"] = repayment
    return _close(cf, s, "year", 1.0)


def _close(cf: pd.DataFrame, s: Scenario, period: str, per_year: float) -> pd.DataFrame:
    before_tax = cf["operation_net"] - cf["interest"]
    cf["tax"] = np.maximum(before_tax, 0) * s.tax_rate
    cf["net"] = cf["renovation_net"] + before_tax - cf["tax"] + cf["loan_in"] - cf["repayment"]
    cf["cumulative"] = cf["net"].cumsum()
    cf["discounted"] = cf["net"] / (1 + s.discount_rate) ** (cf[period] / per_year)
    cf["cumulative_discounted"] = cf["discounted"].cumsum()
    return cf.round(3 if period == "year" else 4)


#: Columns of a cash flow spread evenly over a year's months (the rest fall in its first).
_SPREAD = ("revenue", "subsidy", "operating_cost")


def monthly_cash_flow(yearly: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """Return the cash flow (万元) month by month, months 0..12N, from the yearly one.

    Each year's streams, subsidy and operating cost are spread evenly over its twelve
    months (so a year's months add up to the year); works, contributions and sales fall in
    the first month of their year (year 0's in month 0). A loan is an annuity of monthly
    payments at a twelfth of the yearly rate over its term, and tax is on each month's
    positive profit. Discounting is monthly at the yearly rate's equivalent, so a
    month-end flow at month 12y is discounted exactly as the yearly flow of year y.
    """
    s = scenario
    years = yearly.set_index("year")
    n = int(years.index.max())
    months = np.arange(0, 12 * n + 1)
    year_of = np.where(months == 0, 0, (months + 11) // 12)
    cf = pd.DataFrame({"month": months, "year": year_of})
    stream_columns = [c for c in yearly.columns if c in {st.name for st in s.streams}]
    for col in (*stream_columns, *_SPREAD):
        cf[col] = np.where(months == 0, 0.0, years[col].reindex(year_of).to_numpy() / 12)
    first_month = (months == 0) | (months % 12 == 1)
    for col in ("works", "contributions", "sales"):
        cf[col] = np.where(first_month, years[col].reindex(year_of).to_numpy(), 0.0)
    cf["renovation_net"] = cf["contributions"] + cf["sales"] - cf["works"]
    cf["operation_net"] = cf["revenue"] + cf["subsidy"] - cf["operating_cost"]
    loan = float(years.loc[0, "loan_in"])
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
    return _close(cf, s, "month", 12.0)


# ---- what an operator asks of a cash flow ------------------------------------------------------


@dataclass
class Metrics:
    """What an operator asks of a cash flow, stage by stage."""

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
    mature_year: int = 1
    renovation_revenue_wan: float = 0.0  # Ro
    renovation_cost_wan: float = 0.0  # Co
    operation_balance_wan: float = 0.0  # Sk of the mature year

    @property
    def renovation_balance_wan(self) -> float:
        """So = Ro − Co."""
        return round(self.renovation_revenue_wan - self.renovation_cost_wan, 1)


def payback_year(cumulative: pd.Series) -> int | None:
    """Return the first period from which the cumulative cash flow stays at or above zero.

    Periods are those of ``cumulative``: years of a yearly flow, months of a monthly one.
    A flow that never goes below zero pays back at once (period 0 when the renovation
    stage itself balances).
    """
    values = cumulative.to_numpy()
    below = np.flatnonzero(values < -1e-6)
    if len(below) == 0:
        return 0
    last = int(below[-1]) + 1
    return last if last < len(values) else None


def metrics(
    cf: pd.DataFrame,
    discount_rate: float,
    monthly: pd.DataFrame | None = None,
    *,
    streams: list[str] | None = None,
    mature: int | None = None,
) -> Metrics:
    """NPV at ``discount_rate``, IRR (flagged when not unique), paybacks, stage figures.

    ``streams`` are the stream columns of ``cf`` and ``mature`` the mature year (default:
    the last). With ``monthly`` (:func:`monthly_cash_flow` of ``cf``), the paybacks are
    also given to the month.
    """
    net = cf["net"].to_numpy()
    signs = np.sign(net[np.abs(net) > 1e-9])
    changes = int((signs[1:] != signs[:-1]).sum())
    irr = npf.irr(net) if changes else float("nan")
    row = cf.iloc[mature if mature is not None else -1]
    streams = streams if streams is not None else [c for c in ("rent",) if c in cf]
    return Metrics(
        npv_wan=round(float(npf.npv(discount_rate, net)), 1),
        irr=None if irr is None or np.isnan(irr) else round(float(irr), 4),
        irr_unique=changes <= 1,
        sign_changes=changes,
        payback_year=payback_year(cf["cumulative"]),
        discounted_payback_year=payback_year(cf["cumulative_discounted"]),
        mature_revenue_wan=round(float(row["revenue"]), 1),
        mature_operating_cost_wan=round(float(row["operating_cost"]), 1),
        revenue_by_stream_wan={k: round(float(row[k]), 1) for k in streams},
        payback_month=None if monthly is None else payback_year(monthly["cumulative"]),
        discounted_payback_month=(
            None if monthly is None else payback_year(monthly["cumulative_discounted"])
        ),
        mature_year=int(row["year"]),
        renovation_revenue_wan=round(float((cf["contributions"] + cf["sales"]).sum()), 1),
        renovation_cost_wan=round(float(cf["works"].sum()), 1),
        operation_balance_wan=round(float(row["revenue"] - row["operating_cost"]), 1),
    )


# ---- the three variants ----------------------------------------------------------------------


@dataclass
class Variant:
    """One run of the scenario over one set of spaces."""

    name: str
    allocation: pd.DataFrame
    cash_flow: pd.DataFrame
    metrics: Metrics
    monthly: pd.DataFrame | None = None
    flows: _Flows | None = field(default=None, repr=False)


@dataclass
class RevenueResult:
    """The scenario as surveyed, with clean titles only, and with all gaps resolved."""

    scenario: Scenario
    variants: dict[str, Variant]
    at_risk_rent_share: float  # share of mature rent from spaces let with a title gap
    at_risk_revenue_share: float  # the same, of all mature revenue
    inventory: Inventory | None = field(default=None, repr=False)
    foregone_rent_wan: float = 0.0  # what the blocked spaces would earn once resolved
    blocked: list[str] = field(default_factory=list)

    @property
    def surveyed(self) -> Variant:
        """The variant as surveyed."""
        return self.variants["as surveyed"]

    @property
    def place(self) -> str:
        """The community, or the package's description."""
        s = self.scenario
        if s.package is not None:
            return s.package.describe()
        return s.community or ", ".join(self.inventory.communities if self.inventory else [])

    def summary(self) -> pd.DataFrame:
        """One row per variant: stages, mature revenue by stream, cost, NPV, IRR, paybacks."""
        rows = []
        for v in self.variants.values():
            m = v.metrics
            rows.append(
                {
                    "variant": v.name,
                    "renovation_revenue_wan": m.renovation_revenue_wan,
                    "renovation_cost_wan": m.renovation_cost_wan,
                    "renovation_balance_wan": m.renovation_balance_wan,
                    **{f"{k}_wan": x for k, x in m.revenue_by_stream_wan.items()},
                    "revenue_wan": m.mature_revenue_wan,
                    "operating_cost_wan": m.mature_operating_cost_wan,
                    "operation_balance_wan": m.operation_balance_wan,
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

    def stages(self, variant: str = "as surveyed") -> pd.DataFrame:
        """Return the two stages line by line (万元), with who pays each line.

        Renovation: works (Co), contributions and sales (Ro), So; the mature year of
        operation: each stream's revenue (Rk) and costs (Ck), Sk; subsidies by party.
        """
        v = self.variants[variant]
        f, m, s = v.flows, v.metrics, self.scenario
        rows = []
        for name, party, wan, year, priority in f.works_lines:
            rows.append(("renovation", "Co works", name, party, year, priority, -wan))
        for name, party, wan, year in f.contribution_lines:
            rows.append(("renovation", "Ro contribution", name, party, year, None, wan))
        for name, party, wan, year in f.sale_lines:
            rows.append(("renovation", "Ro sale", name, party, year, None, wan))
        rows.append(
            ("renovation", "So balance", "So = Ro − Co", None, None, None, m.renovation_balance_wan)
        )
        y = m.mature_year
        for st in s.streams:
            revenue, cost = f.streams[st.name]
            rows.append(
                ("operation", "Rk stream", st.name, None, y, None, float(revenue[:, y].sum()))
            )
            if cost[:, y].sum():
                rows.append(
                    (
                        "operation",
                        "Ck stream cost",
                        st.name,
                        None,
                        y,
                        None,
                        -float(cost[:, y].sum()),
                    )
                )
        if f.general_cost[:, y].sum():
            rows.append(
                (
                    "operation",
                    "Ck other costs",
                    "operating costs",
                    None,
                    y,
                    None,
                    -float(f.general_cost[:, y].sum()),
                )
            )
        rows.append(
            ("operation", "Sk balance", "Sk = Rk − Ck", None, y, None, m.operation_balance_wan)
        )
        for party, wan in f.subsidy_by_party.items():
            rows.append(("operation", "subsidy (all years)", party, party, None, None, wan))
        out = pd.DataFrame(
            rows, columns=["stage", "line", "item", "party", "year", "priority", "amount_wan"]
        )
        out["party_zh"] = out["party"].map(lambda p: PARTIES[p][0] if p in PARTIES else None)
        out["amount_wan"] = out["amount_wan"].round(1)
        return out.astype({"year": "Int64", "priority": "Int64"})

    def streams(self, variant: str = "as surveyed") -> pd.DataFrame:
        """Profit and loss per stream in the mature year (万元), and over the concession.

        A stream that runs short shows its loss as a share of the other streams' revenue
        (Jinsong's property management: ~59 万元, ~14.5%); a property fee whose cost grows
        with the managed floor area shows the area at which it breaks even.
        """
        v = self.variants[variant]
        y = v.metrics.mature_year
        total = v.metrics.mature_revenue_wan
        rows = []
        for st in self.scenario.streams:
            revenue, cost = v.flows.streams[st.name]
            r, c = float(revenue[:, y].sum()), float(cost[:, y].sum())
            result = r - c
            others = total - r
            rows.append(
                {
                    "stream": st.name,
                    "label_zh": st.label_zh or None,
                    "type": st.type,
                    "revenue_wan": round(r, 1),
                    "cost_wan": round(c, 1),
                    "result_wan": round(result, 1),
                    "loss_share_of_other_revenue_pct": (
                        round(100 * -result / others, 1) if result < 0 and others > 0 else None
                    ),
                    "break_even_managed_area_m2": _break_even(st, v.flows.managed_area[st.name]),
                    "revenue_over_concession_wan": round(float(revenue.sum()), 1),
                    "cost_over_concession_wan": round(float(cost.sum()), 1),
                }
            )
        return pd.DataFrame(rows)

    def communities(self, variant: str = "as surveyed") -> pd.DataFrame:
        """Return each community's part of the package (万元).

        Its works, mature revenue and costs, and its contribution over the concession (its
        operation and renovation, undiscounted): positive for a community that pays for
        others (肥), negative for one paid for (瘦).
        """
        v, inv = self.variants[variant], self.inventory
        f, y = v.flows, v.metrics.mature_year
        revenue = sum(r for r, _ in f.streams.values())
        cost = f.general_cost + sum(c for _, c in f.streams.values())
        net = f.contributions + f.sales - f.works + revenue + f.subsidy - cost
        out = pd.DataFrame(
            {
                "community": inv.communities,
                "floor_area_m2": inv.floor_area_m2,
                "households": inv.households,
                "works_wan": f.works.sum(axis=1).round(1),
                "contributions_and_sales_wan": (f.contributions + f.sales).sum(axis=1).round(1),
                "mature_revenue_wan": revenue[:, y].round(1),
                "mature_cost_wan": cost[:, y].round(1),
                "mature_balance_wan": (revenue[:, y] - cost[:, y]).round(1),
                "contribution_wan": net.sum(axis=1).round(1),
            }
        )
        out["role"] = np.where(out["contribution_wan"] >= 0, "pays for others 肥", "paid for 瘦")
        return out

    def coverage(self, variant: str = "as surveyed") -> dict[str, float]:
        """How much of the package's floor area its revenue can fund.

        The present value (at the scenario's discount rate) of every inflow net of
        operating costs and tax — contributions, sales, operation, subsidies — over the
        present value of the works; times the package's floor area (capped at all of it).
        """
        cf = self.variants[variant].cash_flow
        d = (1 + self.scenario.discount_rate) ** cf["year"]
        funds = float(
            ((cf["contributions"] + cf["sales"] + cf["operation_net"] - cf["tax"]) / d).sum()
        )
        works = float((cf["works"] / d).sum())
        floor = float(np.nansum(self.inventory.floor_area_m2)) if self.inventory else 0.0
        ratio = funds / works if works > 0 else float("inf")
        return {
            "floor_area_m2": round(floor, 1),
            "funds_pv_wan": round(funds, 1),
            "works_pv_wan": round(works, 1),
            "coverage": round(min(ratio, 1.0), 4) if works > 0 else 1.0,
            "funded_floor_area_m2": round(floor * min(max(ratio, 0.0), 1.0), 1),
        }

    def who_pays(self, variant: str = "as surveyed") -> dict[str, float]:
        """Return the renovation cost Co by who funds it (万元).

        Contributions and sales by party; the operator the rest (recovered from operation).
        """
        f = self.variants[variant].flows
        paid: dict[str, float] = {}
        for _, party, wan, _ in f.contribution_lines + f.sale_lines:
            paid[party] = paid.get(party, 0.0) + wan
        co = sum(w[2] for w in f.works_lines)
        rest = co - sum(paid.values())
        if rest > 1e-6:
            paid["operator"] = paid.get("operator", 0.0) + rest
        return {k: round(v, 1) for k, v in sorted(paid.items(), key=lambda kv: -kv[1])}

    def at_risk(self) -> pd.DataFrame:
        """Return the let spaces with a title gap: what each gap is, earns and would earn.

        One row per space: survey_ref, gap_severity, gap_detail (the rules' words: the
        missing certificate, the dispute, the permit that ends soon…), rent as surveyed
        (0 when blocked) and once every gap is resolved (万元 a year); ``path``: how it
        operates as surveyed (its permit and the uses it allows, the policy's temporary use),
        and ``path_resolved``: how its gap is resolved (the regime's temporary-use permit, or
        a change of use or papers assumed).
        """
        base = self.surveyed.allocation
        gaps = base[base["gap_severity"].notna()][
            ["survey_ref", "gap_severity", "rent_wan_year_mature", "path"]
        ]
        detail = (
            self.inventory.spaces.set_index("survey_ref")["gap_detail"] if self.inventory else None
        )
        resolved = self.variants["all gaps resolved"].allocation.set_index("survey_ref")
        out = gaps.rename(columns={"rent_wan_year_mature": "rent_wan"}).assign(
            gap_detail=lambda f: f["survey_ref"].map(detail) if detail is not None else None,
            rent_resolved_wan=lambda f: f["survey_ref"].map(resolved["rent_wan_year_mature"]),
            path_resolved=lambda f: f["survey_ref"].map(resolved["path"]),
        )
        return out[
            [
                "survey_ref",
                "gap_severity",
                "gap_detail",
                "rent_wan",
                "rent_resolved_wan",
                "path",
                "path_resolved",
            ]
        ].reset_index(drop=True)

    def yearly(self) -> pd.DataFrame:
        """All variants' yearly cash flows, one block per variant."""
        return pd.concat(
            [v.cash_flow.assign(variant=v.name) for v in self.variants.values()], ignore_index=True
        )

    def monthly(self) -> pd.DataFrame:
        """All variants' monthly cash flows (see :func:`monthly_cash_flow`), one block each."""
        return pd.concat(
            [v.monthly.assign(variant=v.name) for v in self.variants.values()], ignore_index=True
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
        """Return, by name, every table of the estimate (what ``revenue --output`` writes).

        summary, stages, streams (profit and loss), at_risk (the gaps), communities (with
        a package), the cash flows by ``period`` and the allocation.
        """
        out = {
            "summary": self.summary(),
            "stages": self.stages(),
            "streams": self.streams(),
            "at_risk": self.at_risk(),
        }
        if self.inventory is not None and len(self.inventory.communities) > 1:
            out["communities"] = self.communities()
        out[f"{period}ly"] = self.cash_flows(period)
        out["allocation"] = self.surveyed.allocation
        return out


def _break_even(stream: Stream, area_m2: float) -> float | None:
    """Return the managed floor area (m²) at which a property fee covers its costs, or None."""
    if stream.type != "property_fee" or not stream.cost_yuan_m2_year or not stream.cost_wan_year:
        return None
    margin = stream.fee_yuan_m2_month * 12 * stream.collection_mature * (1 - stream.cost_share)
    margin -= stream.cost_yuan_m2_year
    return round(stream.cost_wan_year * WAN / margin, -3) if margin > 0 else None


def _inventory(
    spaces: pd.DataFrame, communities: pd.DataFrame | None, scenario: Scenario, policy=None
) -> Inventory:
    frame = annotate(spaces, policy=policy)
    if "community" not in frame or frame["community"].isna().all():
        frame = frame.assign(community=scenario.community or "community")
    names = (
        list(communities["name"])
        if communities is not None and len(communities)
        else sorted(set(frame["community"].dropna()))
    )
    if communities is not None and len(communities):
        by = communities.set_index("name")
        area = by["floor_area_m2"].reindex(names).astype(float).to_numpy()
        households = (
            by["households"].reindex(names).astype(float).to_numpy()
            if "households" in by
            else np.full(len(names), np.nan)
        )
    else:
        area = np.full(len(names), np.nan)
        households = np.full(len(names), np.nan)
    return Inventory(frame, names, area, households)


def estimate(
    spaces: pd.DataFrame,
    scenario: Scenario,
    *,
    communities: pd.DataFrame | None = None,
    managed_floor_area_m2: float | None = None,
    policy=None,
) -> RevenueResult:
    """Run the scenario on ``spaces`` (the spaces of its community or package).

    ``communities`` (name, floor_area_m2, households) gives each community's recorded
    floor area, the managed area of property fees and the key by which shared flows
    split; ``managed_floor_area_m2`` is a shortcut for one community. Parking spaces and
    counted units come from the inventory unless the scenario gives them. Title gaps
    follow ``policy`` (:func:`inventory.gaps.load_policy`), else the scenario's
    ``policy``, else the default rules.

    Raises:
        ScenarioError: the scenario's spaces are not in the inventory, or an area is missing.

    """
    s = scenario
    if communities is None and managed_floor_area_m2 is not None:
        name = s.community or (
            spaces["community"].dropna().iloc[0]
            if "community" in spaces and spaces["community"].notna().any()
            else "community"
        )
        communities = pd.DataFrame(
            {"name": [name], "floor_area_m2": [managed_floor_area_m2], "households": [np.nan]}
        )
    regime = policy or s.policy
    inv = _inventory(spaces, communities, s, regime)
    _check_communities(s, inv)
    frame = inv.spaces
    # spaces are let only when a rent stream and use classes say how
    lets = bool(s.use_classes) and s.stream("rent") is not None
    rooms = frame[frame["kind"].isin(s.kinds) & lets]
    if s.activated is not None:
        absent = sorted(set(s.activated) - set(frame["survey_ref"]))
        if absent:
            raise ScenarioError(
                f"{s.source}: spaces.activated names {', '.join(absent)}, which the inventory "
                f"does not hold (for {', '.join(inv.communities)})."
            )
        rooms = frame[frame["survey_ref"].isin(s.activated) & lets]
    for key, refs in (
        ("gap_resolution.add_spaces", s.resolution_add),
        ("allocation.overrides", list(s.overrides)),
    ):
        absent = sorted(set(refs) - set(frame["survey_ref"]))
        if absent:
            raise ScenarioError(
                f"{s.source}: {key} names {', '.join(absent)}, which the inventory does not "
                f"hold (for {', '.join(inv.communities)}); correct the reference or import it."
            )
    clean = rooms[rooms["gap_severity"].isna()]
    extra = frame[frame["survey_ref"].isin(s.resolution_add) & lets]
    resolved_rooms = pd.concat([rooms, extra[~extra["survey_ref"].isin(rooms["survey_ref"])]])
    base = allocate(rooms, s, policy=regime) if len(rooms) else _no_rooms()
    allocations = {
        "as surveyed": base,
        "clean titles only": allocate(clean, s, policy=regime) if len(clean) else _no_rooms(),
        "all gaps resolved": (
            allocate(resolved_rooms, s, resolved=True, policy=regime)
            if len(resolved_rooms)
            else _no_rooms()
        ),
    }
    stream_names = [st.name for st in s.streams]
    variants = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # IRR of flows that never turn
        for name, alloc in allocations.items():
            flows = _flows(s, inv, alloc)
            cf = cash_flow(flows, s)
            by_month = monthly_cash_flow(cf, s)
            m = metrics(cf, s.discount_rate, by_month, streams=stream_names, mature=mature_year(s))
            variants[name] = Variant(name, alloc, cf, m, by_month, flows)
    rent = base["rent_wan_year_mature"]
    gap_rent = rent[base["gap_severity"].notna() & base["earns"]].sum()
    blocked = base.loc[~base["earns"], "survey_ref"].tolist()
    then = allocations["all gaps resolved"].set_index("survey_ref")["rent_wan_year_mature"]
    mature_revenue = variants["as surveyed"].metrics.mature_revenue_wan
    return RevenueResult(
        scenario=s,
        variants=variants,
        at_risk_rent_share=round(float(gap_rent / rent.sum()), 4) if rent.sum() else 0.0,
        at_risk_revenue_share=round(float(gap_rent / mature_revenue), 4) if mature_revenue else 0.0,
        inventory=inv,
        foregone_rent_wan=round(float(then.reindex(blocked).fillna(0).sum()), 1),
        blocked=blocked,
    )


def _no_rooms() -> pd.DataFrame:
    return pd.DataFrame(
        columns=[
            "survey_ref",
            "community",
            "kind",
            "area_m2",
            "units",
            "gap_severity",
            "use_class",
            "use_class_zh",
            "use_class_en",
            "allowed",
            "earns",
            "path",
            "reason",
            "rent_wan_year_mature",
        ]
    ).astype({"rent_wan_year_mature": float, "area_m2": float, "earns": bool})


# ---- in the store -----------------------------------------------------------------------------


def package_communities(engine, scenario: Scenario, community: str | None = None) -> pd.DataFrame:
    """Return the communities a scenario runs on: ``community``, its own, or its package.

    Columns: name, district, street_office, floor_area_m2, households and the rest of
    :func:`inventory.listing.community_table`.

    Raises:
        ScenarioError: a named community is not in the store, or the package is empty.

    """
    from inventory import listing, store

    every = listing.community_table(engine)
    s = scenario
    store.require_community(engine, community)
    if community or s.package is None:
        names = [community or s.community] if (community or s.community) else []
        if not names:
            raise ScenarioError(
                f"{s.source} names no community or [package]; pass `community` or add "
                'community = "..." to the scenario.'
            )
    elif s.package.communities:
        names = s.package.communities
    elif s.package.bundled_with:
        names = bundled_communities(engine, s.package.bundled_with, s.package.max_gap_m)
    else:
        key, value = (
            ("street_office", s.package.street_office)
            if s.package.street_office
            else ("district", s.package.district)
        )
        names = every.loc[every[key] == value, "name"].tolist()
        if not names:
            known = ", ".join(sorted(set(every[key].dropna()))[:10])
            held = f" (it holds {key}s {known}…)" if known else ""
            raise ScenarioError(
                f"{s.source}: [package] {key} = {value!r} has no community in the store{held}."
            )
    stored = set(every["name"])
    absent = [n for n in names if n not in stored]
    if absent:
        try:
            store.require_community(engine, absent[0])
        except InputError as exc:  # the same message, naming the scenario's key
            known = str(exc).partition(" is not in the store. ")[2]
            raise ScenarioError(
                f"{s.source}: community {', '.join(map(repr, absent))} is not in the store; "
                f"import its survey, or correct the name. {known}"
            ) from None
    return every.set_index("name").loc[names].reset_index()


def bundled_communities(engine, community: str, max_gap_m: float = 30.0) -> list[str]:
    """Return ``community`` and every community whose spaces bundle with its spaces.

    Bundles are found across boundaries (:func:`inventory.bundles.find_bundles` with
    ``across_communities``), around the package as it grows, until no bundle reaches a
    community not yet in it: the communities that could run their small spaces together.
    """
    from inventory import listing, store
    from inventory.bundles import find_bundles
    from inventory.geodesy import near_bounds

    store.require_community(engine, community)
    names = {community}
    loaded = listing.spaces(engine, community=community)
    while len(loaded):
        x0, y0, x1, y1 = loaded.total_bounds
        w = near_bounds(x0, y0, max_gap_m)
        e = near_bounds(x1, y1, max_gap_m)
        around = listing.spaces(engine, bounds=(w[0], w[1], e[2], e[3]))
        _, members = find_bundles(around, max_gap_m, across_communities=True)
        package_bundles = members.loc[members["community"].isin(names), "bundle_id"]
        reached = set(members.loc[members["bundle_id"].isin(package_bundles), "community"])
        if reached <= names:
            break
        names |= reached
        loaded = around[around["community"].isin(names)]
    return sorted(names, key=lambda n: (n != community, n))


def estimate_in_store(
    engine, scenario: str | Path | Scenario, community: str | None = None, *, policy=None
) -> RevenueResult:
    """Run a scenario (a file, a shipped one by name, or a loaded one) on the store's spaces.

    The communities are ``community``, or the scenario's own, or its package; the managed
    floor area is the communities' recorded floor area.

    Raises:
        ScenarioError: the scenario is invalid, or its communities have no spaces.

    """
    from inventory import listing

    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    table = package_communities(engine, sc, community)
    names = table["name"].tolist()
    spaces = listing.spaces(engine, communities=names) if names else pd.DataFrame()
    if len(spaces):
        # the package's communities in its table's order, each one's spaces as listed
        where = {name: k for k, name in enumerate(names)}
        order = np.argsort(spaces["community"].map(where).to_numpy(), kind="stable")
        spaces = spaces.iloc[order].reset_index(drop=True)
    if spaces.empty:
        raise ScenarioError(
            f"No spaces for {', '.join(table['name'])} in the store; import the survey first."
        )
    return estimate(spaces, sc, communities=table, policy=policy)


# ---- comparing models ------------------------------------------------------------------------------


def compare(results: list[RevenueResult], variant: str = "as surveyed") -> pd.DataFrame:
    """One row per scenario, side by side: model, place, both stages, payback, NPV, IRR, who pays."""
    rows = []
    for r in results:
        m = r.variants[variant].metrics
        pays = r.who_pays(variant)
        total = sum(pays.values()) or 1.0
        rows.append(
            {
                "scenario": r.scenario.name,
                "file": r.scenario.source,
                "model": r.scenario.model_label,
                "place": r.place,
                "renovation_revenue_wan": m.renovation_revenue_wan,
                "renovation_cost_wan": m.renovation_cost_wan,
                "renovation_balance_wan": m.renovation_balance_wan,
                "mature_revenue_wan": m.mature_revenue_wan,
                "mature_operating_cost_wan": m.mature_operating_cost_wan,
                "operation_balance_wan": m.operation_balance_wan,
                "payback_year": m.payback_year,
                "npv_wan": m.npv_wan,
                "irr_pct": None if m.irr is None else round(100 * m.irr, 2),
                "coverage_pct": round(100 * r.coverage(variant)["coverage"], 1),
                "who_pays": ", ".join(
                    f"{PARTIES[p][0]} {PARTIES[p][1]} {100 * v / total:.0f}%"
                    for p, v in pays.items()
                ),
            }
        )
    return pd.DataFrame(rows).astype({"payback_year": "Int64"})


def comparison_tables(results: list[RevenueResult]) -> dict[str, pd.DataFrame]:
    """Return the comparison and each scenario's yearly cash flow (``revenue --compare --output``)."""
    flows = pd.concat(
        [r.surveyed.cash_flow.assign(scenario=r.scenario.name) for r in results], ignore_index=True
    )
    return {"comparison": compare(results), "yearly": flows}


def compare_in_store(
    engine, scenarios: list[str | Path], community: str | None = None, *, policy=None
) -> tuple[pd.DataFrame, list[RevenueResult]]:
    """Run each scenario in the store and return (:func:`compare` of them, the results).

    Each runs on its own community or package, or all on ``community``.
    """
    if len(scenarios) < 2:
        raise InputError("Give at least two scenarios to compare.")
    results = [estimate_in_store(engine, s, community, policy=policy) for s in scenarios]
    return compare(results), results


# ---- plots -----------------------------------------------------------------------------------------

#: Fonts that carry Chinese, best first (Noto CJK comes with Debian's fonts-noto-cjk).
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Noto Serif CJK SC",
)


def cjk_font() -> str | None:
    """Return the name of an installed font with Chinese glyphs, or None."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def _words(font: str | None, lang: str | None):
    """Return how a plot writes its words: in ``lang``, or both languages without one.

    Chinese needs an installed CJK font; without one the words are English, so no glyph
    is ever drawn as a box.
    """
    lang = i18n.language(lang) if lang is not None else None
    if lang == "zh" and font is None:
        log.warning(
            "No font with Chinese glyphs is installed (Debian: fonts-noto-cjk); "
            "the plot's words are in English."
        )
    chosen = lang if font or lang != "zh" else "en"

    def say(key: str) -> str:
        zh, en = i18n.PLOT[key]
        if chosen is None:
            return f"{zh} {en}" if font else en
        return zh if chosen == "zh" else en

    def name(text: str, fallback: str) -> str:
        shown = i18n.one_language(text, chosen)
        return shown if font or shown.isascii() else fallback

    def value(code: str) -> str:
        if chosen is None:
            zh = i18n.word(i18n.VALUES, code, "zh")
            return f"{zh} {code}" if font and zh != code else code
        return i18n.word(i18n.VALUES, code, chosen)

    return say, name, value


def _figure(font: str | None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if font:
        plt.rcParams["font.sans-serif"] = [font, *plt.rcParams["font.sans-serif"]]
        plt.rcParams["font.family"] = "sans-serif"
        plt.rcParams["axes.unicode_minus"] = False
    return plt


def _stem(result: RevenueResult) -> str:
    return Path(result.scenario.source.split()[0]).stem


def plot(result: RevenueResult, path: str | Path, lang: str | None = None) -> Path:
    """Write a PNG of cumulative cash flow per variant (万元), for reports.

    Its words are in ``lang`` (zh or en); without one, in Chinese and English when a CJK
    font is installed (see :data:`CJK_FONTS`), else in English.
    """
    font = cjk_font()
    say, name, value = _words(font, lang)
    plt = _figure(font)
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for v in result.variants.values():
        ax.plot(
            v.cash_flow["year"], v.cash_flow["cumulative"], marker="o", ms=3, label=value(v.name)
        )
    ax.axhline(0, color="grey", lw=0.8)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel(say("year_of_concession"))
    ax.set_ylabel(say("cumulative"))
    ax.set_title(name(result.scenario.name, _stem(result)))
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, plt, path)


def plot_compare(results: list[RevenueResult], path: str | Path, lang: str | None = None) -> Path:
    """Write a PNG comparing scenarios: cumulative net cash flow of each, as surveyed (万元).

    Its words follow ``lang`` as :func:`plot`'s do.
    """
    font = cjk_font()
    say, name, _ = _words(font, lang)
    plt = _figure(font)
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for r in results:
        cf = r.surveyed.cash_flow
        ax.plot(
            cf["year"], cf["cumulative"], marker="o", ms=3, label=name(r.scenario.name, _stem(r))
        )
    ax.axhline(0, color="grey", lw=0.8)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel(say("year"))
    ax.set_ylabel(say("cumulative"))
    ax.set_title(say("compared"))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, plt, path)


def _save(fig, plt, path: str | Path) -> Path:
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p)
    plt.close(fig)
    return p
