"""Scenario files (TOML): a renewal model as composable flows, read and checked before anything runs.

A scenario describes one renewal model (or a combination) for one community or a package
of communities, in the two stages of the published comparison of models (Tang et al.,
Table 1): the one-off **renovation** stage (works, contributions by party, sales; So = Ro
− Co) and yearly **operation** (streams of revenue, each with its costs; Sk = Rk − Ck),
plus subsidies, loans and tax. Use classes, streams, works and parties are the
scenario's own: nothing is fixed to one model.

Every key is listed in :data:`SCHEMA` (and documented in the README, key by key). An
unknown key, a wrong type, a negative amount, shares that do not add up, a stage with no
flows: each is a :class:`~inventory.errors.ScenarioError` that names the file, the key,
the value and the fix. A scenario may start from another (``extends``) and change only
what differs. Shipped scenarios live in ``inventory/scenarios``.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from inventory.codes import KIND, NOT_MICRO_SPACE
from inventory.errors import ScenarioError

WAN = 10_000.0
SHIPPED = Path(__file__).resolve().parent / "scenarios"
PERIODS = ("year", "month")
DEFAULT_CONCESSION_YEARS = 20  # the Jinsong model's operating concession

#: The six meager-profit models (Tang et al., Table 1), in their published order.
MODELS = {
    "expand_and_sell": ("扩容出售", "Expand and sell"),
    "public_housing_conversion": ("公房转换", "Public-housing conversion"),
    "area_pooling": ("片区统筹", "Area-wide pooling"),
    "activation": ("活化经营", "Activation"),
    "master_lease": ("统租置换", "Master lease and swap"),
    "block_operation": ("街区运营", "Block operation"),
}
#: Who pays or contributes, with zh/en labels ("who pays" in the comparison).
PARTIES = {
    "operator": ("运营方", "Operator"),
    "residents": ("居民", "Residents"),
    "city": ("市级财政", "City"),
    "district": ("区级财政", "District"),
    "street_office": ("街道", "Street office"),
    "government": ("政府", "Government"),
    "owner_unit": ("产权单位", "Owner unit"),
    "parcel_buyer": ("地块受让方", "Land-parcel buyer"),
    "state_enterprise": ("国有企业", "State enterprise"),
    "bank": ("银行", "Bank"),
}
#: Kinds of operating stream.
STREAM_TYPES = ("rent", "parking", "property_fee", "fixed", "per_unit", "master_lease")
#: What an allocation rule may test, and how.
RULE_TESTS = (
    "kind",
    "vacancy",
    "land_type",
    "title",
    "severity",
    "min_area_m2",
    "max_area_m2",
    "current_use",
)

_COMMON_STREAM = {
    "type": "one of rent, parking, property_fee, fixed, per_unit, master_lease",
    "name": "the stream's name (unique; default: its type)",
    "label_zh": "Chinese label for tables",
    "community": "in a package: the community the stream belongs to (default: all)",
    "start_year": "first year of operation it earns in (default 1)",
    "end_year": "last year it earns in (default: the concession's last)",
    "ramp": "factors of the mature level for its first years, e.g. [0.5, 0.75]",
    "escalation": "yearly growth of its revenue from its second year",
    "cost_wan_year": "fixed yearly cost of the stream, 万元",
    "cost_yuan_m2_year": "yearly cost per m² of managed floor area, 元",
    "cost_share": "cost as a share of the stream's revenue",
    "cost_escalation": "yearly growth of its costs from its second year",
    "remove": "with extends: drop the stream of this name",
}
#: Every key a scenario may hold, by table, with what it means (the README's reference).
SCHEMA: dict[str, dict[str, str]] = {
    "": {
        "name": "the scenario's title",
        "model": "one of the six models, or a list when combined",
        "extends": "a scenario (file or shipped name) this one starts from",
        "community": "the community it runs on (or [package])",
        "concession_years": "years of operation (1–70; default 20)",
        "discount_rate": "for NPV and discounted payback",
        "first_year": "calendar year of operation year 1 (adds calendar_year)",
        "policy": "the title-gap regime (default, beijing-2021, or a policy file)",
        "spaces": "table",
        "package": "table",
        "use_classes": "table",
        "allocation": "table",
        "streams": "array of tables",
        "operating_costs": "array of tables",
        "works": "array of tables",
        "contributions": "array of tables",
        "sales": "array of tables",
        "subsidies": "array of tables",
        "financing": "table",
        "tax": "table",
        "gap_resolution": "table",
    },
    "spaces": {
        "activated": "survey references of the spaces let (default: all of kinds)",
        "kinds": "kinds let for rent (default: the stock rooms and land)",
        "area_basis": "floor_area_m2, usable_area_m2 or footprint_area_m2",
    },
    "package": {
        "communities": "community names",
        "street_office": "every community of this street office",
        "district": "every community of this district",
        "bundled_with": "this community and every one its spaces bundle with across boundaries",
        "max_gap_m": "with bundled_with: the bundle gap, m (default 30)",
    },
    "use_classes.*": {
        "label_zh": "Chinese label",
        "label_en": "English label",
        "tariff_yuan_m2_day": "rent per m² per day, 元",
        "tariff_yuan_unit_month": "rent per unit (flat, shop) per month, 元",
        "occupancy": "share of the time let",
        "target_share": "share of the let area this class should take",
        "target_area_m2": "area this class should take, m²",
        "escalation": "yearly growth of the tariff from year 2",
        "current_uses": "surveyed current uses that decide this class",
        "permit_uses": "uses in a permit (许可用途) or a policy's temporary use that allow this class",
    },
    "allocation": {"rules": "array of tables", "overrides": "survey reference = use class"},
    "allocation.rules": {
        "when": "conditions, all of which must hold",
        "allow": "use classes the matching spaces may take",
        "permit": "matching spaces may be let despite a blocking gap (a permit path)",
        "why": "the reason, shown in the allocation",
    },
    "streams.rent": {},
    "streams.parking": {
        "spaces": "parking spaces (default: counted in the inventory)",
        "fee_yuan_space_year": "fee per space per year, 元",
        "fee_yuan_space_month": "fee per space per month, 元",
        "occupancy": "share of the spaces let",
    },
    "streams.property_fee": {
        "fee_yuan_m2_month": "fee per m² of floor area per month, 元",
        "managed_floor_area_m2": "floor area managed (default: the communities' recorded)",
        "collection_by_year": "share of fees collected in the first years",
        "collection_mature": "share collected once mature",
    },
    "streams.fixed": {"wan_year": "yearly revenue at maturity, 万元"},
    "streams.per_unit": {
        "units": "number of units (default: counted in the inventory)",
        "units_from_kind": "count the units of this kind in the inventory",
        "yuan_unit_month": "revenue per unit per month, 元",
        "yuan_unit_year": "revenue per unit per year, 元",
        "occupancy": "share of the units earning",
    },
    "streams.master_lease": {
        "units": "units leased in (default: counted in the inventory)",
        "units_from_kind": "count the units of this kind in the inventory",
        "lease_in_yuan_unit_month": "rent paid to the owners per unit per month, 元",
        "let_out_yuan_unit_month": "rent received per unit per month, 元",
        "occupancy": "share of the units let",
        "term_years": "years of the lease-in",
        "fit_out_yuan_unit": "fit-out per unit before letting (renovation stage), 元",
    },
    "operating_costs": {
        "name": "what the cost is",
        "wan_year": "yearly cost, 万元",
        "yuan_m2_year": "yearly cost per m² of managed floor area, 元",
        "by_year_wan": "costs year by year from year 1 (replaces wan_year there)",
        "escalation": "yearly growth from year 2",
        "community": "in a package: whose cost",
        "start_year": "first year",
        "end_year": "last year",
        "remove": "with extends: drop the cost of this name",
    },
    "works": {
        "name": "the works item",
        "cost_wan": "its cost, 万元",
        "cost_yuan_m2_floor": "its cost per m² of floor area (each community's), 元",
        "priority": "1 = most needed",
        "year": "year it is built (0 = renovation; later = phased)",
        "paid_by": "the party that pays it (default operator)",
        "community": "in a package: whose works",
        "items": "how many items the line stands for",
        "remove": "with extends: drop the item of this name",
    },
    "contributions": {
        "name": "what it is",
        "party": "who contributes",
        "parties": "several parties sharing it, with ratio or shares",
        "ratio": "how the parties share it, e.g. [1, 1.2]",
        "shares": "the parties' shares, adding up to 1",
        "wan": "the amount, 万元",
        "year": "the year it is paid (default 0)",
        "community": "in a package: for whose works",
        "spaces": "survey references it rests on (e.g. the land parcel sold)",
        "why": "the reason",
        "remove": "with extends: drop the contribution of this name",
    },
    "sales": {
        "name": "what is sold",
        "party": "the buyer (default residents)",
        "price_yuan_m2": "price per m², 元",
        "price_yuan_unit": "price per unit (parking space, flat), 元",
        "area_m2": "area sold, m²",
        "area_per_unit_m2": "area sold per unit, m²",
        "area_from_kind": "sell the floor area of this kind in the inventory",
        "units": "units sold",
        "units_from_kind": "count the units of this kind in the inventory",
        "year": "the year of the sale (default 0)",
        "community": "in a package: whose sale",
        "remove": "with extends: drop the sale of this name",
    },
    "subsidies": {
        "name": "what it is",
        "party": "who pays it",
        "by_year_wan": "amounts for operation years 1, 2, …, 万元",
        "community": "in a package: for whom",
        "remove": "with extends: drop the subsidy of this name",
    },
    "financing": {
        "loan_share": "share of the operator's year-0 works borrowed",
        "loan_rate": "yearly interest rate",
        "loan_term_years": "years to repay (an annuity)",
    },
    "tax": {"rate_on_net": "tax on each year's positive operating result"},
    "gap_resolution": {"add_spaces": "spaces let once every title gap is resolved"},
}
for _t in STREAM_TYPES:
    SCHEMA[f"streams.{_t}"] = {**_COMMON_STREAM, **SCHEMA[f"streams.{_t}"]}
del _t
_NAMED_LISTS = ("streams", "operating_costs", "works", "contributions", "sales", "subsidies")


# ---- the validated scenario --------------------------------------------------------------


@dataclass
class UseClass:
    """Tariff and targets of one use class (the scenario names its own classes)."""

    name: str
    label_zh: str
    label_en: str
    tariff_yuan_m2_day: float
    occupancy: float
    target_share: float | None = None
    target_area_m2: float | None = None
    escalation: float = 0.0
    tariff_yuan_unit_month: float | None = None
    current_uses: tuple[str, ...] = ()
    permit_uses: tuple[str, ...] = ()

    def label(self, lang: str = "en") -> str:
        """Return the class's label in ``lang``."""
        return self.label_zh if lang == "zh" else self.label_en

    def licensed_by(self, uses) -> bool:
        """Whether a permit for ``uses`` (许可用途) allows this class.

        A use allows the class when one of the class's terms (``permit_uses``, else its
        current uses and labels) is that use or part of it: 社区养老服务 names 养老.
        """
        terms = self.permit_uses or (*self.current_uses, self.label_zh, self.label_en)
        terms = [t.casefold() for t in terms if t]
        return any(t in u.casefold() for u in uses for t in terms)


