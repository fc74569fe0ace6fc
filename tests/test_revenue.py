"""Revenue: the shipped scenarios reproduce the published balances of the renewal models;
the engine is checked against hand-computed cash flows; bad scenarios get clear errors."""

from __future__ import annotations

import copy
import re
import tomllib
import warnings

import pandas as pd
import pytest
from typer.testing import CliRunner

from inventory import samples
from inventory.cli import app
from inventory.errors import ScenarioError
from inventory.revenue import allocate, compare, estimate, estimate_in_store
from inventory.scenario import SCHEMA, SHIPPED, load_scenario, parse_scenario, shipped_scenarios
from tests.util import frame, room

JINSONG_FLOOR_AREA = 200_000  # "~200,000 m² floor area"


@pytest.fixture(scope="module")
def jinsong_data():
    return tomllib.loads((SHIPPED / "jinsong_north.toml").read_text(encoding="utf-8"))


def _jinsong(sample, name="jinsong_north"):
    return estimate(sample, load_scenario(name), managed_floor_area_m2=JINSONG_FLOOR_AREA)


def _case(name):
    communities, spaces = samples.renewal_case(name)
    return estimate(spaces, load_scenario(name), communities=communities)


# ---- Jinsong North: activation --------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["jinsong_north", "jinsong_north_3100"])
def test_jinsong_reproduces_the_published_figures(sample, scenario):
    result = _jinsong(sample, scenario)
    m = result.surveyed.metrics
    streams = m.revenue_by_stream_wan
    assert m.mature_revenue_wan == pytest.approx(627, rel=0.01)  # Rk
    assert streams["rent"] == pytest.approx(267, rel=0.01)
    assert streams["parking"] == pytest.approx(110, rel=0.01)
    assert streams["property_fee"] == pytest.approx(220, rel=0.01)
    assert streams["services"] == pytest.approx(30, rel=0.01)
    assert m.mature_operating_cost_wan == pytest.approx(279)  # Ck
    assert m.payback_year == 10  # "balance after 10 years of operation"
    assert 0.07 <= m.irr <= 0.10 and m.irr_unique  # "~8% return over 20 years"
    operator = 3000 if scenario == "jinsong_north" else 3100
    assert m.renovation_balance_wan == -operator  # the operator's works; government's net out
    assert m.renovation_cost_wan == operator + 4600  # "plus ~4,600 of government works"
    assert result.who_pays() == {"government": 4600, "operator": operator}


def test_jinsong_property_management_runs_short_and_breaks_even_at_scale(sample):
    pnl = _jinsong(sample).streams().set_index("stream")
    fee = pnl.loc["property_fee"]
    # "the basic property management alone still runs a deficit of 59 万元 a year, 14.5% of
    # the other revenue"; "management breaks even above ~800,000 m²"
    assert -fee["result_wan"] == pytest.approx(59, abs=1.5)
    assert fee["loss_share_of_other_revenue_pct"] == pytest.approx(14.5, abs=0.5)
    assert fee["break_even_managed_area_m2"] == pytest.approx(800_000, rel=0.01)
    assert pnl.loc["rent", "result_wan"] > 0 and pnl.loc["rent", "cost_wan"] == 0


def test_jinsong_allocation_reproduces_the_published_areas(sample):
    alloc = _jinsong(sample).surveyed.allocation.set_index("survey_ref")
    areas = alloc.groupby("use_class")["area_m2"].sum()
    # "~600 m² commercial, ~1,000 semi-public, ~100 public"
    assert areas["commercial"] == pytest.approx(600, rel=0.06)
    assert areas["semi_public"] == pytest.approx(1000, rel=0.07)
    assert areas["public"] == pytest.approx(100, rel=0.05)
    # the surveyed current use decides: living room free, canteen semi-public, bakery commercial
    assert alloc.loc["JS-005", "use_class"] == "public"  # 社区客厅
    assert alloc.loc["JS-009", "use_class"] == "semi_public"  # 社区食堂
    assert alloc.loc["JS-010", "use_class"] == "commercial"  # 烘焙坊
    assert "current use 烘焙坊" in alloc.loc["JS-010", "reason"]


def test_a_blocking_gap_earns_nothing_and_counts_at_risk(sample):
    result = _jinsong(sample)
    alloc = result.surveyed.allocation.set_index("survey_ref")
    # JS-011: disputed between two owning units: cannot be leased
    assert not alloc.loc["JS-011", "earns"] and alloc.loc["JS-011", "rent_wan_year_mature"] == 0
    assert "blocking" in alloc.loc["JS-011", "reason"]
    assert "JS-011" in result.blocked and "JS-006" in result.blocked
    resolved = result.variants["all gaps resolved"].allocation.set_index("survey_ref")
    assert result.foregone_rent_wan == pytest.approx(
        resolved.loc[result.blocked, "rent_wan_year_mature"].sum(), abs=0.05
    )
    assert result.foregone_rent_wan > 0
    # rooms with a transitional gap earn, under a permit, and are the rent at risk
    assert alloc.loc["JS-003", "earns"] and 0.05 < result.at_risk_rent_share < 0.25
    gap_rooms = alloc[alloc["gap_severity"].notna()]
    assert set(gap_rooms["use_class"]) <= {"semi_public", "public", "elderly_care"}
    revenue = {n: v.metrics.mature_revenue_wan for n, v in result.variants.items()}
    assert revenue["clean titles only"] < revenue["as surveyed"] < revenue["all gaps resolved"]
    # the boiler room, once its land may change use: "≥ 3.5 million yuan/year", as elderly care
    assert resolved.loc["JS-013", "rent_wan_year_mature"] >= 350
    assert resolved.loc["JS-013", "use_class"] == "elderly_care"


