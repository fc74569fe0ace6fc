"""Title gaps (产权/权属问题): which spaces cannot simply be operated, why, and how badly.

The rules are data: a **policy regime** (TOML in ``inventory/policies``, or a file of the
user's) names each gap, its severity and the condition on a space's tenure. ``default``
holds the rules the Jinsong North experience teaches:

- **blocking** — operation needs a decision nobody on site can take: allocated land
  (划拨) cannot change use to commercial without approval (the idle boiler room stayed
  idle for lack of this path); a disputed or unknown owner cannot sign a lease; an
  expired operating right.
- **transitional** — operable under a transitional permit coordinated by the street
  office, as ~30% of Jinsong's activated rooms were: missing, partial or unknown
  certificate; several owners who must agree.
- **minor** — to watch: the operating right ends within the warning period.

``beijing-2021`` (京规自发〔2021〕120号) lets boiler rooms, coal yards, bike sheds,
gatehouses and community rooms on allocated land take community services under a
temporary permit: transitional for those uses, still blocking for commerce.
"""

from __future__ import annotations

import re
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, and_, case, false, func, not_, null, or_, select
from sqlalchemy.sql import ColumnElement

from inventory import listing
from inventory.backends import backend
from inventory.errors import InputError
from inventory.models import Community, Space

SEVERITIES = ("blocking", "transitional", "minor")
_SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
#: Colours of the title statuses (a space's worst gap, or clean): maps and QGIS styles.
STATUS_COLOURS = {
    "clean": "#2e7d32",
    "minor": "#f9a825",
    "transitional": "#ef6c00",
    "blocking": "#c62828",
}


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
        if column not in self.frame:  # e.g. permit_end of a frame not read from the store
            return pd.Series(None, index=self.frame.index, dtype=object)
        return self.frame[column]

    def each(self, column: str, test, missing: bool) -> np.ndarray:
        """Return ``test`` of each row's value (a Series of distinct values in, booleans out).

        Rows with no value get ``missing``; a frame without the column has no values.
        """
        if column not in self.frame:
            return np.full(len(self.frame), missing, dtype=bool)
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
class NotBefore(Condition):
    """A date today or later (a permit still valid)."""

    column: str

    def _frame(self, s, today, months):
        return s.each(self.column, lambda v: _dates(v) >= pd.Timestamp(today), missing=False)

    def _sql(self, c, today, months):
        return func.coalesce(c[self.column] >= today, false())


@dataclass(frozen=True)
class WithinMonths(Condition):
    """A date from today to the warning period's end."""

    column: str

    def _frame(self, s, today, months):
        first, last = pd.Timestamp(today), pd.Timestamp(_warning_limit(today, months))
        return s.each(self.column, lambda v: _dates(v).between(first, last), missing=False)

    def _sql(self, c, today, months):
        limit = (
            _warning_limit(today, months)
            if isinstance(today, date)
            else c.months_after(today, months)
        )
        return func.coalesce(c[self.column].between(today, limit), false())


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
class In(Condition):
    """The column holds one of these values."""

    column: str
    values: tuple

    def _frame(self, s, today, months):
        return s.each(self.column, lambda v: v.isin(self.values), missing=False)

    def _sql(self, c, today, months):
        return func.coalesce(c[self.column].in_(self.values), false())


@dataclass(frozen=True)
class AllOf(Condition):
    """Every condition holds."""

    conditions: tuple

    def _frame(self, s, today, months):
        out = self.conditions[0]._frame(s, today, months)
        for cond in self.conditions[1:]:
            out = out & cond._frame(s, today, months)
        return out

    def _sql(self, c, today, months):
        return and_(*(cond._sql(c, today, months) for cond in self.conditions))


@dataclass(frozen=True)
class Not(Condition):
    """The condition does not hold."""

    condition: Condition

    def _frame(self, s, today, months):
        return ~self.condition._frame(s, today, months)

    def _sql(self, c, today, months):
        return not_(self.condition._sql(c, today, months))


@dataclass(frozen=True)
class Rule:
    """One kind of title gap: its code, severity, labels and the condition it names."""

    gap: str
    severity: str
    zh: str
    en: str
    when: Condition
    #: Uses a space under this gap may take under a temporary permit the regime grants
    #: (e.g. community services in Beijing 2021): revenue lets it for those uses only.
    uses: tuple[str, ...] = ()

    def applies(self, spaces: pd.DataFrame, today: date, months: int) -> np.ndarray:
        """Return a boolean per row of ``spaces``."""
        return self.when.frame(spaces, today, months)


