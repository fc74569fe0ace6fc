"""Revenue: the shipped Jinsong scenario reproduces the published figures; the engine is
checked against hand-computed cash flows; bad scenarios get clear errors."""

from __future__ import annotations

import copy
import re
import tomllib

import pandas as pd
import pytest
from typer.testing import CliRunner

from inventory.cli import app
from inventory.errors import ScenarioError
from inventory.revenue import allocate, cash_flow, estimate, metrics, monthly_cash_flow
from inventory.scenario import SHIPPED, load_scenario, parse_scenario
from tests.util import frame, room


@pytest.fixture(scope="module")
def jinsong_data():
    return tomllib.loads((SHIPPED / "jinsong_north.toml").read_text(encoding="utf-8"))


# ---- the published figures --------------------------------------------------------------


def test_jinsong_scenario_reproduces_the_published_figures(sample):
    result = estimate(sample, load_scenario("jinsong_north"), managed_floor_area_m2=200_000)
    m = result.variants["as surveyed"].metrics
    streams = m.revenue_by_stream_wan
    assert m.mature_revenue_wan == pytest.approx(627, rel=0.01)
    assert streams["rent"] == pytest.approx(267, rel=0.01)
    assert streams["parking"] == pytest.approx(110, rel=0.01)
    assert streams["property_fee"] == pytest.approx(220, rel=0.01)
    assert streams["services"] == pytest.approx(30, rel=0.01)
    assert m.mature_operating_cost_wan == pytest.approx(279)
    assert 9 <= m.payback_year <= 11  # "balance after 10 years of operation"
    assert 0.07 <= m.irr <= 0.10 and m.irr_unique  # "~8% return over 20 years"


def test_revenue_at_risk(sample):
    result = estimate(sample, load_scenario("jinsong_north"), managed_floor_area_m2=200_000)
    # ~30% of the rooms lack complete title and bring ~20% of the rent
    assert 0.15 <= result.at_risk_rent_share <= 0.25
    revenue = {n: v.metrics.mature_revenue_wan for n, v in result.variants.items()}
    assert revenue["clean titles only"] < revenue["as surveyed"] < revenue["all gaps resolved"]
    resolved = result.variants["all gaps resolved"].allocation.set_index("survey_ref")
    # the boiler room, once its land may change use: "≥ 3.5 million yuan/year"
    assert resolved.loc["JS-013", "rent_wan_year_mature"] >= 350
    surveyed = result.variants["as surveyed"].allocation
    gap_rooms = surveyed[surveyed["gap_severity"].notna()]
    assert set(gap_rooms["use_class"]) <= {"semi_public", "public"}


def test_allocation_meets_the_target_shares(sample):
    scenario = load_scenario("jinsong_north")
    alloc = allocate(sample[sample["survey_ref"].isin(scenario.activated)], scenario)
    shares = alloc.groupby("use_class")["area_m2"].sum() / alloc["area_m2"].sum()
    assert shares["semi_public"] == pytest.approx(0.60, abs=0.05)
    assert shares["commercial"] == pytest.approx(0.30, abs=0.05)
    assert shares["public"] == pytest.approx(0.10, abs=0.05)


def test_every_number_in_the_shipped_scenario_is_explained():
    text = (SHIPPED / "jinsong_north.toml").read_text(encoding="utf-8")
    numeric = re.compile(r"[\d.\-\s,\[\]]*\d[\d.\-\s,\[\]]*")
    for line in text.splitlines():
        if line.lstrip().startswith("#") or "=" not in line:
            continue
        value = line.partition("=")[2]
        if numeric.fullmatch(value.split("#")[0].strip()):
            assert "#" in value, f"a number without its source or assumption: {line}"


# ---- the engine, by hand -------------------------------------------------------------------


def _tiny(**changes) -> dict:
    data = {
        "concession_years": 5,
        "discount_rate": 0.10,
        "spaces": {"area_basis": "floor_area_m2"},
        "use_classes": {
            "commercial": {"tariff_yuan_m2_day": 10.0, "occupancy": 1.0, "target_share": 1.0},
            "semi_public": {"tariff_yuan_m2_day": 4.0, "occupancy": 1.0, "target_share": 0.0},
            "public": {"tariff_yuan_m2_day": 0.0, "occupancy": 1.0, "target_share": 0.0},
        },
        "parking": {
            "spaces_from_inventory": False,
            "spaces": 0,
            "fee_yuan_space_year": 0,
            "occupancy": 1.0,
        },
        "property_fee": {
            "fee_yuan_m2_month": 0.0,
            "managed_floor_area_from_inventory": False,
            "managed_floor_area_m2": 1.0,
            "collection_mature": 1.0,
        },
        "costs": {"operating_wan_year": 0.0, "capex_initial_wan": 100.0},
    }
    for path, value in changes.items():
        node = data
        *head, last = path.split(".")
        for key in head:
            node = node.setdefault(key, {})
        node[last] = value
    return data


