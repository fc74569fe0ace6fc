"""Scenario files (TOML): reading and checking a revenue scenario before anything runs.

A scenario names the community, the concession, the use classes with their tariffs and
targets, the allocation rules, parking, property fees, services, subsidies, costs and
capex. Every problem is a :class:`~inventory.errors.ScenarioError` that names the file,
the key, the value and the fix. Shipped scenarios live in ``inventory/scenarios``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from inventory.errors import ScenarioError

USE_CLASSES = {
    "commercial": ("经营性", "Commercial"),
    "semi_public": ("半公益性", "Semi-public convenience"),
    "public": ("公益性", "Public welfare"),
}
WAN = 10_000.0
SHIPPED = Path(__file__).resolve().parent / "scenarios"
STREAMS = ("rent", "parking", "property_fee", "services")
PERIODS = ("year", "month")
DEFAULT_CONCESSION_YEARS = 20  # the Jinsong model's operating concession


@dataclass
class UseClass:
    """Tariff and targets of one use class."""

    name: str
    tariff_yuan_m2_day: float
    occupancy: float
    target_share: float
    escalation: float = 0.0  # yearly growth of the tariff from year 2


#: What an allocation rule may test, and how.
RULE_TESTS = ("kind", "vacancy", "land_type", "title", "min_area_m2", "max_area_m2")


@dataclass
class AllocationRule:
    """``allow`` only these use classes for spaces matching every condition in ``when``.

    ``when`` keys: kind, vacancy, land_type (a code or a list of codes), title ("gap" or
    "clean"), min_area_m2, max_area_m2. Rules about title and land stand aside when the
    gaps are taken as resolved.
    """

    when: dict
    allow: list[str]
    why: str = ""

    def matches(self, row: pd.Series, area: float) -> bool:
        """Whether the space in ``row`` (with its allocation ``area``) meets every condition."""
        for key, want in self.when.items():
            if key in ("min_area_m2", "max_area_m2"):
                if (key == "min_area_m2" and area < want) or (key == "max_area_m2" and area > want):
                    return False
            elif key == "title":
                has_gap = row["gap_severity"] is not None
                if has_gap != (want == "gap"):
                    return False
            elif row.get(key) not in (want if isinstance(want, list) else [want]):
                return False
        return True

    @property
    def about_title(self) -> bool:
        """Whether the rule is about title (it lapses when the gaps are resolved)."""
        return "title" in self.when or "land_type" in self.when


@dataclass
class Scenario:
    """A validated scenario (see ``inventory/scenarios/jinsong_north.toml``)."""

    name: str
    community: str | None
    concession_years: int
    discount_rate: float
    activated: list[str] | None
    area_basis: str
    use_classes: dict[str, UseClass]
    rules: list[AllocationRule]
    overrides: dict[str, str]
    parking_fee_yuan_space_year: float
    parking_occupancy: float
    parking_spaces: int | None
    property_fee_yuan_m2_month: float
    managed_floor_area_m2: float | None
    collection_by_year: list[float]
    collection_mature: float
    occupancy_ramp: list[float]
    parking_ramp: list[float]
    services_ramp: list[float]
    services_wan_year: float
    subsidy_wan_by_year: list[float]
    operating_wan_year: float
    operating_by_year_wan: list[float]
    cost_escalation: float
    capex_initial_wan: float
    capex_later_wan: dict[int, float]
    loan_share: float
    loan_rate: float
    loan_term_years: int
    tax_rate: float
    resolution_add: list[str] = field(default_factory=list)
    source: str = ""


def _get(data: dict, path: str, kind=float, default=..., where: str = ""):
    node = data
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            if default is ...:
                raise ScenarioError(f"{where}: missing {path!r}. Add it to the scenario file.")
            return default
        node = node[key]
    if kind is float and isinstance(node, int | float) and not isinstance(node, bool):
        return float(node)
    if kind is int and isinstance(node, int) and not isinstance(node, bool):
        return node
    if kind in (list, dict, str, bool) and isinstance(node, kind):
        return node
    raise ScenarioError(f"{where}: {path} = {node!r} should be a {kind.__name__}.")


def _fraction(value: float, path: str, where: str) -> float:
    if not 0 <= value <= 1:
        raise ScenarioError(f"{where}: {path} = {value} must be between 0 and 1 (a share).")
    return value


def _non_negative(value: float, path: str, where: str) -> float:
    if value < 0:
        raise ScenarioError(f"{where}: {path} = {value} cannot be negative.")
    return value


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file (TOML). ``jinsong_north`` names the shipped one.

    Raises:
        ScenarioError: the file is missing, not TOML, or a value is missing or wrong
            (with the key, the value and what it should be).

    """
    p = Path(path)
    if not p.exists() and (SHIPPED / f"{p.name}.toml").exists():
        p = SHIPPED / f"{p.name}.toml"
    where = p.name
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        shipped = ", ".join(f.stem for f in SHIPPED.glob("*.toml"))
        raise ScenarioError(
            f"Scenario file not found: {p}. Shipped scenarios: {shipped}."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{where} is not valid TOML ({exc}).") from None
    return parse_scenario(data, where=where)


def parse_scenario(data: dict, where: str = "scenario") -> Scenario:
    """Validate a scenario given as a dict (the parsed TOML). See :func:`load_scenario`."""
    classes_raw = _get(data, "use_classes", dict, where=where)
    unknown = sorted(set(classes_raw) - set(USE_CLASSES))
    if unknown:
        raise ScenarioError(
            f"{where}: unknown use class {', '.join(unknown)}; use classes are "
            f"{', '.join(USE_CLASSES)}."
        )
    classes = {}
    for name in USE_CLASSES:
        if name not in classes_raw:
            raise ScenarioError(f"{where}: missing [use_classes.{name}] with its tariff.")
        prefix = f"use_classes.{name}"
        classes[name] = UseClass(
            name=name,
            tariff_yuan_m2_day=_non_negative(
                _get(data, f"{prefix}.tariff_yuan_m2_day", where=where),
                f"{prefix}.tariff_yuan_m2_day",
                where,
            ),
            occupancy=_fraction(
                _get(data, f"{prefix}.occupancy", where=where), f"{prefix}.occupancy", where
            ),
            target_share=_fraction(
                _get(data, f"{prefix}.target_share", where=where), f"{prefix}.target_share", where
            ),
            escalation=_get(data, f"{prefix}.escalation", default=0.0, where=where),
        )
    total = sum(c.target_share for c in classes.values())
    if abs(total - 1) > 1e-6:
        shares = ", ".join(f"{n} {c.target_share:.0%}" for n, c in classes.items())
        raise ScenarioError(
            f"{where}: use class target shares add up to {total:.0%} ({shares}); they must add up to 100%."
        )

    overrides = _get(data, "allocation.overrides", dict, default={}, where=where)
    for ref, use in overrides.items():
        if use not in USE_CLASSES:
            raise ScenarioError(
                f"{where}: allocation.overrides {ref} = {use!r} is not a use class; use {', '.join(USE_CLASSES)}."
            )
    years = _get(data, "concession_years", int, default=DEFAULT_CONCESSION_YEARS, where=where)
    if not 1 <= years <= 70:
        raise ScenarioError(f"{where}: concession_years = {years} must be between 1 and 70.")
    basis = _get(data, "spaces.area_basis", str, default="usable_area_m2", where=where)
    if basis not in ("usable_area_m2", "floor_area_m2", "footprint_area_m2"):
        raise ScenarioError(
            f"{where}: spaces.area_basis = {basis!r}; use usable_area_m2, floor_area_m2 or footprint_area_m2."
        )

    def fractions(path: str) -> list[float]:
        values = _get(data, path, list, default=[], where=where)
        return [_fraction(float(v), path, where) for v in values]

    later = {
        int(k): _non_negative(float(v), f"costs.capex_later_wan.{k}", where)
        for k, v in _get(data, "costs.capex_later_wan", dict, default={}, where=where).items()
    }
    parking_spaces = (
        None
        if _get(data, "parking.spaces_from_inventory", bool, default=True, where=where)
        else int(
            _non_negative(_get(data, "parking.spaces", float, where=where), "parking.spaces", where)
        )
    )
    managed = (
        None
        if _get(
            data, "property_fee.managed_floor_area_from_inventory", bool, default=True, where=where
        )
        else _non_negative(
            _get(data, "property_fee.managed_floor_area_m2", where=where),
            "property_fee.managed_floor_area_m2",
            where,
        )
    )
    return Scenario(
        name=_get(data, "name", str, default=where, where=where),
        community=_get(data, "community", str, default=None, where=where),
        concession_years=years,
        discount_rate=_fraction(_get(data, "discount_rate", where=where), "discount_rate", where),
        activated=_get(data, "spaces.activated", list, default=None, where=where),
        area_basis=basis,
        use_classes=classes,
        rules=_rules(data, where),
        overrides=overrides,
        parking_fee_yuan_space_year=_non_negative(
            _get(data, "parking.fee_yuan_space_year", where=where),
            "parking.fee_yuan_space_year",
            where,
        ),
        parking_occupancy=_fraction(
            _get(data, "parking.occupancy", where=where), "parking.occupancy", where
        ),
        parking_spaces=parking_spaces,
        property_fee_yuan_m2_month=_non_negative(
            _get(data, "property_fee.fee_yuan_m2_month", where=where),
            "property_fee.fee_yuan_m2_month",
            where,
        ),
        managed_floor_area_m2=managed,
        collection_by_year=fractions("property_fee.collection_by_year"),
        collection_mature=_fraction(
            _get(data, "property_fee.collection_mature", where=where),
            "property_fee.collection_mature",
            where,
        ),
        occupancy_ramp=fractions("ramp.occupancy_factor_by_year"),
        parking_ramp=fractions("ramp.parking_factor_by_year"),
        services_ramp=fractions("ramp.services_factor_by_year"),
        services_wan_year=_non_negative(
            _get(data, "services.value_added_wan_year", default=0.0, where=where),
            "services.value_added_wan_year",
            where,
        ),
        subsidy_wan_by_year=[
            _non_negative(float(v), "subsidy.by_year_wan", where)
            for v in _get(data, "subsidy.by_year_wan", list, default=[], where=where)
        ],
        operating_by_year_wan=[
            _non_negative(float(v), "costs.operating_by_year_wan", where)
            for v in _get(data, "costs.operating_by_year_wan", list, default=[], where=where)
        ],
        operating_wan_year=_non_negative(
            _get(data, "costs.operating_wan_year", where=where), "costs.operating_wan_year", where
        ),
        cost_escalation=_get(data, "costs.escalation", default=0.0, where=where),
        capex_initial_wan=_non_negative(
            _get(data, "costs.capex_initial_wan", where=where), "costs.capex_initial_wan", where
        ),
        capex_later_wan=later,
        loan_share=_fraction(
            _get(data, "financing.loan_share", default=0.0, where=where),
            "financing.loan_share",
            where,
        ),
        loan_rate=_fraction(
            _get(data, "financing.loan_rate", default=0.0, where=where),
            "financing.loan_rate",
            where,
        ),
        loan_term_years=_get(data, "financing.loan_term_years", int, default=10, where=where),
        tax_rate=_fraction(
            _get(data, "tax.rate_on_net", default=0.0, where=where), "tax.rate_on_net", where
        ),
        resolution_add=_get(data, "gap_resolution.add_spaces", list, default=[], where=where),
        source=where,
    )


def _rules(data: dict, where: str) -> list[AllocationRule]:
    rules = []
    for i, raw in enumerate(_get(data, "allocation.rules", list, default=[], where=where), start=1):
        name = f"allocation.rules[{i}]"
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("when"), dict)
            or not isinstance(raw.get("allow"), list)
        ):
            raise ScenarioError(
                f'{where}: {name} needs when = {{ ... }} and allow = ["semi_public", ...].'
            )
        unknown = sorted(set(raw["when"]) - set(RULE_TESTS))
        if unknown:
            raise ScenarioError(
                f"{where}: {name} tests {', '.join(unknown)}; a rule may test {', '.join(RULE_TESTS)}."
            )
        bad = [u for u in raw["allow"] if u not in USE_CLASSES]
        if bad or not raw["allow"]:
            raise ScenarioError(
                f"{where}: {name} allows unknown use class {', '.join(map(str, bad)) or '(none)'}; use {', '.join(USE_CLASSES)}."
            )
        if raw["when"].get("title", "gap") not in ("gap", "clean"):
            raise ScenarioError(
                f'{where}: {name} title = {raw["when"]["title"]!r}; use "gap" or "clean".'
            )
        rules.append(
            AllocationRule(when=raw["when"], allow=raw["allow"], why=str(raw.get("why", "")))
        )
    return rules


# ---- use allocation -----------------------------------------------------------------------
