"""Title gaps (产权/权属问题): which spaces cannot simply be operated, why, and how badly.

The rules are written down once, in :data:`RULES`: each names a gap, its severity and
the condition on a space's tenure. Severity follows the Jinsong North experience:

- **blocking** — operation needs a decision nobody on site can take: allocated land
  (划拨) cannot change use to commercial without approval (the idle boiler room stayed
  idle for lack of this path); a disputed or unknown owner cannot sign a lease; an
  expired operating right.
- **transitional** — operable under a transitional permit coordinated by the street
  office, as ~30% of Jinsong's activated rooms were: missing, partial or unknown
  certificate; several owners who must agree.
- **minor** — to watch: the operating right ends within the warning period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import Engine, case, false, func, or_, select
from sqlalchemy.sql import ColumnElement

from inventory import listing
from inventory.backends import backend
from inventory.errors import InputError
from inventory.models import Community, Space

SEVERITIES = ("blocking", "transitional", "minor")
_SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
#: Characters that join several owners in one name: "劲松一建公司/劲松房管所", "A、B", "A和B".
SEVERAL_OWNERS = "/／、;；,，&和及"


def _dates(column: pd.Series) -> pd.Series:
    return pd.to_datetime(column, errors="coerce")


def _warning_limit(today: date, months: int) -> date:
    if months < 0:
        raise InputError(
            f"`expiring_months={months}` must be 0 or more (months before an operating "
            "right ends to warn of it)."
        )
    return (pd.Timestamp(today) + pd.DateOffset(months=months)).date()


class _Columns:
    """A frame's columns as the conditions read them: each column's distinct values once.

    A tenure column holds few distinct values (a handful of owners, statuses and dates
    in a community, or in a city), so a condition is tested on those and spread back to
    the rows by their codes: at a million spaces, a tenth of the time of testing each row.
    """

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self._factorized: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def of(cls, spaces) -> _Columns:
        return spaces if isinstance(spaces, cls) else cls(spaces)

    def __getitem__(self, column: str) -> pd.Series:
        return self.frame[column]

    def each(self, column: str, test, missing: bool) -> np.ndarray:
        """Return ``test`` of each row's value (a Series of distinct values in, booleans out).

        Rows with no value get ``missing``.
        """
        if column not in self._factorized:
            codes, uniques = pd.factorize(self.frame[column])
            self._factorized[column] = codes, np.asarray(uniques, dtype=object)
        codes, uniques = self._factorized[column]
        on_values = np.asarray(test(pd.Series(uniques, dtype=object)), dtype=bool)
        return np.append(on_values, missing)[codes]  # code -1 (no value): the last


class Condition:
    """A condition on a space's tenure, readable two ways from one definition.

    ``frame`` tests the rows of a DataFrame; ``sql`` builds the same test as an SQL
    expression, so the store can apply the rules where the spaces are.
    """

    def frame(self, spaces: pd.DataFrame, today: date, months: int) -> np.ndarray:
        """Return a boolean per row of ``spaces`` (missing values match only ``Missing``)."""
        return self._frame(_Columns.of(spaces), today, months)

    def sql(self, columns, today: date, months: int) -> ColumnElement:
        """Return the same test as an SQL expression; ``columns`` maps names to columns."""
        return self._sql(columns, today, months)


@dataclass(frozen=True)
class Equals(Condition):
    """The column holds this value."""

    column: str
    value: str

    def _frame(self, s, today, months):
        return s.each(self.column, lambda v: v == self.value, missing=False)

    def _sql(self, c, today, months):
        return func.coalesce(c[self.column] == self.value, false())


@dataclass(frozen=True)
class IsTrue(Condition):
    """A true flag."""

    column: str

    def _frame(self, s, today, months):
        return s[self.column].fillna(False).to_numpy(bool)

    def _sql(self, c, today, months):
        return func.coalesce(c[self.column], false())


@dataclass(frozen=True)
class Missing(Condition):
    """No value, or the empty text."""

    column: str

    def _frame(self, s, today, months):
        return s.each(self.column, lambda v: v.astype(str) == "", missing=True)

    def _sql(self, c, today, months):
        return func.coalesce(c[self.column], "") == ""


@dataclass(frozen=True)
class HasAnyOf(Condition):
    """The text holds one of these characters."""

    column: str
    chars: str

    def _frame(self, s, today, months):
        pattern = f"[{re.escape(self.chars)}]"
        return s.each(self.column, lambda v: v.astype(str).str.contains(pattern), missing=False)

    def _sql(self, c, today, months):
        text_ = func.coalesce(c[self.column], "")
        return or_(*(text_.contains(ch, autoescape=True) for ch in self.chars))


@dataclass(frozen=True)
class Before(Condition):
    """A date before today."""

    column: str

    def _frame(self, s, today, months):
        return s.each(self.column, lambda v: _dates(v) < pd.Timestamp(today), missing=False)

    def _sql(self, c, today, months):
        return func.coalesce(c[self.column] < today, false())


@dataclass(frozen=True)
class WithinMonths(Condition):
    """A date from today to the warning period's end."""

    column: str

    def _frame(self, s, today, months):
        first, last = pd.Timestamp(today), pd.Timestamp(_warning_limit(today, months))
        return s.each(self.column, lambda v: _dates(v).between(first, last), missing=False)

    def _sql(self, c, today, months):
        return func.coalesce(c[self.column].between(today, _warning_limit(today, months)), false())