POLICIES = Path(__file__).resolve().parent / "policies"
#: Columns a policy's conditions may test (the space's tenure and kind).
TESTABLE = (
    "kind",
    "land_type",
    "owner_type",
    "owner_name",
    "certificate_status",
    "disputed",
    "vacancy",
    "operating_right_end",
    "operating_right_holder",
    "current_use",
    "permit_end",
)
_DATE_TESTS = {"before_today": Before, "within_warning": WithinMonths, "valid_today": NotBefore}


@dataclass(frozen=True)
class Policy:
    """A regime of title-gap rules (see ``inventory/policies/default.toml``)."""

    name: str
    title: str
    source: str
    rules: tuple[Rule, ...]

    @property
    def by_gap(self) -> dict[str, Rule]:
        """The rules by gap code."""
        return {r.gap: r for r in self.rules}


def shipped_policies() -> list[str]:
    """Names of the policy regimes shipped with the inventory."""
    return sorted(p.stem for p in POLICIES.glob("*.toml"))


@lru_cache(maxsize=32)
def _load(path: Path, mtime: float) -> Policy:
    where = path.name
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{where} is not a UTF-8 TOML policy file ({exc}).") from None
    unknown = sorted(set(data) - {"name", "title", "source", "rules"})
    if unknown:
        raise InputError(
            f"{where}: unknown key {unknown[0]}; a policy has name, title, source and [[rules]]."
        )
    rules = []
    for i, raw in enumerate(data.get("rules", []), start=1):
        at = f"{where}: rules[{i}]"
        if not isinstance(raw, dict):
            raise InputError(f"{at} should be a table ([[rules]]).")
        extra = sorted(set(raw) - {"gap", "severity", "zh", "en", "when", "unless", "uses"})
        if extra:
            raise InputError(
                f"{at}: unknown key {extra[0]}; a rule has gap, severity, zh, en, when, "
                "unless and uses."
            )
        for key in ("gap", "severity", "zh", "en", "when"):
            if key not in raw:
                raise InputError(f"{at} has no {key}; add it.")
        if raw["severity"] not in SEVERITIES:
            raise InputError(f"{at}: severity = {raw['severity']!r}; use {', '.join(SEVERITIES)}.")
        when = _condition(raw["when"], f"{at}.when")
        if "unless" in raw:
            when = AllOf((when, Not(_condition(raw["unless"], f"{at}.unless"))))
        uses = raw.get("uses", ())
        uses = (uses,) if isinstance(uses, str) else uses
        if not isinstance(uses, list | tuple) or not all(isinstance(u, str) and u for u in uses):
            raise InputError(
                f"{at}: uses = {raw['uses']!r}; give the uses as text or a list of texts, "
                'e.g. uses = ["社区服务", "community services"].'
            )
        rules.append(Rule(raw["gap"], raw["severity"], raw["zh"], raw["en"], when, tuple(uses)))
    if not rules:
        raise InputError(f"{where} has no [[rules]]; a policy needs at least one.")
    gaps = [r.gap for r in rules]
    if len(set(gaps)) != len(gaps):
        twice = sorted({g for g in gaps if gaps.count(g) > 1})
        raise InputError(f"{where}: gap {twice[0]!r} has two rules; give each gap one.")
    return Policy(
        str(data.get("name", path.stem)),
        str(data.get("title", path.stem)),
        str(data.get("source", "")),
        tuple(rules),
    )