@dataclass
class AllocationRule:
    """``allow`` only these use classes for spaces matching every condition in ``when``.

    ``when`` keys: kind, vacancy, land_type, current_use (a value or a list), title
    ("gap" or "clean"), severity (blocking, transitional, minor), min_area_m2,
    max_area_m2. Rules about title, severity and land stand aside when the gaps are
    taken as resolved. ``permit``: matching spaces may be let despite a blocking gap.
    """

    when: dict
    allow: list[str]
    why: str = ""
    permit: bool = False

    def matches(self, row: pd.Series, area: float) -> bool:
        """Whether the space in ``row`` (with its allocation ``area``) meets every condition."""
        for key, want in self.when.items():
            if key in ("min_area_m2", "max_area_m2"):
                if (key == "min_area_m2" and area < want) or (key == "max_area_m2" and area > want):
                    return False
            elif key == "title":
                has_gap = isinstance(row["gap_severity"], str)
                if has_gap != (want == "gap"):
                    return False
            elif key == "severity":
                if row["gap_severity"] not in (want if isinstance(want, list) else [want]):
                    return False
            elif row.get(key) not in (want if isinstance(want, list) else [want]):
                return False
        return True

    @property
    def about_title(self) -> bool:
        """Whether the rule is about title (it lapses when the gaps are resolved)."""
        return bool({"title", "severity", "land_type"} & set(self.when))