def test_collection_reaches_80_percent_in_2020(sample):
    cf = _jinsong(sample).surveyed.cash_flow.set_index("calendar_year")
    full = 1.15 * 12 * JINSONG_FLOOR_AREA / 10_000  # at 100% collection
    assert cf.loc[2020, "property_fee"] == pytest.approx(0.8 * full, rel=0.001)
    assert cf.loc[2019, "property_fee"] < cf.loc[2020, "property_fee"]


def test_phasing_the_overhead_lines_by_demand(sample):
    base, phased = _jinsong(sample), _jinsong(sample, "jinsong_north_phased")
    assert phased.surveyed.cash_flow.loc[6, "works"] == 512  # deferred to year 6
    assert (
        phased.surveyed.cash_flow.loc[0, "works"] == base.surveyed.cash_flow.loc[0, "works"] - 512
    )
    assert phased.surveyed.metrics.npv_wan > base.surveyed.metrics.npv_wan
    lines = phased.stages().set_index("item")
    assert lines.loc["架空线入地 overhead lines buried", "year"] == 6


def test_shipped_scenarios_cite_the_studies_and_explain_every_number():
    numeric = re.compile(r"[\d.\-\s,\[\]]*\d[\d.\-\s,\[\]]*")
    for name in shipped_scenarios():
        text = (SHIPPED / f"{name}.toml").read_text(encoding="utf-8")
        assert "domain brief" not in text and "shared/" not in text, name
        assert re.search(r"Tang|Liang", text), f"{name} cites no study"
        for line in text.splitlines():
            if line.lstrip().startswith("#") or "=" not in line:
                continue
            value = line.partition("=")[2]
            if numeric.fullmatch(value.split("#")[0].strip()):
                assert "#" in value, f"{name}: a number without its source or assumption: {line}"


# ---- the other published models ---------------------------------------------------------------


def test_zhegong_expand_and_sell_balances_in_the_renovation_stage():
    result = _case("zhegong")
    m = result.surveyed.metrics
    assert m.renovation_cost_wan == 53000  # "cost ~5.3亿"
    assert abs(m.renovation_balance_wan) <= 0.01 * m.renovation_cost_wan  # balances
    pays = result.who_pays()
    assert 46000 <= pays["residents"] <= 47100  # "residents ~4.6–4.7亿"
    assert pays["city"] == 6000  # "city subsidy 0.6亿"
    sales = result.stages().query("line == 'Ro sale'").set_index("item")["amount_wan"]
    assert sales["地下车位 underground parking spaces"] == 460 * 20  # 460 spaces at ~20万
    assert sales["原面积回购 1:1 replacement bought back at cost"] == pytest.approx(
        30000 * 1350 / 10_000  # the old flats' floor area in the inventory, at cost
    )
    # "later parking operation and property fees cover yearly upkeep with a small surplus"
    assert 0 < m.operation_balance_wan < 0.1 * m.mature_revenue_wan
    assert m.payback_year == 0


def test_guangming_public_housing_conversion_adds_up_to_2038():
    result = _case("guangming")
    m = result.surveyed.metrics
    pays = result.who_pays()
    assert pays["residents"] == pytest.approx(460, abs=0.5)  # 29 flats × 17 m²
    assert pays["city"] + pays["district"] == pytest.approx(583)
    assert pays["district"] / pays["city"] == pytest.approx(1.2)  # "shared 1 : 1.2"
    assert pays["owner_unit"] == 995
    assert m.renovation_revenue_wan == pytest.approx(2038, abs=0.5)  # 460 + 583 + 995
    assert m.renovation_balance_wan == pytest.approx(0, abs=0.5)


def test_heyuan_fat_thin_land_sale_pays_for_the_works():
    result = _case("heyuan")
    m = result.surveyed.metrics
    assert result.who_pays() == {"parcel_buyer": 25000}  # "25,000 … paid by the parcel's buyer"
    assert m.renovation_balance_wan == 0
    works = result.stages().query("line == 'Co works'")
    assert works["amount_wan"].sum() == -25000
    # the sale rests on the parcel in the inventory: without it, the scenario says so
    communities, spaces = samples.renewal_case("heyuan")
    without = spaces[spaces["kind"] != "land_parcel"]
    with pytest.raises(ScenarioError, match="rests on HY-L01, which the inventory does not hold"):
        estimate(without, load_scenario("heyuan"), communities=communities)