def _rooms(*areas):
    base = {
        "kind": "service_room",
        "land_type": "granted",
        "disputed": False,
        "owner_type": "government",
        "owner_name": "街道",
        "certificate_status": "complete",
        "operating_right_end": None,
    }
    return frame(
        [
            {
                **base,
                "survey_ref": f"R{i}",
                "floor_area_m2": a,
                "usable_area_m2": a,
                "footprint_area_m2": a,
                "geometry": room(0, 0),
            }
            for i, a in enumerate(areas)
        ]
    )


def test_cash_flow_npv_irr_payback_by_hand():
    scenario = parse_scenario(_tiny())
    alloc = allocate(_rooms(100.0), scenario)
    cf = cash_flow(alloc, scenario, parking_spaces=0, managed_floor_area_m2=1.0)
    rent = 100 * 10 * 365 / 10_000  # 36.5 万元 a year
    assert cf["net"].tolist() == pytest.approx([-100, rent, rent, rent, rent, rent])
    m = metrics(cf, 0.10)
    npv = -100 + sum(rent / 1.1**t for t in range(1, 6))
    assert m.npv_wan == pytest.approx(npv, abs=0.05)
    assert m.payback_year == 3  # -63.5, -27.0, +9.5
    assert sum(c / (1 + m.irr) ** t for t, c in enumerate(cf["net"])) == pytest.approx(0, abs=0.05)
    assert m.irr == pytest.approx(0.2405, abs=0.001)


def test_monthly_flows_add_up_to_the_years_and_pay_back_to_the_month():
    scenario = parse_scenario(
        _tiny(**{"costs.operating_wan_year": 6.0, "costs.capex_later_wan": {"3": 24.0}})
    )
    yearly = cash_flow(
        allocate(_rooms(100.0), scenario), scenario, parking_spaces=0, managed_floor_area_m2=1.0
    )
    monthly = monthly_cash_flow(yearly, scenario)
    assert len(monthly) == 12 * 5 + 1
    by_year = monthly.groupby("year")[["rent", "operating_cost", "capex", "net"]].sum()
    for col in by_year.columns:
        assert by_year[col].tolist() == pytest.approx(yearly[col].tolist(), abs=0.01), col
    assert monthly.loc[1, "rent"] == pytest.approx(36.5 / 12, abs=1e-4)
    assert monthly.loc[25, "capex"] == 24.0  # first month of year 3
    assert monthly.loc[26, "capex"] == 0.0
    # -100 + 2.5417 m >= 0 from month 40, but year 3's capex sets it back by 24 in month 25:
    # -100 + 2.5417 * 25 - 24 = -60.5; then +2.5417 a month: >= 0 from month 49
    m = metrics(yearly, 0.10, monthly)
    assert m.payback_month == 49
    assert m.payback_year == 5 == (m.payback_month + 11) // 12
    # a month-end flow at month 12y is discounted as the yearly flow of year y
    assert monthly.loc[12, "discounted"] == pytest.approx(monthly.loc[12, "net"] / 1.1, abs=1e-4)


def test_monthly_loan_is_an_annuity_of_monthly_payments():
    scenario = parse_scenario(
        _tiny(
            **{
                "financing.loan_share": 0.6,
                "financing.loan_rate": 0.06,
                "financing.loan_term_years": 2,
            }
        )
    )
    yearly = cash_flow(
        allocate(_rooms(100.0), scenario), scenario, parking_spaces=0, managed_floor_area_m2=1.0
    )
    monthly = monthly_cash_flow(yearly, scenario)
    assert monthly.loc[0, "net"] == pytest.approx(-40)
    assert monthly.loc[1, "interest"] == pytest.approx(60 * 0.005, abs=1e-4)
    payment = 60 * 0.005 / (1 - 1.005**-24)  # the annuity formula
    paid = monthly["interest"] + monthly["repayment"]
    assert paid[1:25].tolist() == pytest.approx([payment] * 24, abs=1e-3)
    assert monthly["repayment"].sum() == pytest.approx(60, abs=0.01)
    assert (monthly.loc[25:, "repayment"] == 0).all()