@dataclass(frozen=True)
class AnyOf(Condition):
    """One of the conditions holds."""

    conditions: tuple

    def _frame(self, s, today, months):
        out = self.conditions[0]._frame(s, today, months)
        for cond in self.conditions[1:]:
            out = out | cond._frame(s, today, months)
        return out

    def _sql(self, c, today, months):
        return or_(*(cond._sql(c, today, months) for cond in self.conditions))


@dataclass(frozen=True)
class Rule:
    """One kind of title gap: its code, severity, labels and the condition it names."""

    gap: str
    severity: str
    zh: str
    en: str
    when: Condition

    def applies(self, spaces: pd.DataFrame, today: date, months: int) -> np.ndarray:
        """Return a boolean per row of ``spaces``."""
        return self.when.frame(spaces, today, months)


RULES: tuple[Rule, ...] = (
    Rule(
        "allocated_land",
        "blocking",
        "划拨用地，改变用途须审批",
        "allocated land: change of use needs approval",
        Equals("land_type", "allocated"),
    ),
    Rule("disputed", "blocking", "权属争议", "ownership disputed", IsTrue("disputed")),
    Rule(
        "unknown_owner",
        "blocking",
        "产权人不明",
        "owner unknown",
        AnyOf((Equals("owner_type", "unknown"), Missing("owner_name"))),
    ),
    Rule(
        "operating_right_expired",
        "blocking",
        "经营权已到期",
        "operating right expired",
        Before("operating_right_end"),
    ),
    Rule(
        "missing_certificate",
        "transitional",
        "无房产证",
        "no property certificate",
        Equals("certificate_status", "missing"),
    ),
    Rule(
        "partial_certificate",
        "transitional",
        "产权手续不全",
        "incomplete title documents",
        Equals("certificate_status", "partial"),
    ),
    Rule(
        "unknown_certificate",
        "transitional",
        "产权证情况不明",
        "certificate status unknown",
        AnyOf((Missing("certificate_status"), Equals("certificate_status", "unknown"))),
    ),
    Rule(
        "several_owners",
        "transitional",
        "多个产权单位",
        "several owners must agree",
        HasAnyOf("owner_name", SEVERAL_OWNERS),
    ),
    Rule(
        "operating_right_expiring",
        "minor",
        "经营权即将到期",
        "operating right ends soon",
        WithinMonths("operating_right_end"),
    ),
)
RULES_BY_GAP = {r.gap: r for r in RULES}