def test_hongyupo_pools_several_communities_and_recovers_its_cost_in_10_years():
    result = _case("hongyupo")
    m = result.surveyed.metrics
    assert m.payback_year == 10  # "cost recovered and a profit after 10 years of operation"
    per = result.communities()
    assert len(per) == 4 and per["floor_area_m2"].sum() == 126_000  # "12.6万 m²"
    # each community's part adds up to the package's
    assert per["works_wan"].sum() == pytest.approx(m.renovation_cost_wan, abs=0.5)
    assert per["contribution_wan"].sum() == pytest.approx(
        result.surveyed.cash_flow["net"].sum(), abs=1
    )
    # fat-thin: the larger communities' parking and rooms pay for the smallest
    assert (per["contribution_wan"] > 0).any() and (per["contribution_wan"] < 0).any()
    cov = result.coverage()
    assert cov["coverage"] == 1.0 and cov["funded_floor_area_m2"] == 126_000


def test_coverage_says_how_much_floor_area_the_revenue_funds():
    communities, spaces = samples.renewal_case("hongyupo")
    data = tomllib.loads((SHIPPED / "hongyupo.toml").read_text(encoding="utf-8"))
    data["works"][0]["cost_yuan_m2_floor"] = 400  # works the revenue cannot all pay
    result = estimate(spaces, parse_scenario(data), communities=communities)
    cov = result.coverage()
    assert 0 < cov["coverage"] < 1
    assert cov["funded_floor_area_m2"] == pytest.approx(126_000 * cov["coverage"], rel=0.001)
    assert cov["coverage"] == pytest.approx(cov["funds_pv_wan"] / cov["works_pv_wan"], abs=1e-3)


def test_a_master_lease_by_a_scenario_file_alone(sample):
    result = _jinsong(sample, "jinsong_master_lease")
    cf = result.surveyed.cash_flow.set_index("year")
    flats = 40
    # fit-out before letting: the renovation stage, as a works line
    assert cf.loc[0, "works"] == pytest.approx(flats * 80000 / 10_000 + 120)
    # the lease-in rent is owed for every flat; the let-out rent is earned on the let ones
    lease_in = flats * 3500 * 12 / 10_000
    let_out = flats * 5800 * 12 * 0.92 / 10_000
    assert cf.loc[2, "flats"] == pytest.approx(let_out, abs=0.01)
    assert cf.loc[2, "operating_cost"] == pytest.approx(lease_in + 0.08 * let_out, abs=0.01)
    assert cf.loc[1, "flats"] == pytest.approx(0.6 * let_out, abs=0.01)
    assert result.surveyed.metrics.payback_year is not None


# ---- comparison --------------------------------------------------------------------------------


def test_compare_models_side_by_side(sample):
    results = [_jinsong(sample, n) for n in ("jinsong_north", "jinsong_north_phased")]
    results.append(_case("guangming"))
    table = compare(results)
    assert list(table["model"]) == [
        "活化经营 Activation",
        "活化经营 Activation",
        "公房转换 Public-housing conversion",
    ]
    assert table.loc[0, "payback_year"] == 10
    assert table.loc[1, "npv_wan"] > table.loc[0, "npv_wan"]
    assert "居民 Residents" in table.loc[2, "who_pays"]
    assert table.loc[2, "renovation_balance_wan"] == pytest.approx(0, abs=0.5)