def test_ramp_subsidy_and_escalation_by_hand():
    scenario = parse_scenario(
        _tiny(
            **{
                "ramp.occupancy_factor_by_year": [0.5],
                "subsidy.by_year_wan": [10.0],
                "costs.operating_wan_year": 5.0,
                "costs.escalation": 0.1,
            }
        )
    )
    cf = cash_flow(
        allocate(_rooms(100.0), scenario), scenario, parking_spaces=0, managed_floor_area_m2=1.0
    )
    assert cf.loc[1, "rent"] == pytest.approx(18.25)
    assert cf.loc[1, "net"] == pytest.approx(18.25 + 10 - 5)
    assert cf.loc[3, "operating_cost"] == pytest.approx(5 * 1.1**2)


def test_tariff_escalation_and_costs_by_year_by_hand():
    scenario = parse_scenario(
        _tiny(
            **{"use_classes.commercial.escalation": 0.05, "costs.operating_by_year_wan": [1.0, 2.0]}
        )
    )
    cf = cash_flow(
        allocate(_rooms(100.0), scenario), scenario, parking_spaces=0, managed_floor_area_m2=1.0
    )
    assert cf.loc[3, "rent"] == pytest.approx(
        36.5 * 1.05**2, abs=1e-3
    )  # flows are kept to 3 decimals
    assert cf["operating_cost"].tolist()[:4] == [0.0, 1.0, 2.0, 0.0]


def test_non_unique_irr_is_flagged():
    # a large capex late in the concession makes the flows change sign three times
    scenario = parse_scenario(_tiny(**{"costs.capex_later_wan": {"4": 200.0}}))
    cf = cash_flow(
        allocate(_rooms(100.0), scenario), scenario, parking_spaces=0, managed_floor_area_m2=1.0
    )
    m = metrics(cf, 0.10)
    assert m.sign_changes == 3 and not m.irr_unique


def test_loan_is_repaid_within_its_term():
    scenario = parse_scenario(
        _tiny(
            **{
                "financing.loan_share": 0.5,
                "financing.loan_rate": 0.05,
                "financing.loan_term_years": 3,
            }
        )
    )
    cf = cash_flow(
        allocate(_rooms(100.0), scenario), scenario, parking_spaces=0, managed_floor_area_m2=1.0
    )
    assert cf["repayment"].sum() == pytest.approx(50, abs=0.01)
    assert cf.loc[0, "net"] == pytest.approx(-50)  # equity share of the capex


def test_rules_by_kind_size_and_vacancy():
    data = _tiny(
        **{
            "use_classes.commercial.target_share": 0.5,
            "use_classes.semi_public.target_share": 0.5,
            "allocation.rules": [
                {"when": {"kind": "basement"}, "allow": ["semi_public"]},
                {"when": {"max_area_m2": 30}, "allow": ["semi_public", "public"]},
                {"when": {"vacancy": "idle", "min_area_m2": 500}, "allow": ["public"]},
            ],
        }
    )
    rooms = _rooms(200.0, 200.0, 25.0, 600.0)
    rooms["kind"] = ["basement", "service_room", "service_room", "service_room"]
    rooms["vacancy"] = ["in_use", "in_use", "in_use", "idle"]
    alloc = allocate(rooms, parse_scenario(data)).set_index("survey_ref")
    assert alloc.loc["R0", "use_class"] == "semi_public"  # a basement
    assert alloc.loc["R2", "use_class"] in ("semi_public", "public")  # 25 m²: no shop
    assert alloc.loc["R3", "use_class"] == "public"  # large and idle
    assert alloc.loc["R1", "use_class"] == "commercial"


def test_rule_errors():
    with pytest.raises(ScenarioError, match="a rule may test kind, vacancy"):
        parse_scenario(
            _tiny(**{"allocation.rules": [{"when": {"colour": "red"}, "allow": ["public"]}]})
        )
    with pytest.raises(ScenarioError, match="allows unknown use class luxury"):
        parse_scenario(
            _tiny(**{"allocation.rules": [{"when": {"kind": "basement"}, "allow": ["luxury"]}]})
        )
    tight = parse_scenario(
        _tiny(
            **{
                "allocation.rules": [
                    {"when": {"kind": "service_room"}, "allow": ["public"]},
                    {"when": {"min_area_m2": 10}, "allow": ["commercial"]},
                ]
            }
        )
    )
    with pytest.raises(ScenarioError, match="No use class is left for R0"):
        allocate(_rooms(100.0), tight)