@dataclass
class Stream:
    """One operating stream: its revenue and its own costs, year by year."""

    type: str
    name: str
    label_zh: str = ""
    community: str | None = None
    start_year: int = 1
    end_year: int | None = None
    ramp: list[float] = field(default_factory=list)
    escalation: float = 0.0
    cost_wan_year: float = 0.0
    cost_yuan_m2_year: float = 0.0
    cost_share: float = 0.0
    cost_escalation: float = 0.0
    # parking
    spaces: int | None = None
    fee_yuan_space_year: float = 0.0
    occupancy: float = 1.0
    # property fee
    fee_yuan_m2_month: float = 0.0
    managed_floor_area_m2: float | None = None
    collection_by_year: list[float] = field(default_factory=list)
    collection_mature: float = 1.0
    # fixed
    wan_year: float = 0.0
    # per unit and master lease
    units: int | None = None
    units_from_kind: str | None = None
    yuan_unit_year: float = 0.0
    lease_in_yuan_unit_month: float = 0.0
    let_out_yuan_unit_month: float = 0.0
    term_years: int | None = None
    fit_out_yuan_unit: float = 0.0

    @property
    def last_year(self) -> int | None:
        """The last year the stream earns in, if it ends before the concession."""
        if self.type == "master_lease" and self.term_years:
            term_end = self.start_year + self.term_years - 1
            return min(term_end, self.end_year) if self.end_year else term_end
        return self.end_year


@dataclass
class OperatingCost:
    """A yearly cost not tied to one stream."""

    name: str
    wan_year: float = 0.0
    yuan_m2_year: float = 0.0
    by_year_wan: list[float] = field(default_factory=list)
    escalation: float = 0.0
    community: str | None = None
    start_year: int = 1
    end_year: int | None = None


@dataclass
class Works:
    """One works item of the renovation stage (or a later phase)."""

    name: str
    cost_wan: float = 0.0
    cost_yuan_m2_floor: float = 0.0
    priority: int = 1
    year: int = 0
    paid_by: str = "operator"
    community: str | None = None
    items: int = 1
    #: a master lease's fit-out: its cost is the stream's units × fit-out per unit
    fit_out_of: str | None = None


@dataclass
class Contribution:
    """A one-off payment towards the renovation by one party or several sharing it."""

    name: str
    parties: list[str]
    shares: list[float]
    wan: float
    year: int = 0
    community: str | None = None
    spaces: list[str] = field(default_factory=list)
    why: str = ""


@dataclass
class Sale:
    """A one-off sale: floor area at a price per m², or units at a price each."""

    name: str
    party: str = "residents"
    price_yuan_m2: float = 0.0
    price_yuan_unit: float = 0.0
    area_m2: float | None = None
    area_per_unit_m2: float | None = None
    area_from_kind: str | None = None
    units: int | None = None
    units_from_kind: str | None = None
    year: int = 0
    community: str | None = None


@dataclass
class Subsidy:
    """Yearly subsidies of one party in the first years of operation."""

    name: str
    party: str
    by_year_wan: list[float]
    community: str | None = None


