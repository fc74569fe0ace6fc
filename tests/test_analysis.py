"""Bundles, title gaps and capacity on the sample community, checked by hand and by brute force."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from sqlalchemy import select
from typer.testing import CliRunner

from inventory import bundles as bundles_module
from inventory import listing
from inventory.bundles import bundles_in_store, find_bundles
from inventory.capacity import (
    capacity,
    capacity_in_store,
    capacity_near,
    distances_m,
    filter_spaces,
    hosts,
    parse_point,
)
from inventory.cli import app
from inventory.errors import InputError
from inventory.gaps import RULES, annotate, severity_sql, title_gaps, title_gaps_in_store
from inventory.geodesy import local_metric_crs, reproject
from inventory.importer import import_file
from inventory.models import Space
from inventory.samples import JINSONG_CENTRE, synthetic_inventory
from tests.util import frame, room, write

DEMO_ROOMS = [f"JS-{i:03d}" for i in range(1, 13)]


# ---- title gaps -----------------------------------------------------------------------


def test_boiler_room_on_allocated_land_is_a_blocking_gap(sample):
    rows, _ = title_gaps(sample)
    boiler = rows.set_index("survey_ref").loc["JS-013"]
    assert boiler["gap_severity"] == "blocking" and boiler["gaps"] == ["allocated_land"]


def test_the_rooms_without_complete_title_are_all_flagged(sample):
    rows, totals = title_gaps(sample)
    flagged = set(rows["survey_ref"]) & set(DEMO_ROOMS)
    assert flagged == {"JS-003", "JS-006", "JS-008", "JS-011"}  # 4 of 12 rooms: ~30%
    by_ref = rows.set_index("survey_ref")
    assert (
        by_ref.loc["JS-003", "gap_severity"] == "transitional"
    )  # operable on a transitional permit
    assert by_ref.loc["JS-011", "gaps"] == ["disputed", "several_owners"]
    assert by_ref.loc["JS-006", "gaps"] == ["unknown_owner", "missing_certificate"]
    row = totals.iloc[0]
    assert row["community"] == "劲松北社区" and row["spaces_with_gap"] == 6
    # boiler 2,550 + coal yard 1,000 + rooms 51 + 102 + 153 + 195.5 (usable m²)
    assert row["area_with_gap_m2"] == pytest.approx(4051.5)
    assert row["share_with_gap_pct"] == pytest.approx(
        100 * 4051.5 / row["usable_area_m2"], abs=0.05
    )


def test_operating_right_rules():
    base = {
        "land_type": "granted",
        "disputed": False,
        "owner_type": "government",
        "owner_name": "街道",
        "certificate_status": "complete",
    }
    spaces = frame(
        [
            {
                **base,
                "survey_ref": "A",
                "operating_right_end": date(2026, 1, 1),
                "geometry": room(0, 0),
            },
            {
                **base,
                "survey_ref": "B",
                "operating_right_end": date(2027, 3, 1),
                "geometry": room(0, 0),
            },
            {
                **base,
                "survey_ref": "C",
                "operating_right_end": date(2040, 1, 1),
                "geometry": room(0, 0),
            },
        ]
    )
    out = annotate(spaces, today=date(2026, 11, 22), expiring_months=6)
    assert out["gaps"].tolist() == [["operating_right_expired"], ["operating_right_expiring"], []]
    assert out["gap_severity"].tolist() == ["blocking", "minor", None]


def test_the_store_judges_title_gaps_as_the_rules_do(engine, sample, tmp_path):
    """``severity_sql`` (run by the store) and ``annotate`` read the same rules."""
    today = date(2026, 11, 22)
    owners = ["街道", "", "甲/乙", "甲和乙", "100%产权_A", "A、B", None]
    ends = [None, "2026-01-01", "2026-11-22", "2027-06-01", "2027-11-23", "2040-01-01"]
    rows = [
        {
            "编号": f"G-{i:03d}",
            "类型": "配套用房",
            "建筑面积": 50.0,
            "owner_name": owners[i % len(owners)],
            "owner_type": ["government", "unknown", None][i % 3],
            "land_type": ["granted", "allocated", None, "unknown"][i % 4],
            "certificate_status": ["complete", "missing", "partial", "unknown", None][i % 5],
            "disputed": [False, True][i % 2 if i % 7 == 0 else 0],
            "operating_right_end": ends[i % len(ends)],
            "geometry": room(i * 20, 300),
        }
        for i in range(60)
    ]
    clean = {
        "owner_name": "街道",
        "owner_type": "government",
        "land_type": "granted",
        "certificate_status": "complete",
        "disputed": False,
        "operating_right_end": None,
    }
    # a clean title changed in one field at a time: each rule alone, and near misses
    one_change = [
        *(("owner_name", v) for v in owners if v != "街道"),
        *(("owner_type", v) for v in ("unknown", None, "private")),
        *(("land_type", v) for v in ("allocated", None, "unknown")),
        *(("certificate_status", v) for v in ("missing", "partial", "unknown", None)),
        ("disputed", True),
        *(("operating_right_end", v) for v in ends),
        ("owner_name", "街道"),
    ]
    for i, (field, value) in enumerate(one_change, start=60):
        rows.append(
            {**rows[0], **clean, field: value, "编号": f"G-{i:03d}", "geometry": room(i * 20, 300)}
        )
    (report,) = import_file(
        engine, write(frame(rows), tmp_path / "tenure.gpkg"), community="测试社区"
    )
    assert report.loaded == len(rows)
    spaces = listing.spaces(engine)
    expected = annotate(spaces, today).set_index("survey_ref")["gap_severity"]
    assert expected.notna().sum() > 20 and expected.isna().sum() > 0
    c = Space.__table__.c
    with engine.connect() as conn:
        got = dict(conn.execute(select(c.survey_ref, severity_sql(c, today))).all())
    assert {ref: got[ref] for ref in expected.index} == expected.to_dict()
    assert set(expected[expected.index.str.startswith("G-")]) >= {
        "blocking",
        "transitional",
        "minor",
        None,
    }


def test_a_negative_warning_period_is_refused(engine, sample):
    with pytest.raises(InputError, match="`expiring_months=-3` must be 0 or more"):
        title_gaps(sample, expiring_months=-3)
    with pytest.raises(InputError, match="`expiring_months=-3` must be 0 or more"):
        title_gaps_in_store(engine, expiring_months=-3)


def test_title_gaps_in_the_store_match_loading_every_space(engine, sample, tmp_path):
    today = date(2026, 11, 22)
    rows = [
        {
            "编号": f"T-{i}",
            "类型": "配套用房",
            "建筑面积": 100.1 + i / 10,  # tenths: sums of them are not exact in binary
            "owner_name": owner,
            "certificate_status": cert,
            "land_type": "granted",
            "owner_type": "government",
            "operating_right_end": end,
            "geometry": room(i * 20, 400),
        }
        for i, (owner, cert, end) in enumerate(
            [
                ("街道", "complete", None),
                ("街道", "complete", "2027-03-01"),
                ("甲/乙", "complete", None),
                ("街道", "missing", None),
            ]
        )
    ]
    import_file(engine, write(frame(rows), tmp_path / "t.gpkg"), community="二社区")
    expected = title_gaps(listing.spaces(engine), today)
    got = title_gaps_in_store(engine, today=today)
    assert len(got[0]) < len(listing.spaces(engine))  # only the flagged are loaded
    pd.testing.assert_frame_equal(got[0].reset_index(drop=True), expected[0].reset_index(drop=True))
    pd.testing.assert_frame_equal(got[1], expected[1], check_dtype=False)
    # areas summed to the cm², whatever order the database adds in (no 0.30000000000000004)
    areas = got[1][["usable_area_m2", "area_with_gap_m2", "area_blocking_m2"]].to_numpy()
    assert (areas == areas.round(2)).all()
    one = title_gaps_in_store(engine, community="二社区", today=today)
    assert one[0]["survey_ref"].tolist() == ["T-1", "T-2", "T-3"]
    assert one[1]["spaces"].tolist() == [4] and one[1]["spaces_with_gap"].tolist() == [3]


def test_every_rule_has_labels_and_a_known_severity():
    for rule in RULES:
        assert rule.zh and rule.en and rule.severity in ("blocking", "transitional", "minor")


# ---- bundles ----------------------------------------------------------------------------


def test_gatehouse_and_bike_shed_ten_metres_apart_form_one_bundle(sample):
    bundles, members = find_bundles(sample, 30)
    first = bundles.set_index("bundle_id").loc["B0001"]
    assert first["members"] == "JS-001, JS-002"
    assert first["smallest_m2"] == pytest.approx(21.2) and first["largest_m2"] == pytest.approx(
        34.0
    )
    assert first["clean"] == 2 and first["blocking"] == 0
    assert set(members[members["bundle_id"] == "B0001"]["survey_ref"]) == {"JS-001", "JS-002"}
    tight, _ = find_bundles(sample, 5)
    assert "JS-001, JS-002" not in set(tight["members"])


def test_bundles_are_reproducible_and_respect_options(sample):
    a, _ = find_bundles(sample, 30)
    b, _ = find_bundles(sample.sample(frac=1, random_state=3), 30)
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))
    assert "JS-005, JS-013" in set(a["members"])  # the boiler room next to a service room
    clean, _ = find_bundles(sample, 30, exclude_blocking=True)
    assert all("JS-013" not in m for m in clean["members"])
    small, _ = find_bundles(sample, 30, min_area_m2=50)
    assert all("JS-001" not in m for m in small["members"])  # 21 m² usable
    only_sheds, _ = find_bundles(sample, 1000, kinds=["自行车棚"])
    assert only_sheds["kinds"].tolist() == ["bike_shed"]
    with pytest.raises(InputError, match="not a kind"):
        find_bundles(sample, 30, kinds=["仓库"])
    with pytest.raises(InputError, match="`min_area_m2=-2` must be 0 m² or more"):
        find_bundles(sample, 30, min_area_m2=-2)
    with pytest.raises(InputError, match="`max_gap_m=-1` must be 0 m or more"):
        find_bundles(sample, -1)


def test_bundles_match_brute_force_on_a_synthetic_city():
    _, spaces = synthetic_inventory(6, 60, seed=11)
    spaces = spaces.assign(
        usable_area_m2=spaces["floor_area_m2"],
        footprint_area_m2=spaces["floor_area_m2"],
        owner_name="x",
        disputed=False,
        operating_right_end=None,
        quality_flags=None,
    )
    gap = 40.0
    bundles, members = find_bundles(spaces, gap, kinds=list(set(spaces["kind"])), min_members=1)
    # brute force: every pair within a community, distances in an azimuthal equidistant
    # projection centred on the community (a different frame from the one under test)
    expected = {}
    for community, group in spaces.groupby("community"):
        c = shapely.centroid(shapely.union_all(group.geometry.values))
        metric = reproject(group.geometry.values, "EPSG:4326", local_metric_crs(c.x, c.y))
        d = shapely.distance(metric[:, None], metric[None, :])
        refs = group["survey_ref"].to_numpy()
        label = list(range(len(refs)))

        for i, j in zip(*np.nonzero(d <= gap), strict=True):
            label[_root(label, i)] = _root(label, j)
        for i, ref in enumerate(refs):
            expected[ref] = (community, _root(label, i))
    got = members.groupby("bundle_id")["survey_ref"].apply(frozenset)
    want = pd.Series(expected).groupby(lambda r: expected[r]).apply(lambda s: frozenset(s.index))
    assert set(got) == set(want)
    assert len(members) == len(spaces)


def _brute_box_pairs(b: np.ndarray, gap: float) -> set[tuple[int, int]]:
    i, j = np.nonzero(
        (b[None, :, 0] <= b[:, None, 2] + gap)
        & (b[:, None, 0] <= b[None, :, 2] + gap)
        & (b[None, :, 1] <= b[:, None, 3] + gap)
        & (b[:, None, 1] <= b[None, :, 3] + gap)
    )
    return {(x, y) for x, y in zip(i.tolist(), j.tolist(), strict=True) if x < y}


def _as_set(pairs) -> set[tuple[int, int]]:
    left, right = pairs
    return set(zip(np.minimum(left, right).tolist(), np.maximum(left, right).tolist(), strict=True))


@pytest.mark.parametrize("layout", ["scattered", "north-south row"])
def test_box_pairs_are_exactly_those_within_the_gap(layout):
    rng = np.random.default_rng(5)
    n, gap = 400, 30.0
    if layout == "scattered":
        x0, y0 = rng.uniform(0, 3000, n), rng.uniform(0, 800, n)
    else:  # every box overlaps every other in x
        x0, y0 = rng.uniform(0, 5, n), np.arange(n) * 12.0
    w, h = rng.uniform(0, 40, n), rng.uniform(0, 40, n)
    w[:5] = 0  # degenerate boxes (a line, a point) too
    boxes = np.column_stack([x0, y0, x0 + w, y0 + h])
    boxes[5] = [boxes[6, 2] + gap, 0, boxes[6, 2] + gap + 1, 1]  # exactly the gap to the right
    boxes[6, 1], boxes[6, 3] = 0, 1
    want = _brute_box_pairs(boxes, gap)
    assert (5, 6) in want
    assert _as_set(bundles_module._box_pairs(boxes, gap)) == want
    assert _as_set(bundles_module._tree_box_pairs(boxes, gap)) == want
    swept = bundles_module._sweep_pairs(boxes, gap, most=16 * n)
    if layout == "scattered":
        assert _as_set(swept) == want
    else:  # the sweep would weigh every pair: it gives way to the R-tree
        assert swept is None
        assert _as_set(bundles_module._sweep_pairs(boxes, gap, most=n * n)) == want


def _root(label: list[int], i: int) -> int:
    while label[i] != i:
        i = label[i]
    return i


def test_bundles_across_communities(sample):
    # a gatehouse of a neighbouring community, 80 m west of the estate's centre
    neighbour = sample.iloc[[0]].copy()
    neighbour["survey_ref"], neighbour["community"] = "N-1", "邻社区"
    neighbour["geometry"] = [room(-80, 0)]
    both = pd.concat([sample, neighbour], ignore_index=True)
    own, _ = find_bundles(both, 200)
    assert all("N-1" not in m for m in own["members"])  # alone in its community
    pooled, _ = find_bundles(both, 200, across_communities=True)
    shared = pooled[pooled["members"].str.contains("N-1")]
    assert len(shared) == 1 and shared.iloc[0]["communities"] == "劲松北社区, 邻社区"


# ---- capacity -----------------------------------------------------------------------------


def test_capacity_by_kind(sample):
    table = capacity(sample, ["kind"]).set_index("kind")
    assert table.loc["boiler_room", "usable_area_m2"] == pytest.approx(2550)
    assert table.loc["coal_yard", "usable_area_m2"] == pytest.approx(1000)
    assert table.loc["parking", "parking_spaces"] == 600
    assert table["spaces"].sum() == 22


def test_capacity_by_tenure_and_bundle(sample):
    table = capacity(sample, ["tenure_status"]).set_index("tenure_status")
    assert table.loc["blocking", "spaces"] == 4 and table.loc["transitional", "spaces"] == 2
    by_bundle = capacity(sample, ["bundle"]).set_index("bundle")
    assert by_bundle.loc["B0001", "spaces"] == 2
    with pytest.raises(InputError, match="group by one or more of"):
        capacity(sample, ["colour"])


def test_near_filter_uses_geodesic_distance(sample):
    lon, lat = JINSONG_CENTRE
    near = filter_spaces(sample, near=(lon, lat), radius_m=150)
    assert (near["distance_m"] <= 150).all() and len(near) > 0
    far = sample[~sample["survey_ref"].isin(near["survey_ref"])]
    assert (distances_m(far.geometry.values, lon, lat) > 150).all()
    # a room whose west edge is 100 m east of the point
    d = distances_m([room(100, -5)], 116.4655, 39.8795)[0]
    assert d == pytest.approx(100 * (85_300 / 85_384), rel=0.01)


def test_need_matching_lists_hosts_best_first(sample):
    found = hosts(sample, 150, near=JINSONG_CENTRE, radius_m=300)
    assert len(found) > 0
    assert (found["usable_area_m2"] >= 150).all() and (found["distance_m"] <= 300).all()
    assert "blocking" not in set(found["title"])
    ranks = found["title"].map({"clean": 0, "transitional": 1, "minor": 2}).tolist()
    assert ranks == sorted(ranks)
    small = hosts(sample, 50)
    assert "B0001" in set(small["id"])  # the 21 + 34 m² bundle hosts 50 m² where neither can alone
    with pytest.raises(InputError, match="`need_area_m2=0`: give the area the need takes"):
        hosts(sample, 0)


def test_parse_point():
    assert parse_point("116.4655,39.8795") == (116.4655, 39.8795)
    with pytest.raises(InputError, match="LON,LAT"):
        parse_point("116.46")
    with pytest.raises(InputError, match="is it LAT,LON"):
        parse_point("39.88,216.46")


# ---- every command exports to every format ---------------------------------------------------

runner = CliRunner()


@pytest.mark.parametrize("fmt", ["csv", "json", "geojson", "gpkg", "xlsx"])
@pytest.mark.parametrize(
    "command",
    [["gaps"], ["bundles"], ["capacity", "--by", "kind"], ["capacity", "--need-area", "100"]],
)
def test_exports_open(sample, db_url, tmp_path, command, fmt):
    out = tmp_path / f"result.{fmt}"
    result = runner.invoke(app, [*command, "--output", str(out), "--db", db_url])
    assert result.exit_code == 0, result.output
    written = [p for p in tmp_path.iterdir() if p.name.startswith("result")]
    assert written
    for path in written:
        if path.suffix in (".geojson", ".gpkg"):
            for name, _ in pyogrio.list_layers(path):
                assert len(pyogrio.read_dataframe(path, layer=name)) > 0
        elif path.suffix == ".xlsx":
            import openpyxl

            assert openpyxl.load_workbook(path).active.max_row > 1
        elif path.suffix == ".csv":
            assert len(pd.read_csv(path)) > 0
        else:
            assert len(pd.read_json(path)) > 0


def _same_bundles(got, expected):
    """Bundles equal in every column, hulls equal as shapes."""
    assert got[0].drop(columns="geometry").equals(expected[0].drop(columns="geometry"))
    assert shapely.equals(got[0].geometry.values, expected[0].geometry.values).all()
    assert got[1].equals(expected[1])


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"across_communities": True},
        {"exclude_blocking": True, "min_area_m2": 30},
        {"kinds": ["自行车棚", "gatehouse", "basement", "idle_land"], "min_members": 3},
    ],
)
def test_both_backends_give_the_same_bundles(engine, sample, options):
    today = date(2026, 11, 22)
    in_memory = find_bundles(sample, 60, today=today, **options)
    in_store = bundles_in_store(engine, 60, today=today, **options)  # PostGIS: all in SQL
    assert len(in_memory[0]) > 0
    _same_bundles(in_store, in_memory)
    one = bundles_in_store(engine, 60, community="劲松北社区", today=today, **options)
    _same_bundles(one, in_memory)


def test_bundles_in_store_with_separator_characters_in_references(engine, tmp_path):
    # the store returns member lists joined by ASCII RS; a reference holding it must not
    # shift members between bundles
    refs = ["A\x1eB", "C", "D\x1eF", "E"]
    rows = [
        {"编号": ref, "类型": "配套用房", "建筑面积": 30.0, "geometry": room(i * 12, 0)}
        for i, ref in enumerate(refs)
    ]
    (report,) = import_file(engine, write(frame(rows), tmp_path / "odd.gpkg"), community="测试社区")
    assert report.loaded == 4
    got = bundles_in_store(engine, 30)
    assert got[0]["member_count"].tolist() == [4]
    assert got[0]["members"][0] == "A\x1eB, C, D\x1eF, E"
    _same_bundles(got, find_bundles(listing.spaces(engine), 30))


def test_pooling_across_communities_has_no_edge_at_a_whole_degree(engine, tmp_path):
    # two rooms 15.5 m apart on either side of 40°N (Wangjing, Beijing), in two communities
    lon = 116.47
    south = shapely.box(lon, 39.99984, lon + 0.0001, 39.99993)
    north = shapely.box(lon, 40.00007, lon + 0.0001, 40.00016)
    for ref, geom, name in (("S-1", south, "望京南"), ("N-1", north, "望京北")):
        row = {"编号": ref, "类型": "配套用房", "建筑面积": 40.0, "geometry": geom}
        import_file(engine, write(frame([row]), tmp_path / f"{ref}.gpkg"), community=name)
    pooled = bundles_in_store(engine, 30, across_communities=True)
    assert pooled[0]["members"].tolist() == ["N-1, S-1"]
    assert pooled[0]["communities"].tolist() == ["望京北, 望京南"]
    _same_bundles(pooled, find_bundles(listing.spaces(engine), 30, across_communities=True))
    assert len(bundles_in_store(engine, 15, across_communities=True)[0]) == 0
    assert len(bundles_in_store(engine, 30)[0]) == 0  # per community: apart


@pytest.mark.parametrize("parts", [1, 3])
def test_same_bundles_on_a_generated_city_in_each_store(engine, tmp_path, monkeypatch, parts):
    # PostGIS clusters the store in parts at once (communities split by id): the same
    monkeypatch.setattr(bundles_module, "QUERY_PARTS", parts)
    _, spaces = synthetic_inventory(8, 80, seed=5)
    path = tmp_path / "city.gpkg"
    # stored in no particular order: the store's member lists come back unsorted
    pyogrio.write_dataframe(spaces.sample(frac=1, random_state=2), path)
    import_file(engine, path)
    stored = listing.spaces(engine)
    kinds = list(set(stored["kind"]))
    expected = find_bundles(stored, 40, kinds=kinds)
    assert len(expected[0]) > 5
    _same_bundles(bundles_in_store(engine, 40, kinds=kinds), expected)
    across = find_bundles(stored, 40, kinds=kinds, across_communities=True)
    _same_bundles(bundles_in_store(engine, 40, kinds=kinds, across_communities=True), across)


def test_members_from_the_store_are_put_in_order():
    refs = ["B-2", "B-1", "A-9", "C-1", "C-2", "X"]
    communities = ["乙", "乙", "甲", "甲", "甲", "甲"]
    counts = [3, 2, 1]
    starts = np.array([0, 3, 5])
    got_refs, got_communities, resorted = bundles_module._members_in_order(
        refs, communities, starts, counts
    )
    # code-point order, as COLLATE "C": 乙 (U+4E59) before 甲 (U+7532)
    assert got_refs.tolist() == ["B-1", "B-2", "A-9", "C-1", "C-2", "X"]
    assert got_communities.tolist() == ["乙", "乙", "甲", "甲", "甲", "甲"]
    assert resorted == {0}


def test_bounds_prefilter_uses_the_index_and_keeps_what_is_near(engine, sample):
    from inventory.capacity import near_bounds

    lon, lat = JINSONG_CENTRE
    boxed = listing.spaces(engine, bounds=near_bounds(lon, lat, 150))
    assert 0 < len(boxed) < len(sample)
    exact = filter_spaces(sample, near=(lon, lat), radius_m=150)
    assert set(exact["survey_ref"]) <= set(boxed["survey_ref"])


@pytest.mark.parametrize("by", [["kind"], ["community", "vacancy"], ["kind", "tenure_status"]])
def test_capacity_near_in_sql_matches_loading_the_spaces(engine, sample, by):
    lon, lat = JINSONG_CENTRE
    for radius in (60, 150, 400):
        expected = capacity(filter_spaces(sample, near=(lon, lat), radius_m=radius), by)
        got = capacity_near(engine, (lon, lat), radius, by)
        assert len(got) > 0
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    with pytest.raises(InputError, match="greater than 0"):
        capacity_near(engine, (lon, lat), 0, by)


@pytest.mark.parametrize("by", [["kind"], ["community", "vacancy"], ["district", "kind"]])
def test_capacity_of_the_whole_store_in_sql_matches_loading_the_spaces(engine, sample, by):
    got = capacity_in_store(engine, by)  # one SQL aggregate on either backend
    pd.testing.assert_frame_equal(got, capacity(sample, by), check_dtype=False)
    one = capacity_in_store(engine, by, community="劲松北社区")
    pd.testing.assert_frame_equal(one, capacity(sample, by), check_dtype=False)
    with pytest.raises(InputError, match="Communities in the store: 劲松北社区"):
        capacity_in_store(engine, by, community="没有的社区")
    with pytest.raises(InputError, match="go together"):
        capacity_in_store(engine, by, radius_m=100)


def test_capacity_near_on_a_generated_city(engine, tmp_path):
    communities, spaces = synthetic_inventory(9, 60, seed=3)
    path = tmp_path / "city.gpkg"
    pyogrio.write_dataframe(communities, path, layer="communities")
    pyogrio.write_dataframe(spaces, path, layer="spaces")
    import_file(engine, path, layer="communities", communities=True)
    import_file(engine, path, layer="spaces")
    stored = listing.spaces(engine)
    centres = shapely.centroid(stored.geometry.values[[0, 100, 300]])
    for c in centres:
        for by in (["district", "kind"], ["street_office"]):
            expected = capacity(filter_spaces(stored, near=(c.x, c.y), radius_m=700), by)
            got = capacity_near(engine, (c.x, c.y), 700, by)
            assert got["spaces"].sum() > 60  # reaches into neighbouring communities
            pd.testing.assert_frame_equal(got, expected, check_dtype=False)


@pytest.mark.parametrize("offset_deg", [0.0, 0.06])
def test_capacity_near_is_exact_at_the_radius(engine, sample, offset_deg):
    # a radius 5 cm beyond a space's geodesic distance includes it, 5 cm short excludes
    # it, near the estate and from 8 km away (where a planar frame is off by metres):
    # rows this close to the radius are decided by an exact test
    lon, lat = JINSONG_CENTRE[0] + offset_deg, JINSONG_CENTRE[1] + offset_deg
    distance = distances_m(sample.geometry.values, lon, lat)
    for d in np.sort(distance)[[3, 7, 12]]:
        counted = capacity_near(engine, (lon, lat), d + 0.05, ["kind"])["spaces"].sum()
        short = capacity_near(engine, (lon, lat), d - 0.05, ["kind"])["spaces"].sum()
        assert counted == int((distance <= d + 0.05).sum())
        assert short == int((distance <= d - 0.05).sum())
        assert counted > short


def test_capacity_near_from_the_command_line(sample, db_url, tmp_path):
    lon, lat = JINSONG_CENTRE
    out = tmp_path / "near.csv"
    args = ["capacity", "--near", f"{lon},{lat}", "--radius", "150", "--by", "kind,vacancy"]
    result = runner.invoke(app, [*args, "--output", str(out), "--db", db_url])
    assert result.exit_code == 0, result.output
    expected = capacity(filter_spaces(sample, near=(lon, lat), radius_m=150), ["kind", "vacancy"])
    got = pd.read_csv(out)
    assert got["kind"].tolist() == expected["kind"].tolist()
    assert got["spaces"].tolist() == expected["spaces"].tolist()
    assert np.allclose(got["usable_area_m2"], expected["usable_area_m2"])
    bad = runner.invoke(app, [*args[:3], "--radius", "-5", "--db", db_url])
    assert bad.exit_code != 0 and "greater than 0" in bad.output


def test_title_status_is_computed_once_per_request(sample, monkeypatch):
    from inventory import gaps

    once = gaps.annotate(sample)
    calls = []
    real = gaps.Rule.applies
    monkeypatch.setattr(gaps.Rule, "applies", lambda self, *a: calls.append(1) or real(self, *a))
    again = gaps.annotate(once)
    assert calls == [] and again["gap_severity"].equals(once["gap_severity"])
    assert list(gaps.worst_severity(once)) == list(once["gap_severity"].fillna("clean"))
    assert calls == []
    # a frame annotated for another warning period is annotated anew
    gaps.annotate(once, expiring_months=3)
    assert calls


# ---- policy regimes ---------------------------------------------------------------------------


def test_beijing_2021_makes_allocated_rooms_transitional_for_community_services(engine, sample):
    from inventory.gaps import load_policy, title_gaps, title_gaps_in_store

    default, _ = title_gaps_in_store(engine)
    beijing, totals = title_gaps_in_store(engine, policy="beijing-2021")
    before = default.set_index("survey_ref")["gap_severity"]
    after = beijing.set_index("survey_ref")
    assert before["JS-013"] == "blocking" == before["JS-015"]
    assert after.loc["JS-013", "gap_severity"] == "transitional"  # the boiler room
    assert after.loc["JS-015", "gap_severity"] == "transitional"  # the coal yard
    assert after.loc["JS-013", "gaps"] == ["allocated_land_temporary_use"]
    assert "京规自发〔2021〕120号" in after.loc["JS-013", "gap_detail"]
    assert after.loc["JS-011", "gap_severity"] == "blocking"  # a dispute is still a dispute
    # the store's totals apply the same rules as the frame
    _, in_memory = title_gaps(sample, policy="beijing-2021")
    assert totals["spaces_blocking"].tolist() == in_memory["spaces_blocking"].tolist() == [2]
    # commerce still needs a change of use: a shop on allocated land stays blocked
    shop = sample[sample["survey_ref"] == "JS-013"].assign(kind="shop")
    rows, _ = title_gaps(shop, policy=load_policy("beijing-2021"))
    assert rows["gap_severity"].tolist() == ["blocking"]


def test_policy_files_are_checked(tmp_path, sample):
    from inventory.gaps import load_policy, shipped_policies

    assert {"default", "beijing-2021"} <= set(shipped_policies())
    with pytest.raises(InputError, match="neither a shipped policy .*beijing-2021"):
        load_policy("tokyo-1999")
    cases = {
        'name = "x"\ncolour = 1\n[[rules]]\n': "unknown key colour",
        '[[rules]]\ngap = "g"\nseverity = "awful"\nzh = "z"\nen = "e"\nwhen = { kind = "shop" }\n': "severity = 'awful'; use blocking",
        '[[rules]]\ngap = "g"\nseverity = "minor"\nzh = "z"\nen = "e"\nwhen = { colour = "red" }\n': "'colour' is not a column a rule can test",
        '[[rules]]\ngap = "g"\nseverity = "minor"\nzh = "z"\nen = "e"\n': "rules\\[1\\] has no when",
        'name = "empty"\n': "has no \\[\\[rules\\]\\]",
        '[[rules]]\ngap = "g"\nseverity = "minor"\nzh = "z"\nen = "e"\nwhen = { kind = "shop" }\nuses = 3\n': "uses = 3; give the uses as text or a list",
    }
    for i, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"p{i}.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InputError, match=message):
            load_policy(path)
    mine = tmp_path / "strict.toml"
    mine.write_text(
        'name = "strict"\n[[rules]]\ngap = "idle"\nseverity = "minor"\nzh = "闲置"\n'
        'en = "idle"\nwhen = { vacancy = "idle" }\nunless = { kind = ["coal_yard"] }\n',
        encoding="utf-8",
    )
    rows, _ = title_gaps(sample, policy=mine)
    idle = sample[(sample["vacancy"] == "idle") & (sample["kind"] != "coal_yard")]
    assert set(rows.loc[rows["gap_severity"] == "minor", "survey_ref"]) == set(idle["survey_ref"])
    assert len(idle) > 0


def test_gaps_command_takes_a_policy(sample, db_url):
    from typer.testing import CliRunner

    from inventory.cli import app

    result = CliRunner().invoke(
        app,
        ["gaps", "--policy", "beijing-2021", "--db", db_url, "--output", "-", "--format", "csv"],
    )
    assert result.exit_code == 0, result.output
    assert "allocated_land_temporary_use" in result.output
    bad = CliRunner().invoke(app, ["gaps", "--policy", "nowhere", "--db", db_url])
    assert bad.exit_code == 1 and "--policy 'nowhere' is neither a shipped policy" in bad.output


def test_a_listing_of_some_columns_is_the_whole_listing_cut_to_them(engine, sample):
    from inventory.errors import InputError

    whole = listing.spaces(engine)
    wanted = ["kind_zh", "survey_ref", "permit_uses", "quality_flags"]
    some = listing.spaces(engine, columns=wanted)
    assert list(some.columns) == [
        "survey_ref",
        "kind_zh",
        "permit_uses",
        "quality_flags",
        "geometry",
    ]
    pd.testing.assert_frame_equal(some, whole[list(some.columns)])
    with pytest.raises(InputError, match="Unknown column 'colour'.*survey_ref"):
        listing.spaces(engine, columns=["survey_ref", "colour"])