def test_plots_draw_chinese_without_missing_glyphs(sample, tmp_path):
    from inventory import revenue

    result = _jinsong(sample)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph is a UserWarning from matplotlib
        revenue.plot(result, tmp_path / "cash.png")
        revenue.plot_compare([result, _case("guangming")], tmp_path / "compare.png")
    assert (tmp_path / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert revenue.cjk_font() is not None  # the test set-up installs fonts-noto-cjk


# ---- the engine, by hand -------------------------------------------------------------------------


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
        "streams": [{"type": "rent", "name": "rent"}],
        "works": [{"name": "works", "cost_wan": 100.0}],
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
        "community": "C",
        "current_use": None,
        "parking_spaces": None,
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


def _run(data, *areas, floor_area=1.0):
    return estimate(
        _rooms(*(areas or (100.0,))), parse_scenario(data), managed_floor_area_m2=floor_area
    )


def test_cash_flow_npv_irr_payback_by_hand():
    result = _run(_tiny())
    cf, m = result.surveyed.cash_flow, result.surveyed.metrics
    rent = 100 * 10 * 365 / 10_000  # 36.5 万元 a year
    assert cf["net"].tolist() == pytest.approx([-100, rent, rent, rent, rent, rent])
    npv = -100 + sum(rent / 1.1**t for t in range(1, 6))
    assert m.npv_wan == pytest.approx(npv, abs=0.05)
    assert m.payback_year == 3  # -63.5, -27.0, +9.5
    assert sum(c / (1 + m.irr) ** t for t, c in enumerate(cf["net"])) == pytest.approx(0, abs=0.05)
    assert m.irr == pytest.approx(0.2405, abs=0.001)
    assert (m.renovation_cost_wan, m.renovation_balance_wan) == (100, -100)


def test_monthly_flows_add_up_to_the_years_and_pay_back_to_the_month():
    data = _tiny(
        operating_costs=[{"name": "upkeep", "wan_year": 6.0}],
        works=[
            {"name": "works", "cost_wan": 100.0},
            {"name": "later", "cost_wan": 24.0, "year": 3},
        ],
    )
    result = _run(data)
    yearly, monthly = result.surveyed.cash_flow, result.surveyed.monthly
    assert len(monthly) == 12 * 5 + 1
    by_year = monthly.groupby("year")[["rent", "operating_cost", "works", "net"]].sum()
    for col in by_year.columns:
        assert by_year[col].tolist() == pytest.approx(yearly[col].tolist(), abs=0.01), col
    assert monthly.loc[1, "rent"] == pytest.approx(36.5 / 12, abs=1e-4)
    assert monthly.loc[25, "works"] == 24.0  # first month of year 3
    assert monthly.loc[26, "works"] == 0.0
    # -100 + 2.5417 m, set back by 24 in month 25: -60.5; then +2.5417 a month: >= 0 from 49
    m = result.surveyed.metrics
    assert m.payback_month == 49
    assert m.payback_year == 5 == (m.payback_month + 11) // 12
    assert monthly.loc[12, "discounted"] == pytest.approx(monthly.loc[12, "net"] / 1.1, abs=1e-4)


def test_monthly_loan_is_an_annuity_of_monthly_payments():
    data = _tiny(financing={"loan_share": 0.6, "loan_rate": 0.06, "loan_term_years": 2})
    monthly = _run(data).surveyed.monthly
    assert monthly.loc[0, "net"] == pytest.approx(-40)
    assert monthly.loc[1, "interest"] == pytest.approx(60 * 0.005, abs=1e-4)
    payment = 60 * 0.005 / (1 - 1.005**-24)  # the annuity formula
    paid = monthly["interest"] + monthly["repayment"]
    assert paid[1:25].tolist() == pytest.approx([payment] * 24, abs=1e-3)
    assert monthly["repayment"].sum() == pytest.approx(60, abs=0.01)
    assert (monthly.loc[25:, "repayment"] == 0).all()


def test_ramp_subsidy_escalation_and_costs_by_hand():
    data = _tiny(
        streams=[{"type": "rent", "name": "rent", "ramp": [0.5], "escalation": 0.0}],
        subsidies=[{"party": "district", "by_year_wan": [10.0]}],
        operating_costs=[{"name": "upkeep", "wan_year": 5.0, "escalation": 0.1}],
    )
    data["use_classes"]["commercial"]["escalation"] = 0.05
    cf = _run(data).surveyed.cash_flow
    assert cf.loc[1, "rent"] == pytest.approx(18.25)
    assert cf.loc[1, "net"] == pytest.approx(18.25 + 10 - 5)
    assert cf.loc[3, "operating_cost"] == pytest.approx(5 * 1.1**2)
    assert cf.loc[3, "rent"] == pytest.approx(36.5 * 1.05**2, abs=1e-3)


def test_each_stream_type_by_hand():
    data = _tiny(
        streams=[
            {"type": "parking", "spaces": 10, "fee_yuan_space_month": 100, "occupancy": 0.5},
            {
                "type": "property_fee",
                "fee_yuan_m2_month": 1.0,
                "collection_by_year": [0.5],
                "collection_mature": 0.8,
                "cost_yuan_m2_year": 2.0,
                "cost_wan_year": 1.0,
            },
            {"type": "fixed", "name": "ads", "wan_year": 3.0, "start_year": 2, "end_year": 3},
            {"type": "per_unit", "name": "chargers", "units": 4, "yuan_unit_year": 2500},
        ]
    )
    del data["use_classes"]
    cf = _run(data, floor_area=10_000).surveyed.cash_flow.set_index("year")
    assert cf.loc[1, "parking"] == pytest.approx(10 * 1200 * 0.5 / 10_000)
    assert cf.loc[1, "property_fee"] == pytest.approx(12 * 10_000 * 0.5 / 10_000)
    assert cf.loc[2, "property_fee"] == pytest.approx(12 * 10_000 * 0.8 / 10_000)
    assert cf.loc[1, "operating_cost"] == pytest.approx(1.0 + 2.0)  # 1 + 2 元 × 10,000 m²
    assert cf["ads"].tolist() == [0, 0, 3, 3, 0, 0]
    assert cf.loc[1, "chargers"] == 1.0


def test_units_counted_in_the_inventory():
    spaces = pd.concat([_rooms(100.0), _rooms(50.0).assign(survey_ref="L1", kind="lift", units=3)])
    data = _tiny(
        streams=[
            {
                "type": "per_unit",
                "name": "lift_fees",
                "units_from_kind": "lift",
                "yuan_unit_month": 500,
            }
        ]
    )
    result = estimate(spaces, parse_scenario(data), managed_floor_area_m2=1.0)
    assert result.surveyed.cash_flow.loc[1, "lift_fees"] == pytest.approx(3 * 500 * 12 / 10_000)


def test_a_new_use_class_and_current_uses():
    data = _tiny()
    data["use_classes"]["elderly_care"] = {
        "label_zh": "养老",
        "tariff_yuan_m2_day": 3.0,
        "occupancy": 1.0,
        "target_area_m2": 0,
        "current_uses": ["养老驿站"],
    }
    for c in ("commercial", "semi_public", "public"):
        data["use_classes"][c].pop("target_share")
        data["use_classes"][c]["target_area_m2"] = 100
    rooms = _rooms(100.0, 80.0)
    rooms["current_use"] = ["养老驿站", None]
    alloc = allocate(rooms, parse_scenario(data)).set_index("survey_ref")
    assert (
        alloc.loc["R0", "use_class"] == "elderly_care" and alloc.loc["R0", "use_class_zh"] == "养老"
    )
    assert alloc.loc["R1", "use_class"] == "commercial"


def test_a_permit_rule_lets_a_blocking_space_earn():
    rooms = _rooms(100.0)
    rooms["land_type"] = "allocated"  # blocking: allocated land
    base = _run(_tiny(), 100.0)
    blocked = estimate(rooms, parse_scenario(_tiny()), managed_floor_area_m2=1.0)
    assert (
        blocked.surveyed.metrics.mature_revenue_wan == 0 < base.surveyed.metrics.mature_revenue_wan
    )
    permit = _tiny(
        **{
            "allocation.rules": [
                {
                    "when": {"land_type": "allocated"},
                    "allow": ["semi_public"],
                    "permit": True,
                    "why": "temporary permit for community services",
                },
            ]
        }
    )
    let = estimate(rooms, parse_scenario(permit), managed_floor_area_m2=1.0)
    alloc = let.surveyed.allocation.iloc[0]
    assert alloc["earns"] and alloc["use_class"] == "semi_public"
    assert let.surveyed.metrics.mature_revenue_wan == pytest.approx(100 * 4 * 365 / 10_000, abs=0.1)


def test_non_unique_irr_is_flagged():
    data = _tiny(
        works=[{"name": "a", "cost_wan": 100.0}, {"name": "b", "cost_wan": 200.0, "year": 4}]
    )
    m = _run(data).surveyed.metrics
    assert m.sign_changes == 3 and not m.irr_unique


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
    assert alloc.loc["R0", "use_class"] == "semi_public"
    assert alloc.loc["R2", "use_class"] in ("semi_public", "public")
    assert alloc.loc["R3", "use_class"] == "public"
    assert alloc.loc["R1", "use_class"] == "commercial"


# ---- bad scenario files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(colour="red"), r"unknown key colour = 'red'; .*takes name, model"),
        (
            lambda d: d["streams"][1].update(fee_yuan_space_yaer=100),
            r"unknown key streams\[2\].fee_yuan_space_yaer = 100; did you mean 'fee_yuan_space_year'",
        ),
        (
            lambda d: d.update(concession_years="20"),
            r"concession_years = '20' should be a whole number",
        ),
        (
            lambda d: d["works"][0].update(cost_wan=-5),
            r"works\[1\].cost_wan = -5 cannot be negative",
        ),
        (
            lambda d: d["streams"][1].update(occupancy=1.4),
            r"streams\[2\].occupancy = 1.4 must be between 0 and 1",
        ),
        (
            lambda d: d.update(model="build_and_pray"),
            r"model = 'build_and_pray' is not one of expand_and_sell",
        ),
        (
            lambda d: d["subsidies"][0].update(party="uncle"),
            r"party = 'uncle' is not one of operator",
        ),
        (lambda d: d.pop("streams"), r"operation stage has no flows"),
        (lambda d: d.pop("works"), r"renovation stage has no flows"),
        (
            lambda d: d.update(
                contributions=[{"parties": ["city", "district"], "shares": [0.5, 0.6], "wan": 10}]
            ),
            r"shares = \[0.5, 0.6\] adds up to 110%; shares must add up to 100%",
        ),
        (
            lambda d: d["streams"].append({"type": "lottery"}),
            r"streams\[5\].type = 'lottery'; a stream's type is one of",
        ),
        (
            lambda d: d["allocation"]["overrides"].update({"JS-001": "luxury"}),
            r"JS-001 = 'luxury' is not a use class",
        ),
        (
            lambda d: d["streams"][0].update(ramp=[0.5, 1.5]),
            r"holds 1.5; each value must be between 0 and 1",
        ),
        (
            lambda d: d["works"][0].update(year=30),
            r"year = 30 is after the concession's last year \(20\)",
        ),
    ],
)
def test_bad_scenarios_name_the_key_the_value_and_the_fix(jinsong_data, change, message):
    data = copy.deepcopy(jinsong_data)
    change(data)
    with pytest.raises(ScenarioError, match=message) as err:
        parse_scenario(data, where="x.toml")
    assert str(err.value).startswith("x.toml")