# ---- validation -------------------------------------------------------------------------------


def test_missing_tariff(jinsong_data):
    data = copy.deepcopy(jinsong_data)
    del data["use_classes"]["commercial"]["tariff_yuan_m2_day"]
    with pytest.raises(ScenarioError, match=r"missing 'use_classes.commercial.tariff_yuan_m2_day'"):
        parse_scenario(data)


def test_shares_must_add_up_to_100(jinsong_data):
    data = copy.deepcopy(jinsong_data)
    data["use_classes"]["public"]["target_share"] = 0.2
    with pytest.raises(ScenarioError, match=r"add up to 110%.*must add up to 100%"):
        parse_scenario(data)


def test_unknown_use_class(jinsong_data):
    data = copy.deepcopy(jinsong_data)
    data["use_classes"]["luxury"] = {"tariff_yuan_m2_day": 20, "occupancy": 1, "target_share": 0}
    with pytest.raises(ScenarioError, match="unknown use class luxury"):
        parse_scenario(data)
    data = copy.deepcopy(jinsong_data)
    data["allocation"]["overrides"] = {"JS-001": "luxury"}
    with pytest.raises(ScenarioError, match="JS-001 = 'luxury' is not a use class"):
        parse_scenario(data)


def test_negative_values(jinsong_data):
    data = copy.deepcopy(jinsong_data)
    data["costs"]["capex_initial_wan"] = -5
    with pytest.raises(ScenarioError, match="capex_initial_wan = -5.0 cannot be negative"):
        parse_scenario(data)
    rooms = _rooms(100.0, -20.0)
    with pytest.raises(ScenarioError, match="R1 have no usable or negative area"):
        allocate(rooms, parse_scenario(_tiny()))


def test_concession_is_twenty_years_unless_said(jinsong_data):
    data = copy.deepcopy(jinsong_data)
    del data["concession_years"]
    assert parse_scenario(data).concession_years == 20
    data["concession_years"] = 0
    with pytest.raises(ScenarioError, match="concession_years = 0 must be between 1 and 70"):
        parse_scenario(data)


def test_scenario_file_errors(tmp_path):
    with pytest.raises(ScenarioError, match="Shipped scenarios: jinsong_north"):
        load_scenario(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("concession_years = ", encoding="utf-8")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(bad)


# ---- command line ------------------------------------------------------------------------------


def test_revenue_command(sample, db_url, tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "revenue",
            "--db",
            db_url,
            "--output",
            str(tmp_path / "rev.xlsx"),
            "--plot",
            str(tmp_path / "cash.png"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "20% of the rent" in result.output
    summary = pd.read_excel(tmp_path / "rev.xlsx")
    assert summary.loc[0, "revenue_wan"] == pytest.approx(627, rel=0.01)
    assert summary["variant"].tolist() == ["as surveyed", "clean titles only", "all gaps resolved"]
    assert (tmp_path / "cash.png").read_bytes()[:4] == b"\x89PNG"


def test_revenue_command_by_month(sample, db_url, tmp_path):
    out = tmp_path / "revenue.csv"
    result = CliRunner().invoke(
        app, ["revenue", "--db", db_url, "--period", "month", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "Monthly cash flow as surveyed" in result.output
    summary = pd.read_csv(out)
    monthly = pd.read_csv(tmp_path / "revenue_monthly.csv")
    assert len(monthly) == 3 * (12 * 20 + 1)
    surveyed = monthly[monthly["variant"] == "as surveyed"]
    assert surveyed["rent"].sum() == pytest.approx(
        summary.loc[0, "rent_wan"] * 20, rel=0.2
    )  # twenty years of rent, ramping up to the mature year's
    year = (summary.loc[0, "payback_month"] + 11) // 12
    assert year == summary.loc[0, "payback_year"]
    bad = CliRunner().invoke(app, ["revenue", "--db", db_url, "--period", "week"])
    assert bad.exit_code == 1
    assert "'week'" in bad.output and "year or month" in bad.output
