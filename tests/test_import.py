"""Importing surveyors' files: every bad input gets a clear message or quarantine."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import zipfile
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from shapely import MultiPoint, Point, Polygon
from sqlalchemy import func, select, text

from inventory import importer, listing
from inventory.backends import backend
from inventory.chinacoords import gcj02_to_wgs84, wgs84_to_gcj02
from inventory.db import connect
from inventory.errors import InputError
from inventory.geodesy import area_m2
from inventory.importer import import_file
from inventory.models import (
    BatchSpace,
    Community,
    ImportBatch,
    Party,
    RejectedFeature,
    RightSource,
    Space,
    SpaceHistory,
    TenureRight,
    TenureSource,
)
from tests.conftest import TEMPLATE_DB, _drop, _postgis_database
from tests.util import LAT0, LON0, count, frame, room, rooms, validate_report, write


def imp(engine, path, **kwargs):
    reports = import_file(engine, path, **kwargs)
    for r in reports:
        validate_report(r, engine)
    return reports[0] if len(reports) == 1 else reports


def reasons(report) -> str:
    return " | ".join("; ".join(i.reasons) for i in report.issues)


@pytest.fixture
def jinsong(engine, sample_dir):
    imp(engine, sample_dir / "jinsong_north_community.shp", communities=True)
    return imp(engine, sample_dir / "jinsong_north_spaces.shp")


# ---- the sample survey ------------------------------------------------------------


def test_sample_survey_imports_with_chinese_text_and_true_areas(engine, jinsong):
    assert jinsong.read == jinsong.loaded == 21 and jinsong.rejected == 0
    assert "GBK" in jinsong.encoding_note and "no .cpg" in jinsong.encoding_note
    assert "EPSG:4548" in jinsong.crs
    with engine.connect() as conn:
        boiler = conn.execute(select(Space).where(Space.survey_ref == "JS-013")).one()
        community = conn.execute(select(Community)).one()
    assert boiler.name == "原锅炉房" and boiler.kind == "boiler_room"
    assert boiler.land_type == "allocated" and "划拨用地" in boiler.notes
    assert boiler.footprint_area_m2 == pytest.approx(3000, rel=0.01)
    assert community.name == "劲松北社区" and community.residents == 9494
    assert community.site_area_m2 == pytest.approx(260_000, rel=0.01)


def test_reimport_changes_nothing(engine, jinsong, sample_dir):
    again = imp(engine, sample_dir / "jinsong_north_spaces.shp")
    assert (again.loaded, again.updated, again.unchanged, again.rejected) == (0, 0, 21, 0)
    assert count(engine) == 21
    assert count(engine, SpaceHistory) == 0


def test_changed_survey_updates_by_ref_and_keeps_history(engine, jinsong, sample_dir, tmp_path):
    gdf = pyogrio.read_dataframe(sample_dir / "jinsong_north_spaces.shp", encoding="gbk")
    gdf.loc[gdf["编号"] == "JS-003", "产权证"] = "有"  # the title gap was resolved
    gdf.loc[gdf["编号"] == "JS-005", "建筑面积"] = 110.0
    path = write(gdf, tmp_path / "resurvey.shp", encoding="GBK")
    report = imp(engine, path)
    assert (report.loaded, report.updated, report.unchanged) == (0, 2, 19)
    with engine.connect() as conn:
        history = conn.execute(
            select(SpaceHistory.field, SpaceHistory.old_value, SpaceHistory.new_value)
        ).all()
    assert ("certificate_status", "missing", "complete") in history
    assert ("floor_area_m2", "100.0", "110.0") in history


def test_a_resurvey_moves_outlines_and_changes_owners_in_bulk(
    engine, jinsong, sample_dir, tmp_path
):
    gdf = pyogrio.read_dataframe(sample_dir / "jinsong_north_spaces.shp", encoding="gbk")
    js1, js2 = gdf["编号"] == "JS-001", gdf["编号"] == "JS-002"
    gdf.loc[js1, "geometry"] = gdf.loc[js1, "geometry"].translate(xoff=1.5)  # metres
    gdf.loc[js2, "产权单位"] = "劲松物业公司"
    gdf.loc[js2, "建筑面积"] = None
    with engine.connect() as conn:
        before = {
            ref: (bytes(wkb), owner)
            for ref, wkb, owner in conn.execute(
                select(Space.survey_ref, func.ST_AsBinary(Space.geom), Space.owner_name)
            )
        }
    report = imp(engine, write(gdf, tmp_path / "resurvey.shp", encoding="GBK"))
    assert (report.loaded, report.updated, report.unchanged) == (0, 2, 19)
    delivered = gdf.loc[js1].to_crs(4326).geometry.iloc[0]
    with engine.connect() as conn:
        after = {
            row.survey_ref: row
            for row in conn.execute(
                select(
                    Space.id,
                    Space.survey_ref,
                    func.ST_AsBinary(Space.geom).label("wkb"),
                    Space.owner_name,
                    Space.floor_area_m2,
                    Space.batch_id,
                )
            )
        }
        owners = dict(
            conn.execute(
                select(TenureRight.space_id, Party.name)
                .join(Party, Party.id == TenureRight.holder_id)
                .where(TenureRight.kind == "ownership")
            ).all()
        )
        history = set(
            conn.execute(
                select(Space.survey_ref, SpaceHistory.field).join(
                    Space, Space.id == SpaceHistory.space_id
                )
            ).all()
        )
    moved = shapely.from_wkb(bytes(after["JS-001"].wkb))
    assert shapely.hausdorff_distance(moved, delivered) < 1e-9  # where the file puts it
    assert shapely.hausdorff_distance(moved, shapely.from_wkb(before["JS-001"][0])) > 1e-5
    assert bytes(after["JS-002"].wkb) == before["JS-002"][0]  # the stored outline kept
    assert after["JS-002"].owner_name == "劲松物业公司" and after["JS-002"].floor_area_m2 is None
    assert owners[after["JS-002"].id] == "劲松物业公司"  # its survey right follows
    assert owners[after["JS-001"].id] == before["JS-001"][1]
    assert {after[r].batch_id for r in ("JS-001", "JS-002")} == {report.batch_id}
    assert {after[r].batch_id for r in after if r not in ("JS-001", "JS-002")} != {report.batch_id}
    assert {("JS-001", "geometry"), ("JS-002", "owner_name")} <= history
    assert all(bytes(after[r].wkb) == before[r][0] for r in after if r != "JS-001")


def test_parking_points_with_space_count(engine, jinsong, sample_dir):
    report = imp(engine, sample_dir / "jinsong_north_parking_points.shp")
    assert report.loaded == 1
    with engine.connect() as conn:
        total = sum(conn.scalars(select(Space.parking_spaces).where(Space.kind == "parking")))
    assert total == 600


# ---- encodings ----------------------------------------------------------------------


def test_wrong_cpg_is_refused_with_the_fix(engine, jinsong, sample_dir, tmp_path):
    for f in sample_dir.glob("jinsong_north_spaces.*"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "jinsong_north_spaces.cpg").write_text("UTF-8")
    with pytest.raises(InputError, match=r"\.cpg says .*UTF-8.*`encoding=gb18030`"):
        import_file(engine, tmp_path / "jinsong_north_spaces.shp")
    (tmp_path / "jinsong_north_spaces.cpg").write_text("ISO-8859-1")
    with pytest.raises(InputError, match=r"reads as GB18030"):
        import_file(engine, tmp_path / "jinsong_north_spaces.shp")
    # the override fixes it
    report = imp(engine, tmp_path / "jinsong_north_spaces.shp", encoding="gbk")
    assert report.unchanged == 21


def test_mojibake_is_never_imported(engine, tmp_path):
    path = tmp_path / "garbled.geojson"
    write(rooms(2, 名称="锅炉房".encode("gbk").decode("latin-1")), path)
    with pytest.raises(InputError, match="garbled.*`encoding=gbk`"):
        import_file(engine, path, community="X")
    assert count(engine, ImportBatch) == 0


@pytest.mark.parametrize(
    "values",
    [
        ["ok", None, "锅炉房".encode("gbk").decode("latin-1")],  # text with gaps
        [3, date(2020, 1, 1), "锅炉房".encode("gbk").decode("latin-1")],  # text among others
    ],
)
def test_mojibake_is_found_among_gaps_and_other_values(values):
    from inventory.importer.sources import check_mojibake

    with pytest.raises(InputError, match="garbled"):
        check_mojibake(pd.DataFrame({"名称": pd.Series(values, dtype=object)}), "x.shp")
    check_mojibake(pd.DataFrame({"名称": pd.Series(values[:2], dtype=object)}), "x.shp")


# ---- file problems --------------------------------------------------------------------


def test_missing_prj_asks_for_crs(engine, tmp_path, sample_dir):
    for f in sample_dir.glob("jinsong_north_spaces.*"):
        if f.suffix != ".prj":
            shutil.copy(f, tmp_path / f.name)
    with pytest.raises(InputError, match=r"no \.prj file.*`crs=EPSG:4548`"):
        import_file(engine, tmp_path / "jinsong_north_spaces.shp")
    report = imp(
        engine, tmp_path / "jinsong_north_spaces.shp", crs="EPSG:4548", community="劲松北社区"
    )
    assert report.loaded == 21


@pytest.mark.parametrize("missing", [".dbf", ".shx"])
def test_shapefile_without_its_companions(engine, tmp_path, sample_dir, missing):
    for f in sample_dir.glob("jinsong_north_spaces.*"):
        if f.suffix != missing:
            shutil.copy(f, tmp_path / f.name)
    with pytest.raises(InputError, match=rf"no \{missing} file beside it"):
        import_file(engine, tmp_path / "jinsong_north_spaces.shp")


def test_zero_byte_file(engine, tmp_path):
    (tmp_path / "empty.gpkg").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty \(0 bytes\)"):
        import_file(engine, tmp_path / "empty.gpkg")


def test_truncated_shapefile(engine, tmp_path, sample_dir):
    for f in sample_dir.glob("jinsong_north_spaces.*"):
        shutil.copy(f, tmp_path / f.name)
    shp = tmp_path / "jinsong_north_spaces.shp"
    shp.write_bytes(shp.read_bytes()[: shp.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated"):
        import_file(engine, shp)
    assert count(engine, ImportBatch) == 0


def test_file_of_zero_features(engine, tmp_path):
    path = tmp_path / "none.geojson"
    path.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(InputError, match="holds no features"):
        import_file(engine, path, community="X")


def test_geopackage_with_several_layers(engine, sample_dir):
    gpkg = sample_dir / "jinsong_north.gpkg"
    with pytest.raises(
        InputError, match=r"2 layers \(community, spaces\).*`layer=NAME`.*`all_layers=True`"
    ):
        import_file(engine, gpkg)
    community, spaces = imp(engine, gpkg, all_layers=True)
    assert community.target == "communities" and community.loaded == 1
    assert spaces.loaded == 22 and spaces.rejected == 0


def test_zipped_shapefile(engine, tmp_path, sample_dir):
    archive = tmp_path / "survey.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sample_dir.glob("jinsong_north_spaces.*"):
            z.write(f, f"survey/{f.name}")
    report = imp(engine, archive, community="劲松北社区")
    assert report.loaded == 21 and "GBK" in report.encoding_note


# ---- fields and values ------------------------------------------------------------------


def test_unknown_columns_are_kept_and_unknown_kinds_quarantined(engine, tmp_path):
    gdf = rooms(3, 楼栋号="12号楼")
    gdf.loc[1, "类型"] = "仓库"
    report = imp(engine, write(gdf, tmp_path / "r.geojson"), community="X")
    assert report.loaded == 2 and report.rejected == 1
    assert "kind '仓库' is not known; use one of 锅炉房/boiler_room" in reasons(report)
    assert "楼栋号" in report.unmapped
    with engine.connect() as conn:
        extra = conn.scalars(select(Space.extra_attributes)).first()
        raw = conn.scalars(select(RejectedFeature.raw_attributes)).one()
    assert extra == {"楼栋号": "12号楼"}
    assert raw["类型"] == "仓库" and raw["编号"] == "R-001"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("-25", "must be greater than 0"),
        ("0", "must be greater than 0"),
        ("约二十五", "is not a number"),
        ("2500000", "implausible"),
    ],
)
def test_bad_areas_are_quarantined(engine, tmp_path, value, why):
    gdf = rooms(2)
    gdf["建筑面积"] = gdf["建筑面积"].astype(object)
    gdf.loc[0, "建筑面积"] = value
    report = imp(engine, write(gdf, tmp_path / "a.geojson"), community="X")
    assert report.rejected == 1 and report.loaded == 1
    assert why in reasons(report)


def test_areas_with_units_are_read(engine, tmp_path):
    gdf = rooms(1)
    gdf["建筑面积"] = ["25㎡"]
    report = imp(engine, write(gdf, tmp_path / "a.geojson"), community="X")
    assert report.loaded == 1
    with engine.connect() as conn:
        assert conn.scalar(select(Space.floor_area_m2)) == 25


def test_duplicate_survey_refs_are_all_quarantined(engine, tmp_path):
    gdf = rooms(3)
    gdf.loc[2, "编号"] = "R-000"
    report = imp(engine, write(gdf, tmp_path / "d.geojson"), community="X")
    assert report.rejected == 2 and report.loaded == 1
    assert "appears more than once in the file (first at row 1)" in reasons(report)


def test_markup_and_sql_in_text_are_stored_verbatim(engine, tmp_path):
    note = "<script>alert('x')</script>'; DROP TABLE space; --"
    report = imp(engine, write(rooms(1, 备注=note), tmp_path / "x.geojson"), community="X")
    assert report.loaded == 1
    with engine.connect() as conn:
        assert conn.scalar(select(Space.notes)) == note


def test_mapping_overrides_and_profiles(engine, tmp_path):
    gdf = rooms(2).rename(columns={"建筑面积": "房间大小"})
    path = write(gdf, tmp_path / "m.geojson")
    with pytest.raises(InputError, match="the file has no column 'nope'"):
        import_file(engine, path, community="X", field_map=["nope=floor_area_m2"])
    profile = tmp_path / "profile.json"
    imp(engine, path, community="X", field_map=["房间大小=floor_area_m2"], save_profile_to=profile)
    saved = json.loads(profile.read_text(encoding="utf-8"))
    assert saved["fields"]["房间大小"] == "floor_area_m2" and saved["community"] == "X"
    again = imp(engine, path, profile=profile)
    assert again.unchanged == 2


# ---- geometry ---------------------------------------------------------------------------


def test_self_intersecting_polygon_is_repaired(engine, tmp_path):
    x, y = LON0, LAT0
    bowtie = Polygon(
        [(x, y), (x + 20 * 1e-5, y + 20 * 1e-5), (x + 20 * 1e-5, y), (x, y + 20 * 1e-5), (x, y)]
    )
    report = imp(
        engine,
        write(frame([{"编号": "B", "类型": "门房", "geometry": bowtie}]), tmp_path / "b.geojson"),
        community="X",
    )
    assert report.loaded == 1
    assert "repaired invalid polygon (Self-intersection" in reasons(report)
    with engine.connect() as conn:
        wkb = conn.scalar(select(Space.geom.ST_AsBinary()))
    assert shapely.from_wkb(bytes(wkb)).is_valid


def _geojson(tmp_path, features) -> object:
    path = tmp_path / "raw.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"编号": ref, "类型": "门房"},
                        "geometry": geom,
                    }
                    for ref, geom in features
                ],
            }
        )
    )
    return path


def test_null_empty_and_unclosed_geometries(engine, tmp_path):
    ring = [[LON0, LAT0], [LON0 + 2e-4, LAT0], [LON0 + 2e-4, LAT0 + 2e-4], [LON0, LAT0 + 2e-4]]
    path = _geojson(
        tmp_path,
        [
            ("ok", {"type": "Polygon", "coordinates": [ring + [ring[0]]]}),
            ("null", None),
            ("empty", {"type": "Polygon", "coordinates": []}),
            ("unclosed", {"type": "Polygon", "coordinates": [ring]}),
        ],
    )
    report = imp(engine, path, community="X")
    assert report.read == 4 and report.loaded == 1 and report.rejected == 3
    by_ref = {i.survey_ref: "; ".join(i.reasons) for i in report.issues}
    assert "no geometry" in by_ref["null"]
    assert "empty geometry" in by_ref["empty"]
    assert "cannot be read" in by_ref["unclosed"] or "empty" in by_ref["unclosed"]


def test_points_only_for_parking(engine, tmp_path):
    p = Point(LON0, LAT0)
    gdf = frame(
        [
            {"编号": "P1", "类型": "停车场", "车位数": 20, "geometry": MultiPoint([p])},
            {"编号": "G1", "类型": "门房", "车位数": None, "geometry": MultiPoint([p])},
            {"编号": "P2", "类型": "停车场", "车位数": None, "geometry": MultiPoint([p])},
        ]
    )
    report = imp(engine, write(gdf, tmp_path / "p.geojson"), community="X")
    assert report.loaded == 1 and report.rejected == 2
    assert "a gatehouse needs its outline" in reasons(report)
    assert "parking point needs a space count" in reasons(report)


def test_z_coordinates_are_dropped(engine, tmp_path):
    poly = shapely.force_3d(room(0, 0), 12.5)
    report = imp(
        engine,
        write(frame([{"编号": "Z", "类型": "门房", "geometry": poly}]), tmp_path / "z.geojson"),
        community="X",
    )
    assert report.loaded == 1 and "Z coordinates dropped" in reasons(report)


def test_swapped_and_outside_china_coordinates(engine, tmp_path):
    swapped = shapely.transform(room(0, 0), lambda xy: xy[:, ::-1])
    europe = shapely.affinity.translate(room(0, 0), -100, 10)
    gdf = frame(
        [
            {"编号": "S", "类型": "门房", "geometry": swapped},
            {"编号": "E", "类型": "门房", "geometry": europe},
            {"编号": "OK", "类型": "门房", "geometry": room(0, 0)},
        ]
    )
    report = imp(engine, write(gdf, tmp_path / "s.geojson"), community="X")
    assert report.loaded == 1
    assert "coordinates look swapped" in reasons(report)
    assert "outside China" in reasons(report)


def test_overlaps_slivers_and_outside_boundary_are_flagged_not_rejected(engine, jinsong, tmp_path):
    gdf = frame(
        [
            {"编号": "O1", "类型": "门房", "geometry": room(0, 0, 10, 10)},
            {"编号": "O2", "类型": "门房", "geometry": room(5, 0, 10, 10)},
            {"编号": "SL", "类型": "门房", "geometry": room(0, 50, 100, 0.5)},
            {"编号": "FAR", "类型": "门房", "geometry": room(0, 2000, 10, 10)},
        ]
    )
    report = imp(engine, write(gdf, tmp_path / "f.geojson"), community="劲松北社区")
    assert report.loaded == 4 and report.rejected == 0
    text = reasons(report)
    assert (
        "overlaps O2 by 50" in text
        and "sliver" in text
        and "outside the boundary of 劲松北社区" in text
    )


def test_community_by_boundary_or_quarantine(engine, jinsong, tmp_path):
    gdf = frame(
        [
            {"编号": "IN", "类型": "门房", "geometry": room(0, 0)},
            {"编号": "OUT", "类型": "门房", "geometry": room(0, 5000)},
        ]
    )
    report = imp(engine, write(gdf, tmp_path / "c.geojson"))
    assert report.loaded == 1 and report.rejected == 1
    assert "lies in no community's boundary" in reasons(report)


# ---- spreadsheets and web-map coordinates ---------------------------------------------------


def test_csv_with_wkt_quarantines_bad_wkt(engine, tmp_path):
    path = tmp_path / "rooms.csv"
    path.write_text(
        "编号,类型,建筑面积,wkt\n"
        f'A,门房,25,"{room(0, 0).wkt}"\n'
        'B,门房,30,"POLYGON((116.4 39.8, 116.5"\n',
        encoding="gbk",
    )
    report = imp(engine, path, crs="EPSG:4326", community="X")
    assert report.loaded == 1 and report.rejected == 1
    assert "cannot be read" in reasons(report)
    assert "GBK" in report.encoding_note
    with engine.connect() as conn:
        raw = conn.scalar(select(RejectedFeature.raw_geometry_wkt))
    assert raw == "POLYGON((116.4 39.8, 116.5"


def test_csv_without_crs_is_refused(engine, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(f"编号,类型,车位数,lon,lat\nP,停车场,12,{LON0},{LAT0}\n", encoding="utf-8")
    with pytest.raises(InputError, match="`crs=EPSG:4326` .*`crs=gcj02`"):
        import_file(engine, path, community="X")


def test_gcj02_coordinates_are_shifted_to_wgs84(engine, tmp_path):
    glon, glat = wgs84_to_gcj02(LON0, LAT0)
    path = tmp_path / "p.xlsx"
    import pandas as pd

    pd.DataFrame(
        {"编号": ["P"], "类型": ["停车位"], "车位数": [12], "经度": [glon], "纬度": [glat]}
    ).to_excel(path, index=False)
    report = imp(engine, path, crs="gcj02", community="X")
    assert report.loaded == 1 and "GCJ-02" in report.crs
    with engine.connect() as conn:
        wkb = conn.scalar(select(Space.geom.ST_AsBinary()))
    x, y = shapely.get_coordinates(shapely.from_wkb(bytes(wkb)))[0]
    assert (x, y) == pytest.approx((LON0, LAT0), abs=1e-7)  # ~1 cm


def test_gcj02_reference_vector():
    # Published test vector (eviltransform): WGS84 → GCJ-02 in Shanghai
    lon, lat = wgs84_to_gcj02(121.5272106, 31.1774276)
    assert (float(lon), float(lat)) == pytest.approx(
        (121.531541859215, 31.17530398364597), abs=1e-9
    )
    back = gcj02_to_wgs84(lon, lat)
    assert np.allclose(back, (121.5272106, 31.1774276), atol=1e-8)


def test_communities_go_in_as_drawn_in_file_order_and_again_unchanged(engine, tmp_path):
    outlines = [
        room(i * 500, 0, 400, 300).difference(room(i * 500 + 100, 100, 50, 50)) for i in range(3)
    ]
    names = ["丙社区", "甲社区", "乙社区"]
    path = write(
        frame([{"名称": n, "geometry": g} for n, g in zip(names, outlines, strict=True)]),
        tmp_path / "communities.gpkg",
    )
    assert import_file(engine, path, communities=True)[0].loaded == 3
    with engine.connect() as conn:
        rows = conn.execute(
            select(Community.name, func.ST_AsBinary(Community.boundary)).order_by(Community.id)
        ).all()
    assert [name for name, _ in rows] == names  # ids in the file's order
    for (_, wkb), drawn in zip(rows, outlines, strict=True):
        stored = shapely.from_wkb(bytes(wkb))  # a multipolygon of the one drawn
        assert np.array_equal(shapely.get_coordinates(stored), shapely.get_coordinates(drawn))
    again = import_file(engine, path, communities=True)[0]
    assert (again.loaded, again.updated, again.unchanged) == (0, 0, 3)


# ---- all or nothing ----------------------------------------------------------------------


def test_dry_run_writes_nothing(engine, sample_dir):
    report = imp(engine, sample_dir / "jinsong_north_community.shp", communities=True, dry_run=True)
    assert report.loaded == 1 and report.batch_id is None
    assert count(engine, Community) == 0 and count(engine, ImportBatch) == 0


def test_failed_batch_leaves_the_store_as_it_was(
    engine, jinsong, sample_dir, tmp_path, monkeypatch
):
    before = (count(engine), count(engine, ImportBatch), count(engine, RejectedFeature))
    gdf = rooms(5)
    gdf.loc[0, "类型"] = "仓库"  # one reject, so the quarantine is written before the failure

    def boom(*args, **kwargs):
        raise ConnectionError("connection lost half-way")

    monkeypatch.setattr(type(backend(engine)), "bulk_insert", boom)
    with pytest.raises(ConnectionError):
        import_file(engine, write(gdf, tmp_path / "x.geojson"), community="新社区")
    assert (count(engine), count(engine, ImportBatch), count(engine, RejectedFeature)) == before
    assert count(engine, Community) == 1  # the new community was rolled back too


def test_concurrent_imports_neither_duplicate_nor_lose(engine, db_url, sample_dir):
    imp(engine, sample_dir / "jinsong_north_community.shp", communities=True)
    from inventory.db import connect

    results, errors = [], []

    def worker():
        eng = connect(db_url)
        try:
            results.extend(import_file(eng, sample_dir / "jinsong_north_spaces.shp"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            eng.dispose()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted((r.loaded, r.unchanged) for r in results) == [(0, 21), (21, 0)]
    assert count(engine) == 21


def test_report_files(engine, tmp_path):
    gdf = rooms(2)
    gdf.loc[1, "类型"] = "仓库"
    report = imp(engine, write(gdf, tmp_path / "r.geojson"), community="X")
    report.write(tmp_path / "report.json")
    report.write(tmp_path / "report.csv")
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert data["rejected"] == 1 and data["issues"][0]["survey_ref"] == "R-001"
    lines = (tmp_path / "report.csv").read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("source,layer,row,survey_ref,status,reasons") and "仓库" in lines[1]


def test_footprint_area_is_geodesic(engine, tmp_path):
    geom = room(0, 0, 50, 60)
    imp(
        engine,
        write(frame([{"编号": "A", "类型": "门房", "geometry": geom}]), tmp_path / "a.geojson"),
        community="X",
    )
    with engine.connect() as conn:
        stored = conn.scalar(select(Space.footprint_area_m2))
    assert stored == pytest.approx(area_m2(geom)[0], rel=1e-6)


def test_no_module_outside_the_backends_branches_on_the_dialect():
    package = Path(importer.__file__).resolve().parent.parent
    for path in package.rglob("*.py"):
        if "backends" in path.parts or "migrations" in path.parts:
            continue
        source = path.read_text(encoding="utf-8")
        assert "dialect.name" not in source, path
        assert '== "postgresql"' not in source and '== "sqlite"' not in source, path


@pytest.mark.parametrize(
    ("suffix", "driver"), [(".kml", "KML"), (".gpkg", "GPKG"), (".geojson", "GeoJSON")]
)
def test_vector_formats(engine, tmp_path, suffix, driver):
    gdf = rooms(3).rename(
        columns={"编号": "survey_ref", "类型": "kind", "建筑面积": "floor_area_m2"}
    )
    path = write(gdf, tmp_path / f"rooms{suffix}", driver=driver)
    report = imp(engine, path, community="X")
    assert report.loaded == 3 and report.fields["kind"] == "kind"


def _mixed_survey(tmp_path, *, changed: bool = False) -> Path:
    """A survey whose duplicates, overlaps and rejects fall in different parts of the file."""
    rows = [
        {"编号": f"M-{i:02d}", "类型": "配套用房", "建筑面积": 100.0, "geometry": room(i * 20, 0)}
        for i in range(14)
    ]
    rows[9]["geometry"] = room(5, 5)  # overlaps M-00, eight rows and two parts away
    rows[11]["编号"] = "M-02"  # a duplicate of row 3, in another part
    rows[6]["geometry"] = None  # rejected
    rows[7]["类型"] = "仓库"  # an unknown kind: rejected
    rows[12]["geometry"] = room(280, 0, 0.5, 0.5)  # under 1 m²: rejected
    rows[13]["geometry"] = room(40, 4)  # overlaps M-02 in the first part
    if changed:
        rows[4]["建筑面积"] = 120.0
    return write(frame(rows), tmp_path / ("changed.geojson" if changed else "mixed.geojson"))


def _comparable(report) -> dict:
    return {
        "counts": (report.read, report.loaded, report.updated, report.unchanged, report.rejected),
        "issues": [(i.row, i.survey_ref, i.status, i.reasons) for i in report.issues],
        "created": report.communities_created,
    }


def _another_space(engine, tmp_path) -> None:
    """Store one space far from the mixed survey: a store that is not empty."""
    other = [{"编号": "Z-1", "类型": "配套用房", "建筑面积": 100.0, "geometry": room(5000, 0)}]
    import_file(engine, write(frame(other), tmp_path / "other.geojson"), community="Z")


#: How each way of reading a file in parts checks its parts (the file rows each part
#: starts at, checked by this process): first (none in one pass; all, or every other one
#: with a second process doing the rest, in the first of two passes), then for the write
#: (all, or every other one with a second process).
CHECKED_HERE = {
    "one pass": ([], [0, 4, 8, 12]),
    "one pass, two processes": ([], [0, 8]),
    "two passes": ([0, 4, 8, 12], [0, 4, 8, 12]),
    "two passes, two processes": ([0, 8], [0, 8]),
}


@pytest.mark.parametrize("way", list(CHECKED_HERE))
def test_a_file_read_in_parts_gives_what_reading_it_whole_gives(engine, tmp_path, monkeypatch, way):
    path = _mixed_survey(tmp_path)
    if way.startswith("two passes"):  # a store holding spaces is read in two passes
        _another_space(engine, tmp_path)
    whole = import_file(engine, path, community="M", dry_run=True)[0]
    # from CHECK_IN_PARALLEL_FROM features a worker process checks every other part
    processes = way.endswith("two processes")
    monkeypatch.setattr(importer, "CHECK_IN_PARALLEL_FROM", 1 if processes else 10**9)
    monkeypatch.setattr(importer, "CHUNK_FEATURES", 4)
    first, real = [], importer._check_part
    monkeypatch.setattr(importer, "_check_part", lambda j, c: first.append(j.offset) or real(j, c))
    for_write, real_write = [], importer._check_for_write
    monkeypatch.setattr(
        importer,
        "_check_for_write",
        lambda j, *args: for_write.append(j.offset) or real_write(j, *args),
    )
    in_parts = import_file(engine, path, community="M")[0]
    assert (first, for_write) == CHECKED_HERE[way]
    validate_report(in_parts, engine)
    assert _comparable(in_parts) == _comparable(whole)
    assert in_parts.read == 14 and in_parts.rejected == 5
    overlap = [i for i in in_parts.issues if i.survey_ref == "M-00"][0]
    assert overlap.reasons == ["overlaps M-09 by 25.1 m²"]
    with engine.connect() as conn:
        flags = dict(conn.execute(select(Space.survey_ref, Space.quality_flags)).all())
        quarantined = conn.execute(select(RejectedFeature.source_row)).scalars().all()
    assert flags["M-09"] == ["overlaps M-00 by 25.1 m²"]
    assert sorted(quarantined) == [3, 7, 8, 12, 13]
    with engine.connect() as conn:  # the file's checksum, hashed beside the reading
        digest = conn.scalar(
            select(ImportBatch.checksum_sha256).where(ImportBatch.id == in_parts.batch_id)
        )
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    # a changed survey read in parts updates in place, like a whole one
    changed = _mixed_survey(tmp_path, changed=True)
    monkeypatch.setattr(importer, "CHUNK_FEATURES", 100_000)
    whole_again = import_file(engine, changed, community="M", dry_run=True)[0]
    monkeypatch.setattr(importer, "CHUNK_FEATURES", 4)
    again = import_file(engine, changed, community="M")[0]
    assert _comparable(again) == _comparable(whole_again)
    assert (again.loaded, again.updated, again.unchanged) == (0, 1, 8)


@pytest.mark.parametrize("step", [1, 3])
def test_each_new_space_gets_its_round_and_rights_whatever_ids_the_store_gives(
    engine, tmp_path, monkeypatch, step
):
    # the new spaces' ids are drawn before the write; a sequence stepping by 3 (PostGIS)
    # gives ids that are not one run, which are then listed one by one
    if step != 1:
        if engine.dialect.name != "postgresql":
            pytest.skip("SQLite's row ids step by one")
        with engine.begin() as conn:
            conn.execute(text("ALTER SEQUENCE space_id_seq INCREMENT BY 3"))
    rows = [
        {
            "编号": f"P-{i:02d}",
            "类型": "配套用房",
            "建筑面积": 100.0,
            "产权单位": f"单位{i % 4}",
            "经营权人": "物业公司" if i % 2 else None,
            "产权证号": f"京(2020)不动产权第{i % 5:07d}号" if i % 3 else None,
            "geometry": room(i * 20, 0),
        }
        for i in range(11)
    ]
    path = write(frame(rows), tmp_path / "owners.geojson")
    monkeypatch.setattr(importer, "CHUNK_FEATURES", 4)
    report = import_file(engine, path, community="P")[0]
    assert report.loaded == 11
    with engine.connect() as conn:
        ids = dict(conn.execute(select(Space.survey_ref, Space.id)).all())
        rounds = conn.execute(select(BatchSpace.space_id, BatchSpace.action)).all()
        rights = conn.execute(
            select(Space.survey_ref, TenureRight.kind, Party.name)
            .join(Space, Space.id == TenureRight.space_id)
            .join(Party, Party.id == TenureRight.holder_id)
        ).all()
        certified = conn.execute(
            select(Space.survey_ref, TenureRight.kind, TenureSource.kind, TenureSource.number)
            .join(TenureRight, TenureRight.space_id == Space.id)
            .join(RightSource, RightSource.right_id == TenureRight.id)
            .join(TenureSource, TenureSource.id == RightSource.source_id)
        ).all()
        numbers = conn.execute(select(TenureSource.number)).scalars().all()
    # (not one run: each part's first draw is left unused, so parts lie further apart)
    assert min(np.diff(sorted(ids.values()))) == step
    assert sorted(rounds) == sorted((i, "loaded") for i in ids.values())
    assert sorted(rights) == sorted(
        [(f"P-{i:02d}", "ownership", f"单位{i % 4}") for i in range(11)]
        + [(f"P-{i:02d}", "operating_right", "物业公司") for i in range(1, 11, 2)]
    )
    # each ownership rests on its space's certificate, one source per number
    assert sorted(certified) == sorted(
        (f"P-{i:02d}", "ownership", "certificate", f"京(2020)不动产权第{i % 5:07d}号")
        for i in range(11)
        if i % 3
    )
    assert sorted(numbers) == sorted(
        {f"京(2020)不动产权第{i % 5:07d}号" for i in range(11) if i % 3}
    )


@pytest.mark.parametrize("way", ["one pass", "two passes"])
def test_communities_named_in_several_parts_are_created_once_with_a_steady_bar(
    engine, tmp_path, monkeypatch, way
):
    # parts of 4: N1 in the first two parts, N2 in the last two; each part is checked
    # while the one before is written, so a part learns the communities created before it
    rows = [
        {
            "编号": f"N-{i:02d}",
            "类型": "配套用房",
            "社区": "N1" if i < 6 else "N2",
            "geometry": room(i * 20, 0),
        }
        for i in range(11)
    ]
    path = write(frame(rows), tmp_path / "named.geojson")
    if way == "two passes":
        _another_space(engine, tmp_path)
    monkeypatch.setattr(importer, "CHUNK_FEATURES", 4)
    seen: list[tuple[str, int, int]] = []
    report = import_file(engine, path, progress=lambda *step: seen.append(step))[0]
    assert report.loaded == 11 and report.communities_created == ["N1", "N2"]
    with engine.connect() as conn:
        placed = conn.execute(
            select(Community.name, func.count())
            .join(Space, Space.community_id == Community.id)
            .where(Community.name.in_(["N1", "N2"]))
            .group_by(Community.name)
            .order_by(Community.name)
        ).all()
    assert [tuple(p) for p in placed] == [("N1", 6), ("N2", 5)]
    written = [done for stage, done, _ in seen if stage.startswith("import")]
    assert written == sorted(written) and written[-1] == 11, seen
    assert len(set(written)) >= 3, seen  # it moves part by part


def test_overlaps_within_and_across_parts_are_flagged_as_reading_the_file_whole(
    engine, tmp_path, monkeypatch
):
    # parts of 4: B (row 5) overlaps A (row 0, an earlier part), C (row 6, its own part)
    # and D (row 9, a later part), and has a floor area far from its footprint
    rows = [
        {"编号": f"O-{i:02d}", "类型": "配套用房", "建筑面积": 100.0, "geometry": room(i * 20, 0)}
        for i in range(12)
    ]
    rows[5].update({"编号": "B", "建筑面积": 900.0, "geometry": room(5, 4)})
    rows[0]["编号"], rows[6]["编号"], rows[9]["编号"] = "A", "C", "D"
    rows[6]["geometry"] = room(10, 8)  # C: overlaps B only
    rows[9]["geometry"] = room(1, 12)  # D: overlaps B and C, both of an earlier part
    path = write(frame(rows), tmp_path / "overlaps.geojson")
    whole = import_file(engine, path, community="O", dry_run=True)[0]
    monkeypatch.setattr(importer, "CHUNK_FEATURES", 4)
    in_parts = import_file(engine, path, community="O")[0]
    assert _comparable(in_parts) == _comparable(whole)
    b = [i for i in in_parts.issues if i.survey_ref == "B"][0]
    assert b.reasons[0].startswith("area mismatch")
    assert [r.split(" by ")[0] for r in b.reasons[1:]] == [
        "overlaps A",
        "overlaps C",
        "overlaps D",
    ]
    with engine.connect() as conn:
        flags = dict(conn.execute(select(Space.survey_ref, Space.quality_flags)).all())
    issues = {i.survey_ref: i.reasons for i in in_parts.issues}
    assert {ref: f for ref, f in flags.items() if f} == issues
    assert [f.split(" by ")[0] for f in flags["A"]] == ["overlaps B"]
    assert [f.split(" by ")[0] for f in flags["D"]] == ["overlaps B", "overlaps C"]
    # listings give the flags as the store holds them: a list, or None without any
    listed = listing.spaces(engine).set_index("survey_ref")["quality_flags"]
    assert listed.to_dict() == {ref: flags.get(ref) for ref in listed.index}
    assert listed["O-01"] is None and isinstance(listed["B"], list)


def test_a_failure_in_a_later_part_leaves_the_store_as_it_was(engine, tmp_path, monkeypatch):
    path = _mixed_survey(tmp_path)
    monkeypatch.setattr(importer, "CHUNK_FEATURES", 4)
    real_read = importer.read

    def failing(*args, skip=0, **kwargs):
        if skip >= 8:
            raise InputError("the disk went away")
        return real_read(*args, skip=skip, **kwargs)

    monkeypatch.setattr(importer, "read", failing)
    with pytest.raises(InputError, match="disk went away"):
        import_file(engine, path, community="M")
    assert count(engine) == 0 and count(engine, ImportBatch) == 0


@pytest.mark.parametrize("python", ["missing", "/bin/true"], ids=["none to start", "it stops"])
def test_without_a_second_process_every_part_is_checked_here(engine, tmp_path, monkeypatch, python):
    from inventory.importer import _apart

    path = _mixed_survey(tmp_path)
    _another_space(engine, tmp_path)  # two passes
    whole = import_file(engine, path, community="M", dry_run=True)[0]
    monkeypatch.setattr(importer, "CHECK_IN_PARALLEL_FROM", 1)
    monkeypatch.setattr(importer, "CHUNK_FEATURES", 4)
    executable = str(tmp_path / "no-python") if python == "missing" else python
    monkeypatch.setattr(_apart.sys, "executable", executable)
    here, real = [], importer._check_part
    monkeypatch.setattr(importer, "_check_part", lambda j, c: here.append(j.offset) or real(j, c))
    for_write, real_write = [], importer._check_for_write
    monkeypatch.setattr(
        importer,
        "_check_for_write",
        lambda j, *args: for_write.append(j.offset) or real_write(j, *args),
    )
    in_parts = import_file(engine, path, community="M")[0]
    assert sorted(here) == [0, 4, 8, 12]  # its own parts first, then the worker's
    assert for_write == [0, 4, 8, 12]  # in file order: each when its turn comes
    assert _comparable(in_parts) == _comparable(whole)


@pytest.mark.parametrize("passes", [1, 2])
def test_a_garbled_part_checked_by_the_worker_is_named_as_from_one_process(
    engine, tmp_path, monkeypatch, passes
):
    rows = [
        {"编号": f"G-{i:02d}", "类型": "配套用房", "名称": "门房", "geometry": room(i * 20, 0)}
        for i in range(12)
    ]
    rows[5]["名称"] = "¹øÂ¯·¿"  # 锅炉房 in GBK read as Latin-1, in the second part
    path = write(frame(rows), tmp_path / "garbled.geojson")
    if passes == 2:  # the first pass shared with a worker
        _another_space(engine, tmp_path)
    monkeypatch.setattr(importer, "CHUNK_FEATURES", 4)
    messages = []
    for threshold in (10**9, 1):
        monkeypatch.setattr(importer, "CHECK_IN_PARALLEL_FROM", threshold)
        with pytest.raises(InputError, match="looks garbled") as caught:
            import_file(engine, path, community="G")
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and "锅炉房" in messages[0]
    assert count(engine) == passes - 1


def test_a_gbk_shapefile_read_in_parts(engine, sample_dir, monkeypatch):
    # later parts reuse the encoding detected for the first (no .cpg: GBK)
    import_file(engine, sample_dir / "jinsong_north_community.shp", communities=True)
    spaces = sample_dir / "jinsong_north_spaces.shp"
    whole = import_file(engine, spaces, dry_run=True)[0]
    monkeypatch.setattr(importer, "CHUNK_FEATURES", 5)
    in_parts = import_file(engine, spaces)[0]
    assert _comparable(in_parts) == _comparable(whole)
    assert in_parts.loaded == 21 and "GBK" in in_parts.encoding_note
    names = set(listing.spaces(engine)["name"])
    assert {"原锅炉房", "原堆煤场", "1号院门房"} <= names


# ---- a batch large against the store: indexes and foreign keys built after (#15) -------


def _schema(conn) -> list:
    """Every constraint, index and trigger of the store, as the database spells them."""
    if conn.dialect.name == "sqlite":
        return sorted(
            conn.execute(
                text(
                    "SELECT type, name, tbl_name, sql FROM sqlite_master UNION ALL "
                    "SELECT 'geometry', f_table_name, f_geometry_column, spatial_index_enabled "
                    "FROM geometry_columns"
                )
            ).all(),
            key=repr,
        )
    return sorted(
        conn.execute(
            text(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                "FROM pg_constraint WHERE connamespace = 'public'::regnamespace "
                "UNION ALL SELECT tablename, indexname, indexdef FROM pg_indexes "
                "WHERE schemaname = 'public'"
            )
        ).all()
    )


def _index_oids(conn) -> set:
    """What changes when the indexes of space are made again (SQLite: any DDL at all)."""
    if conn.dialect.name == "sqlite":
        return {conn.exec_driver_sql("PRAGMA schema_version").scalar_one()}
    return set(
        conn.execute(
            text("SELECT indexrelid FROM pg_index WHERE indrelid = 'space'::regclass")
        ).scalars()
    )


def _contents(conn) -> dict:
    """Every row of the tables an import writes, but for the times it ran (and the R*Tree)."""
    from geoalchemy2 import Geometry
    from sqlalchemy import DateTime

    from inventory.models import Base

    out = {}
    for name in (
        "space",
        "tenure_right",
        "batch_space",
        "right_source",
        "party",
        "tenure_source",
        "rejected_feature",
        "space_history",
        "community",
    ):
        table = Base.metadata.tables[name]
        columns = [
            func.ST_AsBinary(c) if isinstance(c.type, Geometry) else c
            for c in table.columns
            if not isinstance(c.type, DateTime)
        ]
        rows = conn.execute(select(*columns)).all()
        out[name] = sorted(
            repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)) for row in rows
        )
    if conn.dialect.name == "sqlite":  # the spatial index itself, filled once or row by row
        out["idx_space_geom"] = conn.exec_driver_sql(
            "SELECT * FROM idx_space_geom ORDER BY pkid"
        ).all()
    return out


def _batches(engine, mixed: Path, sample_dir: Path, monkeypatch, fast: bool) -> dict:
    """Load the same batches (one read in parts) after a dry run and a failure; the rows."""
    with engine.connect() as conn:
        schema, oids = _schema(conn), _index_oids(conn)
    # a dry run on the fast path leaves the schema and the rows as they were
    import_file(engine, mixed, community="M", dry_run=True)
    with engine.connect() as conn:
        assert _schema(conn) == schema and _index_oids(conn) == oids
    assert count(engine) == 0
    # a failure half-way through the writing pass too
    monkeypatch.setattr(importer, "CHUNK_FEATURES", 4)
    real_read, reads = importer.read, []

    def failing(*args, skip=0, **kwargs):
        reads.append(skip)
        if reads.count(8) == 1:  # the third part, after two were written (one pass)
            raise InputError("the disk went away")
        return real_read(*args, skip=skip, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(importer, "read", failing)
        with pytest.raises(InputError, match="disk went away"):
            import_file(engine, mixed, community="M")
    with engine.connect() as conn:
        assert _schema(conn) == schema and _index_oids(conn) == oids
    # the batches: one in parts into the empty store, then the sample survey
    report = import_file(engine, mixed, community="M")[0]
    monkeypatch.setattr(importer, "CHUNK_FEATURES", 100_000)
    assert (report.loaded, report.rejected) == (9, 5)
    if fast and engine.dialect.name == "postgresql":
        # the planner knows the communities the batch brought (capacity near a point)
        with engine.connect() as conn:
            known = conn.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'community'"))
            assert known == conn.scalar(text("SELECT count(*) FROM community")) > 0
    import_file(engine, sample_dir / "jinsong_north_community.shp", communities=True)
    import_file(engine, sample_dir / "jinsong_north_spaces.shp")
    import_file(engine, sample_dir / "jinsong_north_parking_points.shp")
    with engine.connect() as conn:
        assert _schema(conn) == schema
        # rebuilt (new indexes) on the fast path, the same ones otherwise
        assert (_index_oids(conn) != oids) == fast
        return _contents(conn)


def test_a_large_batch_builds_its_indexes_after_and_gives_the_same_store(
    backend, request, spatialite_template, sample_dir, tmp_path, monkeypatch
):
    from inventory.backends import postgis, spatialite

    mixed = _mixed_survey(tmp_path)
    stores = {}
    for fast in (False, True):
        monkeypatch.setattr(
            postgis if backend == "postgis" else spatialite,
            "BULK_LOAD_MIN_ROWS",
            1 if fast else 10**9,
        )
        monkeypatch.setattr(importer, "CHUNK_FEATURES", 100_000)
        if backend == "spatialite":
            url, name = str(tmp_path / f"fast_{fast}.sqlite"), None
            shutil.copyfile(spatialite_template, url)
        else:
            name, url = _postgis_database(request.getfixturevalue("postgis_admin"), TEMPLATE_DB)
        engine = connect(url)
        try:
            stores[fast] = _batches(engine, mixed, sample_dir, monkeypatch, fast)
        finally:
            engine.dispose()
            if name is not None:
                _drop(request.getfixturevalue("postgis_admin"), name)
    assert stores[True] == stores[False]
    assert len(stores[True]["space"]) > 30 and len(stores[True]["tenure_right"]) > 20


def test_the_embedded_fast_load_keeps_the_indexes_its_foreign_keys_look_up(
    spatialite_template, tmp_path, monkeypatch
):
    # SQLite checks a deleted right's children row by row: without the index on their
    # column a second round rebuilding 100,000 rights scans tenure_right once per right
    from inventory.backends import spatialite
    from inventory.importer.spaces import _SpaceImport

    path = tmp_path / "store.sqlite"
    shutil.copyfile(spatialite_template, path)
    monkeypatch.setattr(spatialite, "BULK_LOAD_MIN_ROWS", 1)
    engine = connect(str(path))
    try:
        with engine.begin() as conn:
            tables = ["space", "tenure_right", "batch_space", "right_source", "space_history"]
            keys = [
                (table, row[3])
                for table in tables
                for row in conn.exec_driver_sql(f"PRAGMA foreign_key_list({table})")
            ]

            def plans(key: int) -> dict:
                # a new text each time: the driver's cache would give the plan prepared before
                return {
                    (table, column): " ".join(
                        str(row[-1]).replace(f"={key}", "=?")
                        for row in conn.exec_driver_sql(
                            f"EXPLAIN QUERY PLAN SELECT 1 FROM {table} WHERE {column} = {key}"
                        )
                    )
                    for table, column in keys
                }

            before = plans(1)
            with _SpaceImport.bulk_load(conn, 10) as fast:
                assert fast
                during = plans(2)
                kinds = conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN SELECT 1 FROM space WHERE kind = 'gatehouse'"
                ).all()
                spatial = conn.exec_driver_sql(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'idx_space_geom'"
                ).scalar()
            conn.rollback()
    finally:
        engine.dispose()
    assert len(keys) >= 8 and sum("USING" in plan for plan in before.values()) >= 6
    assert during == before
    assert "USING" not in " ".join(str(r[-1]) for r in kinds)  # that index is down
    assert spatial == 0  # and the R*Tree, filled once after


# ---- every database constraint has a validation rule before it (#17) -----------------


def test_values_the_store_cannot_hold_are_quarantined_alike_on_both_backends(engine, tmp_path):
    rows = [
        {"编号": "R" * 101, "类型": "门房", "geometry": room(0, 0)},
        {"编号": "NAME", "类型": "门房", "名称": "长" * 201, "geometry": room(20, 0)},
        {"编号": "OWNER", "类型": "门房", "产权单位": "x" * 201, "geometry": room(40, 0)},
        {"编号": "EMPTY", "类型": "", "geometry": room(80, 0)},
        {
            "编号": "PERIOD",
            "类型": "门房",
            "经营起始": "2025-01-01",
            "经营终止": "2024-01-01",
            "geometry": room(100, 0),
        },
        {"编号": "OK", "类型": "门房", "geometry": room(120, 0)},
    ]
    path = write(frame(rows), tmp_path / "limits.gpkg")
    (report,) = import_file(engine, path, community="X")
    validate_report(report, engine)
    assert (report.loaded, report.rejected) == (1, 5)
    why = {i.survey_ref: "; ".join(i.reasons) for i in report.issues if i.status == "rejected"}
    assert "at most 100 fit" in why[None] or any("at most 100 fit" in w for w in why.values())
    assert "name is 201 characters long" in why["NAME"]
    assert "owner name is 201 characters long" in why["OWNER"]
    assert "kind is empty" in why["EMPTY"]
    assert "ends (2024-01-01) before it starts (2025-01-01)" in why["PERIOD"]


def test_a_community_name_too_long_for_the_store(engine, tmp_path):
    rows = [{"编号": "A", "类型": "门房", "geometry": room(0, 0)}]
    with pytest.raises(InputError, match="community is 201 characters long"):
        import_file(engine, write(frame(rows), tmp_path / "c.gpkg"), community="社" * 201)
    assert count(engine) == 0


def test_nul_characters_are_refused_by_the_text_parser():
    import pandas as pd

    from inventory.importer.fields import parse_text

    values, errors = parse_text(pd.Series(["a\x00b", "ok", None]), "notes", 10)
    assert values == [None, "ok", None]
    assert "NUL character" in errors[0] and errors[1:] == [None, None]


def test_a_column_of_texts_parses_as_each_value_parsed_alone():
    import pandas as pd

    from inventory.importer.fields import _text, parse_text

    texts = [" JS-001 ", "JS-002", "   ", "", "\u3000锅炉房\u3000", "JS-001"]
    values, errors = parse_text(pd.Series(texts), "survey_ref", 10)
    assert (
        values == [_text(v) for v in texts] == ["JS-001", "JS-002", None, None, "锅炉房", "JS-001"]
    )
    assert errors == [None] * len(texts)
    # one value over the limit: every value is parsed alone, and that one named
    values, errors = parse_text(pd.Series([*texts, "x" * 11]), "survey_ref", 10)
    assert values == [*[_text(v) for v in texts], None]
    assert "11 characters long" in errors[-1] and errors[:-1] == [None] * len(texts)


def test_files_without_references_never_overwrite_each_other(engine, tmp_path):
    """Refs come from the outline, not the row (#17 item 3)."""
    first = frame([{"类型": "门房", "geometry": room(i * 20, 0)} for i in range(3)])
    other = frame([{"类型": "门房", "geometry": room(i * 20, 100)} for i in range(3)])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (one,) = import_file(engine, write(first, tmp_path / "a" / "rooms.gpkg"), community="X")
    (two,) = import_file(engine, write(other, tmp_path / "b" / "rooms.gpkg"), community="X")
    assert (one.loaded, two.loaded, two.updated) == (3, 3, 0)
    assert count(engine) == 6
    reordered = first.iloc[::-1].reset_index(drop=True)
    (again,) = import_file(engine, write(reordered, tmp_path / "rooms.gpkg"), community="X")
    assert (again.loaded, again.updated, again.unchanged) == (0, 0, 3)
    refs = {r for r in listing_refs(engine)}
    assert len(refs) == 6 and all(r.startswith("G-") and len(r) == 14 for r in refs)


def test_the_same_outline_twice_in_a_file_without_references(engine, tmp_path):
    rows = [{"类型": "门房", "geometry": room(0, 0)}, {"类型": "门房", "geometry": room(0, 0)}]
    (report,) = import_file(engine, write(frame(rows), tmp_path / "d.gpkg"), community="X")
    validate_report(report, engine)
    assert report.rejected == 2
    assert "the same outline as row 1" in "; ".join(report.issues[1].reasons)


def listing_refs(engine) -> list[str]:
    from inventory import listing

    return listing.spaces(engine)["survey_ref"].tolist()


# ---- the store under abuse: kill -9 and parallel writers, on both backends -----------


@pytest.mark.parametrize("after_s", [1.5, 4.0])
def test_kill_9_during_an_import_leaves_no_partial_batch(engine, db_url, tmp_path, after_s):
    import os
    import signal
    import subprocess
    import sys
    import time

    from inventory.models import ImportBatch

    path = write(rooms(6000), tmp_path / "many.gpkg")
    env = {k: v for k, v in os.environ.items() if k != "INVENTORY_DATABASE_URL"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inventory",
            "-q",
            "import",
            str(path),
            "--community",
            "K",
            "--db",
            db_url,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(after_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    spaces, batches = count(engine), count(engine, ImportBatch)
    assert (spaces, batches) in ((0, 0), (6000, 1)), (spaces, batches)
    # the store works on: the same file imports whole, or changes nothing
    (report,) = import_file(engine, path, community="K")
    validate_report(report, engine)
    assert count(engine) == 6000


def test_eight_parallel_imports_neither_duplicate_nor_lose(engine, db_url, tmp_path):
    import os
    import subprocess
    import sys

    files = []
    for i in range(4):
        gdf = rooms(50)
        gdf["编号"] = [f"P{i}-{j:03d}" for j in range(50)]
        files.append(write(gdf, tmp_path / f"part{i}.gpkg"))
    env = {k: v for k, v in os.environ.items() if k != "INVENTORY_DATABASE_URL"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "inventory",
                "-q",
                "import",
                str(f),
                "--community",
                "P",
                "--db",
                db_url,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in files * 2  # each file twice, at the same time
    ]
    outcomes = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    assert all(code == 0 for _, _, code in outcomes), [err for _, err, _ in outcomes]
    assert count(engine) == 200


def test_m_coordinates_are_dropped_and_said(engine, tmp_path):
    import shapely

    m_room = shapely.from_wkt(
        f"POLYGON M (({LON0} {LAT0} 1, {LON0 + 1e-4} {LAT0} 2, {LON0 + 1e-4} {LAT0 + 1e-4} 3, "
        f"{LON0} {LAT0 + 1e-4} 4, {LON0} {LAT0} 1))"
    )
    path = tmp_path / "m.csv"
    path.write_text(f'编号,类型,wkt\nM1,门房,"{shapely.to_wkt(m_room)}"\n', encoding="utf-8")
    (report,) = import_file(engine, path, community="X", crs="EPSG:4326")
    assert report.loaded == 1
    assert any("M coordinates dropped" in r for i in report.issues for r in i.reasons)


def test_a_floor_area_far_from_footprint_times_floors_is_flagged_with_both(engine, tmp_path):
    # 10 m x 10 m rooms (~100 m² each): flagged outside half to twice footprint x floors
    cases = {
        "FIT": (100.0, None),
        "THREE-FLOORS": (300.0, 3),
        "ONE-FLOOR-300": (300.0, None),
        "TOO-SMALL": (45.0, None),
        "SMALL-FITS": (55.0, 1),
        "NO-FLOOR-AREA": (None, 2),
    }
    rows = [
        {
            "编号": ref,
            "类型": "配套用房",
            "建筑面积": area,
            "层数": floors,
            "geometry": room(i * 20, 0),
        }
        for i, (ref, (area, floors)) in enumerate(cases.items())
    ]
    report = import_file(engine, write(frame(rows), tmp_path / "areas.gpkg"), community="A")[0]
    flagged = {i.survey_ref: i.reasons for i in report.issues}
    assert sorted(flagged) == ["ONE-FLOOR-300", "TOO-SMALL"], flagged
    assert flagged["ONE-FLOOR-300"][0].startswith("area mismatch: recorded floor area 300.0 m² vs")
    assert flagged["ONE-FLOOR-300"][0].endswith("m² × 1 floor(s)")
    assert flagged["TOO-SMALL"][0].startswith("area mismatch: recorded floor area 45.0 m²")
    assert report.loaded == len(cases) and report.rejected == 0


def test_usable_area_defaults_and_the_stored_values_keep_their_types(engine, tmp_path):
    # usable area: as surveyed, else the floor area, else for open ground the footprint
    rows = [
        {"编号": "GIVEN", "类型": "锅炉房", "建筑面积": 120.0, "使用面积": 80.0, "层数": 2},
        {"编号": "FLOOR", "类型": "锅炉房", "建筑面积": 120.0, "使用面积": None, "层数": None},
        {"编号": "NONE", "类型": "锅炉房", "建筑面积": None, "使用面积": None, "层数": None},
        {"编号": "OPEN", "类型": "闲置空地", "建筑面积": None, "使用面积": None, "层数": None},
    ]
    for i, row in enumerate(rows):
        row.update({"争议": "是" if i == 0 else "否", "geometry": room(i * 30, 0)})
    import_file(engine, write(frame(rows), tmp_path / "usable.gpkg"), community="U")
    with engine.connect() as conn:
        stored = {
            r.survey_ref: r
            for r in conn.execute(
                select(
                    Space.survey_ref,
                    Space.usable_area_m2,
                    Space.footprint_area_m2,
                    Space.floors,
                    Space.disputed,
                )
            )
        }
    assert stored["GIVEN"].usable_area_m2 == 80.0
    assert stored["FLOOR"].usable_area_m2 == 120.0
    assert stored["NONE"].usable_area_m2 is None
    assert (
        stored["OPEN"].usable_area_m2
        == stored["OPEN"].footprint_area_m2
        == pytest.approx(100, rel=0.01)
    )
    assert stored["GIVEN"].floors == 2 and type(stored["GIVEN"].floors) is int
    assert stored["FLOOR"].floors is None
    assert [stored[r].disputed for r in ("GIVEN", "FLOOR")] == [True, False]