def test_use_class_shares_must_add_up_to_100():
    data = _tiny(**{"use_classes.public.target_share": 0.2})
    with pytest.raises(ScenarioError, match=r"add up to 120%.*must add up to 100%"):
        parse_scenario(data)


def test_spaces_and_communities_the_store_does_not_hold(sample, jinsong_data):
    data = copy.deepcopy(jinsong_data)
    data["spaces"]["activated"].append("JS-999")
    with pytest.raises(ScenarioError, match="spaces.activated names JS-999, which the inventory"):
        estimate(sample, parse_scenario(data), managed_floor_area_m2=JINSONG_FLOOR_AREA)
    data = copy.deepcopy(jinsong_data)
    data["allocation"]["overrides"]["JS-998"] = "public"
    with pytest.raises(ScenarioError, match="allocation.overrides names JS-998"):
        estimate(sample, parse_scenario(data), managed_floor_area_m2=JINSONG_FLOOR_AREA)
    data = copy.deepcopy(jinsong_data)
    data["works"][0]["community"] = "望京"
    with pytest.raises(ScenarioError, match="community '望京', which is not in the scenario"):
        estimate(sample, parse_scenario(data), managed_floor_area_m2=JINSONG_FLOOR_AREA)


def test_concession_is_twenty_years_unless_said(jinsong_data):
    data = copy.deepcopy(jinsong_data)
    del data["concession_years"]
    assert parse_scenario(data).concession_years == 20
    data["concession_years"] = 0
    with pytest.raises(ScenarioError, match="concession_years = 0 must be at least 1"):
        parse_scenario(data)