def severity_sql(columns, today: date | None = None, expiring_months: int = 12) -> ColumnElement:
    """Return the worst gap severity of a space as an SQL expression (NULL: clean title).

    ``columns`` maps each tenure column the rules name to a column of the query (the
    ``space`` table's columns will do); the rules are those of :data:`RULES`, so the
    store and :func:`annotate` agree.
    """
    today = today or date.today()
    return case(
        *(
            (
                or_(
                    *(r.when.sql(columns, today, expiring_months) for r in RULES if r.severity == s)
                ),
                s,
            )
            for s in SEVERITIES
        ),
        else_=None,
    )


def annotate(
    spaces: gpd.GeoDataFrame, today: date | None = None, expiring_months: int = 12
) -> gpd.GeoDataFrame:
    """Return ``spaces`` with their title gaps.

    Adds ``gaps`` (gap codes, most severe first), ``gap_severity`` (the worst, or None for
    a clean title) and ``gap_detail`` (bilingual text). The title status is computed once
    per request: a frame already annotated for the same day and warning period (its
    ``attrs``) comes back as it is, and :func:`worst_severity` reads it.
    """
    today = today or date.today()
    if _annotated_for(spaces, today, expiring_months):
        return spaces.copy()
    out = spaces.copy()
    columns = _Columns(spaces)
    hits = pd.DataFrame(
        {r.gap: r.applies(columns, today, expiring_months) for r in RULES},
        index=spaces.index,
    )
    ordered = [r for r in sorted(RULES, key=lambda r: _SEVERITY_RANK[r.severity])]
    matrix = hits[[r.gap for r in ordered]].to_numpy()
    # few distinct combinations of gaps occur: describe each once, then look them up
    bits = matrix.astype(np.int64) @ (np.int64(1) << np.arange(len(ordered), dtype=np.int64))
    patterns, which = np.unique(bits, return_inverse=True)
    gaps, severity, detail = [], [], []
    for pattern in patterns:
        hit = [r for j, r in enumerate(ordered) if pattern >> j & 1]
        gaps.append([r.gap for r in hit])
        severity.append(hit[0].severity if hit else None)
        detail.append("; ".join(f"{r.zh} / {r.en}" for r in hit))
    out["gaps"] = pd.Series([list(gaps[i]) for i in which], index=out.index, dtype=object)
    out["gap_severity"] = pd.Series(
        np.array(severity, dtype=object)[which], index=out.index, dtype=object
    )
    out["gap_detail"] = pd.Series(np.array(detail, dtype=object)[which], index=out.index)
    out.attrs[_ANNOTATED] = (today, expiring_months)
    return out


#: Key in a frame's ``attrs`` recording for which (day, warning months) it was annotated.
_ANNOTATED = "inventory_title_status"


def _annotated_for(spaces: pd.DataFrame, today: date, months: int) -> bool:
    return spaces.attrs.get(_ANNOTATED) == (today, months) and "gap_severity" in spaces


def worst_severity(
    spaces: pd.DataFrame, today: date | None = None, expiring_months: int = 12
) -> np.ndarray:
    """Return each space's worst gap severity, or "clean" (what :func:`annotate` says, faster)."""
    today = today or date.today()
    if _annotated_for(spaces, today, expiring_months):
        return spaces["gap_severity"].fillna("clean").to_numpy(dtype=object)
    columns = _Columns(spaces)
    hit = {
        s: np.logical_or.reduce(
            [r.applies(columns, today, expiring_months) for r in RULES if r.severity == s]
        )
        for s in SEVERITIES
    }
    return np.select([hit[s] for s in SEVERITIES], list(SEVERITIES), default="clean").astype(object)