def _condition(raw, at: str) -> Condition:
    """Build a condition from a policy's ``when`` table (see default.toml)."""
    if not isinstance(raw, dict) or not raw:
        raise InputError(f'{at} should be a table of clauses, e.g. {{ land_type = "allocated" }}.')
    clauses = []
    for key, value in raw.items():
        if key == "any":
            if not isinstance(value, list) or not value:
                raise InputError(f"{at}.any should be a list of tables of clauses.")
            clauses.append(AnyOf(tuple(_condition(v, f"{at}.any") for v in value)))
        elif key == "missing":
            clauses.append(Missing(_column(value, at)))
        elif key in _DATE_TESTS:
            clauses.append(_DATE_TESTS[key](_column(value, at)))
        elif key == "contains_any":
            if not (isinstance(value, list) and len(value) == 2):
                raise InputError(f'{at}.contains_any should be ["column", "characters"].')
            clauses.append(HasAnyOf(_column(value[0], at), str(value[1])))
        elif isinstance(value, bool):
            column = _column(key, at)
            clauses.append(IsTrue(column) if value else Not(IsTrue(column)))
        elif isinstance(value, list):
            clauses.append(In(_column(key, at), tuple(map(str, value))))
        elif isinstance(value, str):
            clauses.append(Equals(_column(key, at), value))
        else:
            raise InputError(f"{at}.{key} = {value!r}: give a text, a list of texts or true/false.")
    return clauses[0] if len(clauses) == 1 else AllOf(tuple(clauses))


def _column(name, at: str) -> str:
    if name not in TESTABLE:
        raise InputError(
            f"{at}: {name!r} is not a column a rule can test; use {', '.join(TESTABLE)}."
        )
    return name


def load_policy(policy: str | Path | Policy | None = None) -> Policy:
    """Return a policy regime: shipped (``default``, ``beijing-2021``), a file, or the default.

    Raises:
        InputError: no such policy, or a rule that cannot be read (its file, rule and key).

    """
    if isinstance(policy, Policy):
        return policy
    path = Path(policy) if policy else POLICIES / "default.toml"
    if not path.exists() and (POLICIES / f"{path.name}.toml").exists():
        path = POLICIES / f"{path.name}.toml"
    if not path.is_file():
        raise InputError(
            f"`policy={str(policy)!r}` is neither a shipped policy ({', '.join(shipped_policies())}) "
            "nor a policy file."
        )
    return _load(path.resolve(), path.stat().st_mtime)


@lru_cache(maxsize=1024)
def gap_label(gap: str, lang: str = "en") -> str:
    """Return the label of gap code ``gap`` in ``lang``, from whichever shipped policy names it.

    The shipped policies are the package's own files, so a label is looked up once.
    """
    for name in ["default", *shipped_policies()]:
        rule = load_policy(name).by_gap.get(gap)
        if rule is not None:
            return rule.zh if lang == "zh" else rule.en
    return gap


def __getattr__(name: str):
    if name in ("RULES", "RULES_BY_GAP"):  # the default policy's rules, as before
        default = load_policy()
        return default.rules if name == "RULES" else default.by_gap
    raise AttributeError(name)


def active_permits_sql():
    """Return, as a subquery to outer-join on ``space_id``, each space's latest active permit end.

    One row per space holding an active transitional permit (``space_id``,
    ``permit_end``): the rules read the end of a space's permit three or four times, and a
    joined column is worked out once per space where :func:`permit_end_sql` would run again
    for each (at a million spaces, 1.2 million index scans and 2.4 s).
    """
    from inventory.models import TenureRight

    return (
        select(TenureRight.space_id, func.max(TenureRight.end_date).label("permit_end"))
        .where(*_active_permit())
        .group_by(TenureRight.space_id)
        .subquery("permits")
    )


def _active_permit() -> tuple[ColumnElement, ColumnElement]:
    """Return the conditions on ``tenure_right`` of an active transitional permit."""
    from inventory.models import TenureRight

    return TenureRight.kind == "transitional_permit", TenureRight.status == "active"


def permits_to_join(whole: bool):
    """Return :func:`active_permits_sql` for a query over the whole store, else None.

    Over the whole store every permit is read once and joined; over a community, a
    district or an area each space looks up its own (:func:`permit_end_sql`, which the
    rules' columns work out from the space's id) rather than the permits of a whole
    country being read.
    """
    return active_permits_sql() if whole else None


def with_permits(selectable, space_id, permits):
    """Return ``selectable`` outer-joined to ``permits`` on ``space_id`` (as it is for None)."""
    if permits is None:
        return selectable
    return selectable.outerjoin(permits, permits.c.space_id == space_id)


def with_permit_end(columns, permits):
    """Return ``columns`` (the space table's, say) and ``permit_end`` from ``permits``.

    ``columns`` as they are when ``permits`` is None (see :func:`permits_to_join`).
    """
    if permits is None:
        return columns
    return {**dict(columns.items()), "permit_end": permits.c.permit_end}