@dataclass
class Package:
    """The communities a scenario runs over: named, or of a street office or district."""

    communities: list[str] = field(default_factory=list)
    street_office: str | None = None
    district: str | None = None
    bundled_with: str | None = None
    max_gap_m: float = 30.0

    def describe(self) -> str:
        """How the package was chosen, for titles."""
        if self.communities:
            return "、".join(self.communities)
        if self.bundled_with:
            return f"{self.bundled_with} + bundled neighbours"
        return self.street_office or self.district or ""


@dataclass
class Scenario:
    """A validated scenario (see ``inventory/scenarios/jinsong_north.toml``)."""

    name: str
    models: list[str]
    community: str | None
    package: Package | None
    concession_years: int
    discount_rate: float
    first_year: int | None
    activated: list[str] | None
    kinds: list[str]
    area_basis: str
    use_classes: dict[str, UseClass]
    rules: list[AllocationRule]
    overrides: dict[str, str]
    streams: list[Stream]
    operating_costs: list[OperatingCost]
    works: list[Works]
    contributions: list[Contribution]
    sales: list[Sale]
    subsidies: list[Subsidy]
    loan_share: float = 0.0
    loan_rate: float = 0.0
    loan_term_years: int = 10
    tax_rate: float = 0.0
    resolution_add: list[str] = field(default_factory=list)
    source: str = ""
    policy: str | None = None

    @property
    def model_label(self) -> str:
        """The model(s) in Chinese and English, e.g. "活化经营 Activation"."""
        return " + ".join(f"{MODELS[m][0]} {MODELS[m][1]}" for m in self.models)

    def stream(self, type_: str) -> Stream | None:
        """Return the first stream of ``type_``, or None."""
        return next((s for s in self.streams if s.type == type_), None)


# ---- reading -------------------------------------------------------------------------------

_REQUIRED = object()