def title_gaps(
    spaces: gpd.GeoDataFrame, today: date | None = None, expiring_months: int = 12
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Return (spaces with a title gap or a data-quality flag, totals per community).

    The totals give, per community: spaces and usable area in all, with any gap, with a
    blocking gap, and the share (%) of usable area with a gap. Parking is counted in spaces
    but carries no usable floor area.
    """
    annotated = annotate(spaces, today, expiring_months)
    usable = annotated["usable_area_m2"].astype(float).fillna(0.0)
    has_gap = annotated["gap_severity"].notna()
    blocking = annotated["gap_severity"] == "blocking"
    totals = (
        pd.DataFrame(
            {
                "community": annotated["community"],
                "spaces": 1,
                "usable_area_m2": usable,
                "spaces_with_gap": has_gap.astype(int),
                "area_with_gap_m2": usable.where(has_gap, 0.0),
                "spaces_blocking": blocking.astype(int),
                "area_blocking_m2": usable.where(blocking, 0.0),
            }
        )
        .groupby("community", as_index=False)
        .sum()
    )
    return _flagged(annotated), _with_share(totals)


def title_gaps_in_store(
    engine: Engine,
    *,
    community: str | None = None,
    today: date | None = None,
    expiring_months: int = 12,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Return :func:`title_gaps` of the spaces in the store (of one ``community``, or all).

    The store applies the rules (:func:`severity_sql`): only the spaces with a gap or a
    data-quality flag are loaded, and the totals per community are one SQL aggregate, so
    a city of a million spaces is not read whole. The same answer on either backend.
    """
    today = today or date.today()
    c = Space.__table__.c
    severity = severity_sql(c, today, expiring_months)
    candidates = listing.spaces(
        engine, community=community, where=or_(severity.is_not(None), c.quality_flags.is_not(None))
    )
    rows = _flagged(annotate(candidates, today, expiring_months))
    usable = func.coalesce(c.usable_area_m2, 0.0)

    def total(condition, value):
        return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

    stmt = (
        select(
            Community.name.label("community"),
            func.count().label("spaces"),
            func.coalesce(func.sum(usable), 0.0).label("usable_area_m2"),
            total(severity.is_not(None), 1).label("spaces_with_gap"),
            total(severity.is_not(None), usable).label("area_with_gap_m2"),
            total(severity == "blocking", 1).label("spaces_blocking"),
            total(severity == "blocking", usable).label("area_blocking_m2"),
        )
        .join(Community, c.community_id == Community.id)
        .group_by(Community.name)
        .order_by(backend(engine).codepoint_order(Community.name))
    )
    if community:
        stmt = stmt.where(Community.name == community)
    with engine.connect() as conn:
        result = conn.execute(stmt)
        totals = pd.DataFrame(result.all(), columns=list(result.keys()))
    for col in ("spaces", "spaces_with_gap", "spaces_blocking"):
        totals[col] = totals[col].astype("int64")
    for col in ("usable_area_m2", "area_with_gap_m2", "area_blocking_m2"):
        totals[col] = totals[col].astype(float)
    return rows, _with_share(totals)


def _with_share(totals: pd.DataFrame) -> pd.DataFrame:
    totals["share_with_gap_pct"] = (
        100
        * totals["area_with_gap_m2"]
        / totals["usable_area_m2"].where(totals["usable_area_m2"] > 0)
    ).round(1)
    return totals


_ROW_COLUMNS = [
    "survey_ref",
    "community",
    "kind",
    "kind_zh",
    "name",
    "usable_area_m2",
    "owner_name",
    "owner_type",
    "land_type",
    "certificate_status",
    "disputed",
    "operating_right_end",
    "gap_severity",
    "gaps",
    "gap_detail",
    "quality_flags",
    "geometry",
]


def _flagged(annotated: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return the annotated spaces with a title gap or a data-quality flag."""
    flagged = annotated["gap_severity"].notna() | annotated["quality_flags"].map(bool)
    rows = annotated[flagged]
    return gpd.GeoDataFrame(rows[_ROW_COLUMNS], geometry="geometry", crs=annotated.crs)