def permit_end_sql(space_id) -> ColumnElement:
    """Return the end of a space's latest active transitional permit, as SQL (NULL: none)."""
    from inventory.models import TenureRight

    return (
        select(func.max(TenureRight.end_date))
        .where(TenureRight.space_id == space_id, *_active_permit())
        .scalar_subquery()
    )


class _SqlColumns:
    """The query's columns, and the permit's end worked out from its ``id`` when asked for.

    ``months_after(day, n)``: the SQL of a day n months on, for rules read against a day
    the database gives (``CURRENT_DATE`` in a view) rather than a date fixed in Python.
    """

    def __init__(self, columns, months_after=None):
        self.columns = columns
        self._months_after = months_after

    def months_after(self, day, months: int):
        if self._months_after is None:
            raise TypeError("a rule read against an SQL day needs `months_after`")
        _warning_limit(date.today(), months)  # the same check of `months`
        return self._months_after(day, months)

    def __getitem__(self, name: str):
        if name == "permit_end" and "permit_end" not in self.columns:
            return permit_end_sql(self.columns["id"])
        return self.columns[name]


def severity_sql(
    columns, today=None, expiring_months: int = 12, policy=None, months_after=None
) -> ColumnElement:
    """Return the worst gap severity of a space as an SQL expression (NULL: clean title).

    ``columns`` maps each tenure column the rules name to a column of the query (the
    ``space`` table's columns will do); the rules are the ``policy``'s (default: the
    default regime), so the store and :func:`annotate` agree. ``today`` is a date, or an
    SQL day (``func.current_date()``, for a view) with ``months_after`` the backend's
    :meth:`~inventory.backends.base.Backend.months_after`.
    """
    hits = gap_conditions_sql(columns, today, expiring_months, policy, months_after)
    whens = [
        (or_(*(cond for rule, cond in hits if rule.severity == s)), s)
        for s in SEVERITIES
        if any(rule.severity == s for rule, _ in hits)
    ]
    return case(*whens, else_=None) if whens else null()


def gap_conditions_sql(
    columns, today=None, expiring_months: int = 12, policy=None, months_after=None
) -> list[tuple[Rule, ColumnElement]]:
    """Return each rule of the ``policy`` with its condition as SQL (see :func:`severity_sql`)."""
    today = today if today is not None else date.today()
    rules = load_policy(policy).rules
    wrapped = _SqlColumns(columns, months_after)
    return [(r, r.when.sql(wrapped, today, expiring_months)) for r in rules]


def annotate(
    spaces: gpd.GeoDataFrame, today: date | None = None, expiring_months: int = 12, policy=None
) -> gpd.GeoDataFrame:
    """Return ``spaces`` with their title gaps.

    Adds ``gaps`` (gap codes, most severe first), ``gap_severity`` (the worst, or None for
    a clean title) and ``gap_detail`` (bilingual text). The title status is computed once
    per request: a frame already annotated for the same day, warning period and policy
    (its ``attrs``) comes back as it is, and :func:`worst_severity` reads it. ``policy``:
    a regime of rules (:func:`load_policy`; default: the default regime).
    """
    today = today or date.today()
    rules = load_policy(policy)
    if _annotated_for(spaces, today, expiring_months, rules.name):
        return spaces.copy()
    out = spaces.copy()
    columns = _Columns(spaces)
    hits = pd.DataFrame(
        {r.gap: r.applies(columns, today, expiring_months) for r in rules.rules},
        index=spaces.index,
    )
    ordered = [r for r in sorted(rules.rules, key=lambda r: _SEVERITY_RANK[r.severity])]
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
    out.attrs[_ANNOTATED] = (today, expiring_months, rules.name)
    return out


#: Key in a frame's ``attrs``: for which (day, warning months, policy) it was annotated.
_ANNOTATED = "inventory_title_status"


def _annotated_for(spaces: pd.DataFrame, today: date, months: int, policy: str) -> bool:
    return spaces.attrs.get(_ANNOTATED) == (today, months, policy) and "gap_severity" in spaces


def annotated_policy(spaces: pd.DataFrame) -> str | None:
    """Return the policy a frame was annotated under (:func:`annotate`), or None."""
    marks = spaces.attrs.get(_ANNOTATED)
    return marks[2] if marks and "gap_severity" in spaces else None