class _Reader:
    """Read one TOML table, refusing keys it does not know and values of the wrong kind."""

    def __init__(self, node: Any, path: str, where: str, known: dict[str, str]):
        self.where, self.path = where, path
        if not isinstance(node, dict):
            raise ScenarioError(
                f"{where}: {path or 'the file'} = {node!r} should be a table "
                f"(keys {', '.join(known)})."
            )
        self.node = node
        for key in node:
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ScenarioError(
                    f"{where}: unknown key {self._name(key)} = {node[key]!r}; {hint}"
                    f"{path or 'the top level'} takes {', '.join(known)}."
                )

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, value: Any, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.where}: {self._name(key)} = {value!r} {problem}.")

    def has(self, key: str) -> bool:
        return key in self.node

    def number(
        self,
        key: str,
        default: Any = _REQUIRED,
        *,
        low: float | None = 0.0,
        high: float | None = None,
        integer: bool = False,
        what: str = "",
    ) -> Any:
        if key not in self.node:
            if default is _REQUIRED:
                raise ScenarioError(
                    f"{self.where}: missing {self._name(key)!r}"
                    f"{f' ({what})' if what else ''}. Add it to the scenario file."
                )
            return default
        value = self.node[key]
        kind = "a whole number" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, value, f"should be {kind}")
        if integer and not isinstance(value, int):
            raise self.fail(key, value, "should be a whole number")
        if not math.isfinite(value):
            raise self.fail(key, value, "should be a finite number")
        if low is not None and value < low:
            raise self.fail(
                key, value, "cannot be negative" if low == 0 else f"must be at least {low:g}"
            )
        if high is not None and value > high:
            raise self.fail(
                key,
                value,
                "must be between 0 and 1 (a share)"
                if (low, high) == (0.0, 1.0)
                else f"must be at most {high:g}",
            )
        return int(value) if integer else float(value)

    def share(self, key: str, default: Any = _REQUIRED) -> Any:
        return self.number(key, default, low=0.0, high=1.0)

    def rate(self, key: str, default: Any = 0.0) -> float:
        """Read a yearly growth or interest rate: from -50% to 100%."""
        return self.number(key, default, low=-0.5, high=1.0)

    def text(self, key: str, default: Any = _REQUIRED, choices=None) -> Any:
        if key not in self.node:
            if default is _REQUIRED:
                raise ScenarioError(
                    f"{self.where}: missing {self._name(key)!r}. Add it to the scenario file."
                )
            return default
        value = self.node[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, value, "should be a text")
        if choices is not None and value not in choices:
            raise self.fail(key, value, f"is not one of {', '.join(choices)}")
        return value

    def texts(self, key: str, default: Any = (), choices=None) -> list[str]:
        if key not in self.node:
            return list(default)
        value = self.node[key]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, value, 'should be a list of texts, e.g. ["a", "b"]')
        for v in value:
            if choices is not None and v not in choices:
                raise self.fail(key, v, f"is not one of {', '.join(choices)}")
        return value

    def numbers(self, key: str, *, low: float = 0.0, high: float | None = None) -> list[float]:
        if key not in self.node:
            return []
        value = self.node[key]
        if not isinstance(value, list):
            raise self.fail(key, value, "should be a list of numbers, e.g. [0.5, 0.75]")
        out = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise self.fail(key, value, f"holds {v!r}, which is not a number")
            if v < low or (high is not None and v > high):
                limit = "between 0 and 1 (shares)" if high == 1.0 else f"at least {low:g}"
                raise self.fail(key, value, f"holds {v!r}; each value must be {limit}")
            out.append(float(v))
        return out

    def flag(self, key: str, default: bool) -> bool:
        value = self.node.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, value, "should be true or false")
        return value

    def table(self, key: str) -> dict:
        value = self.node.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, value, "should be a table")
        return value

    def tables(self, key: str) -> list[dict]:
        value = self.node.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(key, value, f"should be an array of tables ([[{self._name(key)}]])")
        return value


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file (TOML). A bare name (``jinsong_north``) is a shipped one.

    Raises:
        ScenarioError: the file is missing, not TOML, or a value is missing or wrong
            (with the key, the value and what it should be).

    """
    data, where = _load_raw(path, seen=())
    return parse_scenario(data, where=where)


def shipped_scenarios() -> list[str]:
    """Names of the scenarios shipped with the inventory."""
    return sorted(f.stem for f in SHIPPED.glob("*.toml"))


def _find(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists() and (SHIPPED / f"{p.name}.toml").exists():
        return SHIPPED / f"{p.name}.toml"
    return p


def _load_raw(path: str | Path, seen: tuple[Path, ...]) -> tuple[dict, str]:
    p = _find(path)
    where = p.name
    if p.resolve() in seen:
        chain = " → ".join(s.name for s in (*seen, p))
        raise ScenarioError(f"{where}: `extends` goes round in a circle ({chain}); break it.")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(
            f"Scenario file not found: {p}. Shipped scenarios: {', '.join(shipped_scenarios())}."
        ) from None
    except IsADirectoryError:
        raise ScenarioError(f"{p} is a folder; give a scenario file (.toml).") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{where} is not UTF-8 text; save it as UTF-8.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{where} is not valid TOML ({exc}).") from None
    base = data.pop("extends", None)
    if base is None:
        return data, where
    if not isinstance(base, str):
        raise ScenarioError(f"{where}: extends = {base!r} should name a scenario file.")
    relative = p.parent / base
    parent, parent_where = _load_raw(
        relative if relative.exists() else base, seen=(*seen, p.resolve())
    )
    return _merge(parent, data, where), f"{where} (extends {parent_where})"


def _merge(base: dict, over: dict, where: str, path: str = "") -> dict:
    """Return ``base`` updated by ``over``: tables merge; named arrays merge by ``name``."""
    out = dict(base)
    for key, value in over.items():
        full = f"{path}.{key}" if path else key
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, where, full)
        elif full in _NAMED_LISTS and isinstance(value, list) and isinstance(out.get(key), list):
            items = list(out[key])
            for item in value:
                if not isinstance(item, dict) or "name" not in item:
                    raise ScenarioError(
                        f"{where}: an item of [[{full}]] in a scenario that extends another "
                        "needs a name, to say which item it changes or adds."
                    )
                names = [i.get("name", i.get("type")) for i in items]
                if item.get("remove"):
                    if item["name"] not in names:
                        raise ScenarioError(
                            f"{where}: [[{full}]] removes {item['name']!r}, which the base "
                            f"scenario does not have ({', '.join(map(str, names))})."
                        )
                    items.pop(names.index(item["name"]))
                elif item["name"] in names:
                    i = names.index(item["name"])
                    items[i] = {**items[i], **item}
                else:
                    items.append(item)
            out[key] = items
        else:
            out[key] = value
    return out


def parse_scenario(data: dict, where: str = "scenario") -> Scenario:
    """Validate a scenario given as a dict (the parsed TOML). See :func:`load_scenario`."""
    top = _Reader(data, "", where, SCHEMA[""])
    if top.has("extends"):
        raise ScenarioError(f"{where}: `extends` works only in a file read by load_scenario.")
    years = top.number("concession_years", DEFAULT_CONCESSION_YEARS, low=1, high=70, integer=True)
    if not 1 <= years <= 70:
        raise top.fail("concession_years", years, "must be between 1 and 70")
    models = top.texts("model", default=["activation"], choices=list(MODELS))
    community = top.text("community", None)
    package = _package(top, where)
    if package and community:
        raise ScenarioError(
            f"{where}: give either community = {community!r} or a [package], not both."
        )
    spaces = _Reader(top.table("spaces"), "spaces", where, SCHEMA["spaces"])
    kinds = spaces.texts("kinds", choices=list(KIND.codes))
    basis = spaces.text(
        "area_basis",
        "usable_area_m2",
        choices=("usable_area_m2", "floor_area_m2", "footprint_area_m2"),
    )
    classes = _use_classes(top, where)
    allocation = _Reader(top.table("allocation"), "allocation", where, SCHEMA["allocation"])
    rules = _rules(allocation, classes, where)
    overrides = allocation.table("overrides")
    for ref, use in overrides.items():
        if use not in classes:
            raise ScenarioError(
                f"{where}: allocation.overrides {ref} = {use!r} is not a use class; "
                f"use {', '.join(classes) or '(none defined: add [use_classes.NAME])'}."
            )
    streams = _streams(top, classes, years, where)
    works = _works(top, where)
    for s in streams:
        if s.type == "master_lease" and s.fit_out_yuan_unit:
            works.append(
                Works(
                    name=f"fit-out: {s.name}",
                    cost_wan=0.0,
                    year=max(s.start_year - 1, 0),
                    paid_by="operator",
                    community=s.community,
                    fit_out_of=s.name,
                )
            )
    contributions = _contributions(top, where)
    sales = _sales(top, where)
    subsidies = _subsidies(top, where)
    costs = _operating_costs(top, where)
    if not streams:
        raise ScenarioError(
            f"{where}: the operation stage has no flows; add at least one [[streams]] "
            '(e.g. type = "rent", or "property_fee").'
        )
    if not works and not contributions and not sales:
        raise ScenarioError(
            f"{where}: the renovation stage has no flows; add the [[works]] it pays for "
            "(name, cost_wan) — or contributions and sales."
        )
    for w in works:
        if w.year > years:
            raise ScenarioError(
                f"{where}: works {w.name!r} year = {w.year} is after the concession's last "
                f"year ({years}); phase it within the concession."
            )
    financing = _Reader(top.table("financing"), "financing", where, SCHEMA["financing"])
    tax = _Reader(top.table("tax"), "tax", where, SCHEMA["tax"])
    resolution = _Reader(
        top.table("gap_resolution"), "gap_resolution", where, SCHEMA["gap_resolution"]
    )
    return Scenario(
        name=top.text("name", where),
        models=models,
        community=community,
        package=package,
        concession_years=years,
        discount_rate=top.share("discount_rate"),
        first_year=top.number("first_year", None, low=1900, high=2100, integer=True),
        activated=spaces.texts("activated") if spaces.has("activated") else None,
        kinds=kinds or [k for k in KIND.codes if k not in NOT_MICRO_SPACE],
        area_basis=basis,
        use_classes=classes,
        rules=rules,
        overrides=overrides,
        streams=streams,
        operating_costs=costs,
        works=works,
        contributions=contributions,
        sales=sales,
        subsidies=subsidies,
        loan_share=financing.share("loan_share", 0.0),
        loan_rate=financing.share("loan_rate", 0.0),
        loan_term_years=financing.number("loan_term_years", 10, low=1, high=50, integer=True),
        tax_rate=tax.share("rate_on_net", 0.0),
        resolution_add=resolution.texts("add_spaces"),
        source=where,
        policy=top.text("policy", None),
    )


def _package(top: _Reader, where: str) -> Package | None:
    if not top.has("package"):
        return None
    r = _Reader(top.table("package"), "package", where, SCHEMA["package"])
    package = Package(
        communities=r.texts("communities"),
        street_office=r.text("street_office", None),
        district=r.text("district", None),
        bundled_with=r.text("bundled_with", None),
        max_gap_m=r.number("max_gap_m", 30.0),
    )
    given = [package.communities, package.street_office, package.district, package.bundled_with]
    if sum(map(bool, given)) != 1:
        raise ScenarioError(
            f'{where}: [package] takes one of communities = [...], street_office = "...", '
            'district = "..." or bundled_with = "COMMUNITY".'
        )
    return package


def _use_classes(top: _Reader, where: str) -> dict[str, UseClass]:
    classes = {}
    for name, raw in top.table("use_classes").items():
        path = f"use_classes.{name}"
        r = _Reader(raw, path, where, SCHEMA["use_classes.*"])
        if r.has("target_share") and r.has("target_area_m2"):
            raise ScenarioError(f"{where}: {path} gives target_share and target_area_m2; keep one.")
        if r.has("tariff_yuan_m2_day") == r.has("tariff_yuan_unit_month"):
            raise ScenarioError(
                f"{where}: {path} needs its tariff: tariff_yuan_m2_day (per m² and day) or "
                "tariff_yuan_unit_month (per unit and month), one of the two."
            )
        classes[name] = UseClass(
            name=name,
            label_zh=r.text("label_zh", name),
            label_en=r.text("label_en", name.replace("_", " ").capitalize()),
            tariff_yuan_m2_day=r.number("tariff_yuan_m2_day", 0.0),
            tariff_yuan_unit_month=r.number("tariff_yuan_unit_month", None),
            occupancy=r.share("occupancy"),
            target_share=r.share("target_share", None),
            target_area_m2=r.number("target_area_m2", None),
            escalation=r.rate("escalation"),
            current_uses=tuple(r.texts("current_uses")),
            permit_uses=tuple(r.texts("permit_uses")),
        )
    shares = {n: c.target_share for n, c in classes.items() if c.target_share is not None}
    if shares and len(shares) == len(classes) and abs(sum(shares.values()) - 1) > 1e-6:
        listed = ", ".join(f"{n} {v:.0%}" for n, v in shares.items())
        raise ScenarioError(
            f"{where}: use class target shares add up to {sum(shares.values()):.0%} "
            f"({listed}); they must add up to 100%."
        )
    return classes


def _rules(allocation: _Reader, classes: dict, where: str) -> list[AllocationRule]:
    rules = []
    for i, raw in enumerate(allocation.tables("rules"), start=1):
        name = f"allocation.rules[{i}]"
        r = _Reader(raw, name, where, SCHEMA["allocation.rules"])
        if not isinstance(raw.get("when"), dict) or not isinstance(raw.get("allow"), list):
            raise ScenarioError(
                f'{where}: {name} needs when = {{ ... }} and allow = ["semi_public", ...].'
            )
        unknown = sorted(set(raw["when"]) - set(RULE_TESTS))
        if unknown:
            raise ScenarioError(
                f"{where}: {name} tests {', '.join(unknown)}; a rule may test {', '.join(RULE_TESTS)}."
            )
        bad = [u for u in raw["allow"] if u not in classes]
        if bad or not raw["allow"]:
            raise ScenarioError(
                f"{where}: {name} allows unknown use class {', '.join(map(str, bad)) or '(none)'}; "
                f"use {', '.join(classes)}."
            )
        if raw["when"].get("title", "gap") not in ("gap", "clean"):
            raise ScenarioError(
                f'{where}: {name} title = {raw["when"]["title"]!r}; use "gap" or "clean".'
            )
        rules.append(
            AllocationRule(
                when=raw["when"],
                allow=raw["allow"],
                why=r.text("why", ""),
                permit=r.flag("permit", False),
            )
        )
    return rules


def _streams(top: _Reader, classes: dict, years: int, where: str) -> list[Stream]:
    streams: list[Stream] = []
    for i, raw in enumerate(top.tables("streams"), start=1):
        path = f"streams[{i}]"
        type_ = raw.get("type") if isinstance(raw, dict) else None
        if type_ not in STREAM_TYPES:
            raise ScenarioError(
                f"{where}: {path}.type = {type_!r}; a stream's type is one of "
                f"{', '.join(STREAM_TYPES)}."
            )
        r = _Reader(raw, path, where, SCHEMA[f"streams.{type_}"])
        s = Stream(
            type=type_,
            name=r.text("name", type_),
            label_zh=r.text("label_zh", ""),
            community=r.text("community", None),
            start_year=r.number("start_year", 1, low=1, high=years, integer=True),
            end_year=r.number("end_year", None, low=1, high=years, integer=True),
            ramp=r.numbers("ramp", high=1.0),
            escalation=r.rate("escalation"),
            cost_wan_year=r.number("cost_wan_year", 0.0),
            cost_yuan_m2_year=r.number("cost_yuan_m2_year", 0.0),
            cost_share=r.share("cost_share", 0.0),
            cost_escalation=r.rate("cost_escalation"),
        )
        if s.end_year is not None and s.end_year < s.start_year:
            raise r.fail("end_year", s.end_year, f"is before start_year ({s.start_year})")
        if any(x.name == s.name for x in streams):
            raise r.fail("name", s.name, "is the name of another stream; give each its own")
        if type_ == "rent" and not classes:
            raise ScenarioError(
                f"{where}: {path} is a rent stream, but the scenario defines no "
                "[use_classes.NAME] with tariffs."
            )
        if type_ == "parking":
            s.spaces = r.number("spaces", None, integer=True)
            s.fee_yuan_space_year = _one_of(
                r, {"fee_yuan_space_year": 1, "fee_yuan_space_month": 12}
            )
            s.occupancy = r.share("occupancy", 1.0)
        elif type_ == "property_fee":
            s.fee_yuan_m2_month = r.number("fee_yuan_m2_month")
            s.managed_floor_area_m2 = r.number("managed_floor_area_m2", None)
            s.collection_by_year = r.numbers("collection_by_year", high=1.0)
            s.collection_mature = r.share("collection_mature", 1.0)
        elif type_ == "fixed":
            s.wan_year = r.number("wan_year")
        elif type_ in ("per_unit", "master_lease"):
            s.units = r.number("units", None, integer=True)
            s.units_from_kind = r.text("units_from_kind", None, choices=list(KIND.codes))
            if (s.units is None) == (s.units_from_kind is None):
                raise ScenarioError(
                    f'{where}: {path} needs units = N or units_from_kind = "KIND" (counted '
                    "in the inventory), one of the two."
                )
            s.occupancy = r.share("occupancy", 1.0)
            if type_ == "per_unit":
                s.yuan_unit_year = _one_of(r, {"yuan_unit_year": 1, "yuan_unit_month": 12})
            else:
                s.lease_in_yuan_unit_month = r.number("lease_in_yuan_unit_month")
                s.let_out_yuan_unit_month = r.number("let_out_yuan_unit_month")
                s.term_years = r.number("term_years", None, low=1, high=years, integer=True)
                s.fit_out_yuan_unit = r.number("fit_out_yuan_unit", 0.0)
        streams.append(s)
    return streams


def _one_of(r: _Reader, keys: dict[str, int]) -> float:
    """Return the value of exactly one of ``keys``, times its factor (e.g. months → year)."""
    given = [k for k in keys if r.has(k)]
    if len(given) != 1:
        raise ScenarioError(
            f"{r.where}: {r.path} needs {' or '.join(keys)}, one of the two"
            f"{f' (it gives {len(given)})' if given else ''}."
        )
    return r.number(given[0]) * keys[given[0]]


def _party(r: _Reader, key: str, default: Any = _REQUIRED) -> str:
    return r.text(key, default, choices=list(PARTIES))


def _works(top: _Reader, where: str) -> list[Works]:
    out = []
    for i, raw in enumerate(top.tables("works"), start=1):
        r = _Reader(raw, f"works[{i}]", where, SCHEMA["works"])
        w = Works(
            name=r.text("name"),
            cost_wan=r.number("cost_wan", 0.0),
            cost_yuan_m2_floor=r.number("cost_yuan_m2_floor", 0.0),
            priority=r.number("priority", 1, low=1, integer=True),
            year=r.number("year", 0, integer=True),
            paid_by=_party(r, "paid_by", "operator"),
            community=r.text("community", None),
            items=r.number("items", 1, low=1, integer=True),
        )
        if r.has("cost_wan") == r.has("cost_yuan_m2_floor"):
            raise ScenarioError(
                f"{where}: works[{i}] ({w.name}) needs cost_wan or cost_yuan_m2_floor, one of the two."
            )
        out.append(w)
    return out


def _contributions(top: _Reader, where: str) -> list[Contribution]:
    out = []
    for i, raw in enumerate(top.tables("contributions"), start=1):
        path = f"contributions[{i}]"
        r = _Reader(raw, path, where, SCHEMA["contributions"])
        if r.has("party") == r.has("parties"):
            raise ScenarioError(
                f'{where}: {path} needs party = "..." or parties = [...] (with ratio or '
                "shares), one of the two."
            )
        if r.has("party"):
            parties, shares = [_party(r, "party")], [1.0]
        else:
            parties = r.texts("parties", choices=list(PARTIES))
            if r.has("ratio") == r.has("shares"):
                raise ScenarioError(
                    f"{where}: {path} shares among {', '.join(parties)}: give ratio = [1, 1.2] "
                    "or shares = [0.45, 0.55], one of the two."
                )
            if r.has("ratio"):
                ratio = r.numbers("ratio")
                if len(ratio) != len(parties) or not sum(ratio) > 0:
                    raise r.fail(
                        "ratio", ratio, f"needs one positive number per party ({len(parties)})"
                    )
                shares = [x / sum(ratio) for x in ratio]
            else:
                shares = r.numbers("shares", high=1.0)
                if len(shares) != len(parties):
                    raise r.fail("shares", shares, f"needs one share per party ({len(parties)})")
                if abs(sum(shares) - 1) > 1e-6:
                    raise r.fail(
                        "shares",
                        shares,
                        f"adds up to {sum(shares):.0%}; shares must add up to 100%",
                    )
        out.append(
            Contribution(
                name=r.text("name", " + ".join(parties)),
                parties=parties,
                shares=shares,
                wan=r.number("wan"),
                year=r.number("year", 0, integer=True),
                community=r.text("community", None),
                spaces=r.texts("spaces"),
                why=r.text("why", ""),
            )
        )
    return out


def _sales(top: _Reader, where: str) -> list[Sale]:
    out = []
    for i, raw in enumerate(top.tables("sales"), start=1):
        path = f"sales[{i}]"
        r = _Reader(raw, path, where, SCHEMA["sales"])
        s = Sale(
            name=r.text("name"),
            party=_party(r, "party", "residents"),
            price_yuan_m2=r.number("price_yuan_m2", 0.0),
            price_yuan_unit=r.number("price_yuan_unit", 0.0),
            area_m2=r.number("area_m2", None),
            area_per_unit_m2=r.number("area_per_unit_m2", None),
            area_from_kind=r.text("area_from_kind", None, choices=list(KIND.codes)),
            units=r.number("units", None, integer=True),
            units_from_kind=r.text("units_from_kind", None, choices=list(KIND.codes)),
            year=r.number("year", 0, integer=True),
            community=r.text("community", None),
        )
        if r.has("price_yuan_m2") == r.has("price_yuan_unit"):
            raise ScenarioError(
                f"{where}: {path} ({s.name}) needs price_yuan_m2 or price_yuan_unit, one of the two."
            )
        if r.has("price_yuan_m2"):
            ways = [
                s.area_m2 is not None,
                s.area_from_kind is not None,
                s.area_per_unit_m2 is not None,
            ]
            if sum(ways) != 1:
                raise ScenarioError(
                    f"{where}: {path} ({s.name}) sells by the m²: give area_m2, area_from_kind, "
                    "or area_per_unit_m2 with units / units_from_kind — one way."
                )
        if (s.price_yuan_unit or s.area_per_unit_m2 is not None) and (
            (s.units is None) == (s.units_from_kind is None)
        ):
            raise ScenarioError(
                f'{where}: {path} ({s.name}) needs units = N or units_from_kind = "KIND", '
                "one of the two."
            )
        out.append(s)
    return out


def _subsidies(top: _Reader, where: str) -> list[Subsidy]:
    out = []
    for i, raw in enumerate(top.tables("subsidies"), start=1):
        r = _Reader(raw, f"subsidies[{i}]", where, SCHEMA["subsidies"])
        party = _party(r, "party")
        out.append(
            Subsidy(
                name=r.text("name", party),
                party=party,
                by_year_wan=r.numbers("by_year_wan"),
                community=r.text("community", None),
            )
        )
    return out


def _operating_costs(top: _Reader, where: str) -> list[OperatingCost]:
    out = []
    for i, raw in enumerate(top.tables("operating_costs"), start=1):
        r = _Reader(raw, f"operating_costs[{i}]", where, SCHEMA["operating_costs"])
        out.append(
            OperatingCost(
                name=r.text("name"),
                wan_year=r.number("wan_year", 0.0),
                yuan_m2_year=r.number("yuan_m2_year", 0.0),
                by_year_wan=r.numbers("by_year_wan"),
                escalation=r.rate("escalation"),
                community=r.text("community", None),
                start_year=r.number("start_year", 1, low=1, integer=True),
                end_year=r.number("end_year", None, low=1, integer=True),
            )
        )
    return out