def test_scenario_file_errors_and_extends(tmp_path):
    with pytest.raises(ScenarioError, match="Shipped scenarios: .*jinsong_north"):
        load_scenario(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("concession_years = ", encoding="utf-8")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(bad)
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text('extends = "b.toml"\n', encoding="utf-8")
    b.write_text('extends = "a.toml"\n', encoding="utf-8")
    with pytest.raises(ScenarioError, match="goes round in a circle"):
        load_scenario(a)
    mine = tmp_path / "mine.toml"
    mine.write_text(
        'extends = "jinsong_north"\nname = "mine"\n'
        '[[works]]\nname = "架空线入地 overhead lines buried"\nremove = true\n'
        '[[streams]]\nname = "parking"\nfee_yuan_space_year = 3000\n',
        encoding="utf-8",
    )
    s = load_scenario(mine)
    assert s.name == "mine" and "extends" in s.source
    assert [w.name for w in s.works][0].startswith("其他改造工程")  # the overhead lines gone
    assert (
        s.stream("parking").fee_yuan_space_year == 3000 and s.stream("parking").occupancy == 0.8333
    )


def test_every_schema_key_is_documented_in_the_readme():
    readme = (SHIPPED.parents[1] / "README.md").read_text(encoding="utf-8")
    for table, keys in SCHEMA.items():
        for key in keys:
            assert f"`{key}`" in readme, f"{table or 'top level'}.{key} is not in the README"


# ---- in the store and on the command line ----------------------------------------------------------


def test_a_case_in_the_store_gives_the_same_balance(engine, tmp_path):
    from inventory.importer import import_file

    (path,) = [p for p in samples.write_renewal_cases(tmp_path) if p.stem == "guangming"]
    import_file(engine, path, layer="communities", communities=True)
    (report,) = import_file(engine, path, layer="spaces")
    assert report.loaded == 1 and report.rejected == 0
    result = estimate_in_store(engine, "guangming")
    assert result.surveyed.metrics.renovation_revenue_wan == pytest.approx(2038, abs=0.5)
    assert result.who_pays()["residents"] == pytest.approx(460, abs=0.5)


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
    assert "Blocking gaps keep JS-011, JS-006 from earning" in result.output
    assert "property_fee runs ¥582,000 a year short: 14.3%" in result.output
    assert "800,000 m²" in result.output
    sheets = pd.read_excel(tmp_path / "rev.xlsx", sheet_name=None)
    assert {"summary", "stages", "streams", "yearly", "allocation"} <= set(sheets)
    summary = sheets["summary"]
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
    year = (summary.loc[0, "payback_month"] + 11) // 12
    assert year == summary.loc[0, "payback_year"]
    bad = CliRunner().invoke(app, ["revenue", "--db", db_url, "--period", "week"])
    assert bad.exit_code == 1
    assert "'week'" in bad.output and "year or month" in bad.output


def test_compare_command_on_jinsong(sample, db_url, tmp_path):
    out = tmp_path / "compare.xlsx"
    result = CliRunner().invoke(
        app,
        [
            "revenue",
            "--db",
            db_url,
            "--compare",
            "jinsong_north",
            "jinsong_north_phased",
            "jinsong_master_lease",
            "--output",
            str(out),
            "--plot",
            str(tmp_path / "c.png"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Renewal models compared" in result.output
    table = pd.read_excel(out, sheet_name="comparison")
    assert len(table) == 3 and table.loc[0, "payback_year"] == 10
    assert "统租置换" in table.loc[2, "model"]
    yearly = pd.read_excel(out, sheet_name="yearly")
    assert yearly["scenario"].nunique() == 3
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    one = CliRunner().invoke(app, ["revenue", "--db", db_url, "--compare", "jinsong_north"])
    assert one.exit_code == 1 and "two scenarios or more" in one.output
    two = CliRunner().invoke(app, ["revenue", "--db", db_url, "jinsong_north", "zhegong"])
    assert two.exit_code == 1 and "add --compare" in two.output


def _generated_city(engine, tmp_path, n: int, per: int, seed: int, floor_area_m2: float):
    """Import a synthetic city of ``n`` communities of ``per`` spaces; return its communities."""
    from inventory.importer import import_file

    communities, spaces = samples.synthetic_inventory(n, per, seed=seed)
    communities["floor_area_m2"] = floor_area_m2
    communities.to_file(tmp_path / "c.gpkg")
    spaces.to_file(tmp_path / "s.gpkg")
    import_file(engine, tmp_path / "c.gpkg", communities=True)
    import_file(engine, tmp_path / "s.gpkg")
    return communities


def _pooled(tmp_path, key: str, value: str):
    """Write ``pooled.toml``: an area-pooling scenario of the package ``key = value``."""
    path = tmp_path / "pooled.toml"
    path.write_text(
        f'name = "pooled"\nmodel = "area_pooling"\ndiscount_rate = 0.06\n'
        f'[package]\n{key} = "{value}"\n'
        "[use_classes.service]\ntariff_yuan_m2_day = 2.0\noccupancy = 0.9\n"
        '[[streams]]\ntype = "rent"\n'
        '[[streams]]\ntype = "property_fee"\nfee_yuan_m2_month = 0.8\ncollection_mature = 0.8\n'
        "cost_yuan_m2_year = 6\n"
        '[[works]]\nname = "works"\ncost_yuan_m2_floor = 100\n',
        encoding="utf-8",
    )
    return path


def test_compare_on_a_package_of_a_generated_city(db_url, engine, tmp_path):
    communities = _generated_city(engine, tmp_path, 20, 30, seed=3, floor_area_m2=50_000.0)
    street = communities["street_office"].iloc[0]
    pooled = _pooled(tmp_path, "street_office", street)
    costly = tmp_path / "costly.toml"
    costly.write_text(
        'extends = "pooled.toml"\nname = "costly"\n[[works]]\nname = "works"\ncost_yuan_m2_floor = 300\n',
        encoding="utf-8",
    )
    out = tmp_path / "cmp.csv"
    result = CliRunner().invoke(
        app,
        ["revenue", "--db", db_url, "--compare", str(pooled), str(costly), "--output", str(out)],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    members = communities.loc[communities["street_office"] == street, "name"]
    assert (table["place"] == street).all() and len(members) == 10
    assert table.loc[0, "renovation_cost_wan"] == pytest.approx(10 * 50_000 * 100 / 10_000)
    assert table.loc[1, "npv_wan"] < table.loc[0, "npv_wan"]
    single = CliRunner().invoke(app, ["revenue", str(pooled), "--db", db_url])
    assert single.exit_code == 0, single.output
    assert "Communities of the package" in single.output and "Coverage:" in single.output
    missing = tmp_path / "missing.toml"
    missing.write_text(
        pooled.read_text(encoding="utf-8").replace(street, "S99999"), encoding="utf-8"
    )
    bad = CliRunner().invoke(app, ["revenue", str(missing), "--db", db_url])
    assert bad.exit_code == 1 and "street_office = 'S99999' has no community" in bad.output


def test_a_package_read_in_one_listing_is_estimated_as_from_each_community_read_alone(
    engine, tmp_path
):
    from inventory import listing
    from inventory.errors import InputError
    from inventory.revenue import package_communities

    communities = _generated_city(engine, tmp_path, 12, 25, seed=5, floor_area_m2=40_000.0)
    scenario = load_scenario(_pooled(tmp_path, "district", communities["district"].iloc[0]))
    table = package_communities(engine, scenario)
    assert len(table) > 1
    each = pd.concat(
        [listing.spaces(engine, community=name) for name in table["name"]], ignore_index=True
    )
    got = estimate_in_store(engine, scenario).surveyed
    expected = estimate(each, scenario, communities=table).surveyed
    pd.testing.assert_frame_equal(got.allocation, expected.allocation)
    assert got.metrics == expected.metrics
    with pytest.raises(InputError, match="'nowhere'` is not in the store"):
        listing.spaces(engine, communities=[table["name"].iloc[0], "nowhere"])


def test_a_package_of_the_communities_whose_spaces_bundle(engine, tmp_path):
    from inventory.importer import import_file
    from inventory.revenue import package_communities
    from tests.util import write

    def space(ref, community, dx):
        return {
            "编号": ref,
            "社区": community,
            "类型": "车棚",
            "建筑面积": 100.0,
            "geometry": room(dx, 0),
        }

    rows = [
        space("A1", "甲社区", 0),
        space("B1", "乙社区", 20),  # 10 m from A1, across the boundary
        space("B2", "乙社区", 40),  # 10 m from B1: reached through B
        space("C1", "丙社区", 2000),  # far away
    ]
    import_file(engine, write(frame(rows), tmp_path / "s.geojson"))
    data = _tiny(package={"bundled_with": "甲社区", "max_gap_m": 15})
    table = package_communities(engine, parse_scenario(data))
    assert table["name"].tolist() == ["甲社区", "乙社区"]
    data["package"]["max_gap_m"] = 5  # closer than the spaces are: A alone
    assert package_communities(engine, parse_scenario(data))["name"].tolist() == ["甲社区"]
    with pytest.raises(ScenarioError, match=r"\[package\] takes one of"):
        parse_scenario(_tiny(package={"bundled_with": "甲社区", "district": "朝阳区"}))


# ---- policy regimes -------------------------------------------------------------------------------


def test_beijing_2021_lets_the_boiler_room_take_elderly_care(sample):
    beijing = _jinsong(sample, "jinsong_north_beijing_2021")
    alloc = beijing.surveyed.allocation.set_index("survey_ref")
    boiler = alloc.loc["JS-013"]
    assert boiler["gap_severity"] == "transitional" and boiler["earns"]
    assert boiler["use_class"] == "elderly_care" and boiler["rent_wan_year_mature"] >= 350
    base = _jinsong(sample).surveyed.metrics
    assert beijing.surveyed.metrics.mature_revenue_wan > base.mature_revenue_wan + 300
    # the same scenario under the default rules: the boiler room stays blocked
    default = estimate(
        sample,
        load_scenario("jinsong_north_beijing_2021"),
        managed_floor_area_m2=JINSONG_FLOOR_AREA,
        policy="default",
    )
    blocked = default.surveyed.allocation.set_index("survey_ref").loc["JS-013"]
    assert blocked["gap_severity"] == "blocking" and not blocked["earns"]
    assert "JS-013" in default.blocked


def test_a_temporary_use_bounds_the_classes_and_resolves_by_its_permit(sample):
    beijing = _jinsong(sample, "jinsong_north_beijing_2021")
    for variant in ("as surveyed", "all gaps resolved"):
        boiler = beijing.variants[variant].allocation.set_index("survey_ref").loc["JS-013"]
        assert boiler["use_class"] == "elderly_care" and boiler["earns"]
        assert "commercial" not in boiler["allowed"] and "elderly_care" in boiler["allowed"]
        assert "beijing-2021" in boiler["path"] and "社区服务" in boiler["path"]
    risk = beijing.at_risk().set_index("survey_ref")
    assert risk.loc["JS-013", "path_resolved"].startswith("temporary-use permit under beijing-2021")
    # under the default rules the boiler room's gap resolves by a change of use, assumed
    default = estimate(
        sample,
        load_scenario("jinsong_north_beijing_2021"),
        managed_floor_area_m2=JINSONG_FLOOR_AREA,
        policy="default",
    )
    path = default.at_risk().set_index("survey_ref").loc["JS-013", "path_resolved"]
    assert path.startswith("resolved (assumed)") and "allocated land" in path
    # commerce is no community service: let as a shop, the boiler room earns nothing either way
    shop = load_scenario("jinsong_north_beijing_2021")
    shop.overrides["JS-013"] = "commercial"
    as_shop = estimate(sample, shop, managed_floor_area_m2=JINSONG_FLOOR_AREA)
    for variant in ("as surveyed", "all gaps resolved"):
        boiler = as_shop.variants[variant].allocation.set_index("survey_ref").loc["JS-013"]
        assert not boiler["earns"] and boiler["rent_wan_year_mature"] == 0
        assert "not Commercial" in boiler["reason"] and "change of use" in boiler["reason"]


def test_a_class_is_licensed_by_the_uses_a_permit_names():
    jinsong = load_scenario("jinsong_north").use_classes
    assert jinsong["elderly_care"].licensed_by(["社区养老服务"])
    assert jinsong["semi_public"].licensed_by(["存车", "便民服务"])
    assert not jinsong["commercial"].licensed_by(["便民服务", "库房"])
    assert jinsong["commercial"].licensed_by(["Retail"])  # English, any case
    # with no permit_uses, the class's current uses and labels are its terms
    mine = parse_scenario(
        _tiny(
            **{
                "use_classes.semi_public.current_uses": ["理发"],
                "use_classes.public.label_zh": "公益",
            }
        )
    ).use_classes
    assert mine["semi_public"].licensed_by(["理发、修鞋"]) and mine["public"].licensed_by(["公益"])
    assert not mine["commercial"].licensed_by(["菜市场"])


def test_the_revenue_help_names_every_shipped_scenario():
    flat = re.sub(r"[\s│]", "", CliRunner().invoke(app, ["revenue", "--help"]).output)
    for name in shipped_scenarios():
        assert f"{name}," in flat or f"{name}." in flat, name