def worst_severity(
    spaces: pd.DataFrame, today: date | None = None, expiring_months: int = 12, policy=None
) -> np.ndarray:
    """Return each space's worst gap severity, or "clean" (what :func:`annotate` says, faster)."""
    today = today or date.today()
    regime = load_policy(policy)
    if _annotated_for(spaces, today, expiring_months, regime.name):
        return spaces["gap_severity"].fillna("clean").to_numpy(dtype=object)
    columns = _Columns(spaces)
    hit = {
        s: np.logical_or.reduce(
            [r.applies(columns, today, expiring_months) for r in regime.rules if r.severity == s]
            or [np.zeros(len(spaces), dtype=bool)]
        )
        for s in SEVERITIES
    }
    return np.select([hit[s] for s in SEVERITIES], list(SEVERITIES), default="clean").astype(object)


def title_gaps(
    spaces: gpd.GeoDataFrame, today: date | None = None, expiring_months: int = 12, policy=None
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Return (spaces with a title gap or a data-quality flag, totals per community).

    The totals give, per community: spaces and usable area in all, with any gap, with a
    blocking gap, and the share (%) of usable area with a gap. Parking is counted in spaces
    but carries no usable floor area.
    """
    annotated = annotate(spaces, today, expiring_months, policy)
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
    policy=None,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Return :func:`title_gaps` of the spaces in the store (of one ``community``, or all).

    The store applies the rules (:func:`severity_sql`): only the spaces with a gap or a
    data-quality flag are loaded, and the totals per community are one SQL aggregate, so
    a city of a million spaces is not read whole. Both read one snapshot of the store.
    The same answer on either backend.
    """
    today = today or date.today()
    c = Space.__table__.c
    permits = permits_to_join(not community)
    severity = severity_sql(with_permit_end(c, permits), today, expiring_months, policy)
    joined = with_permits(Space.__table__, c.id, permits)

    def gap_or_flag(listed_permits) -> ColumnElement:
        # the listing's own join to the permits: no second pass over the store
        rules = with_permit_end(c, listed_permits)
        worst = severity_sql(rules, today, expiring_months, policy)
        return or_(worst.is_not(None), c.quality_flags.is_not(None))

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
        .select_from(joined)
        .join(Community, c.community_id == Community.id)
        .where(c.retired_at.is_(None))
        .group_by(Community.name)
        .order_by(backend(engine).codepoint_order(Community.name))
    )
    if community:
        stmt = stmt.where(Community.name == community)

    def read_totals(conn: Connection) -> pd.DataFrame:
        return listing.frame_of(conn.execute(stmt))

    # the totals are the server's work alone: where the store gives two connections on
    # one snapshot, it sums a city's while the listing's rows are read and made a frame
    with backend(engine).snapshot_connections(engine, 1 if community else 2) as conns:
        with ThreadPoolExecutor(1) as pool:
            summed = pool.submit(read_totals, conns[-1]) if len(conns) > 1 else None
            candidates = listing.spaces(
                engine,
                community=community,
                where=gap_or_flag,
                connection=conns[0],
                columns=_LISTED,
            )
            totals = read_totals(conns[0]) if summed is None else summed.result()
    rows = _flagged(annotate(candidates, today, expiring_months, policy))
    for col in ("spaces", "spaces_with_gap", "spaces_blocking"):
        totals[col] = totals[col].astype("int64")
    for col in ("usable_area_m2", "area_with_gap_m2", "area_blocking_m2"):
        totals[col] = totals[col].astype(float)
    return rows, _with_share(totals)


def _with_share(totals: pd.DataFrame) -> pd.DataFrame:
    # areas are surveyed to the cm²: a sum's last digits would only say in which order
    # the database happened to add (18821.29999999999 one run, ...996 the next)
    for col in ("usable_area_m2", "area_with_gap_m2", "area_blocking_m2"):
        totals[col] = totals[col].round(2)
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


#: What the title gaps of a store read of its spaces: the rows' columns and whatever
#: a rule may test (a third of a listing's columns are neither read nor made).
_LISTED = [c for c in listing.SPACE_COLUMNS if c in _ROW_COLUMNS or c in TESTABLE]


def _flagged(annotated: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return the annotated spaces with a title gap or a data-quality flag."""
    flagged = annotated["gap_severity"].notna() | annotated["quality_flags"].map(bool)
    rows = annotated[flagged]
    return gpd.GeoDataFrame(rows[_ROW_COLUMNS], geometry="geometry", crs=annotated.crs)
