"""Outputs QGIS and Excel users can open as they are: ``inventory export`` and the views.

The GeoPackage has one geometry type per layer, typed fields, full community attributes,
the Chinese labels of codes, the source's own columns and a default QGIS style; the
workbook has headers in the reader's language and imports back; a PostGIS store has views
that GDAL (and so QGIS) lists with their geometry type.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import openpyxl
import pandas as pd
import pyogrio
import pytest
from typer.testing import CliRunner

from inventory import i18n, listing, views
from inventory.bundles import bundles_in_store
from inventory.cli import app
from inventory.db import connect
from inventory.errors import ConfigurationError, InputError
from inventory.export import export
from inventory.gaps import STATUS_COLOURS, annotate
from inventory.geopackage import styles_in
from inventory.importer import import_file
from inventory.importer.fields import SPACE_FIELDS
from inventory.importer.fields import _without_unit as without_unit
from inventory.tenure import import_rights
from tests.util import frame, room

COMMUNITY = "劲松北社区"
LAYERS = [
    "spaces",
    "spaces_points",
    "gaps",
    "gap_totals",
    "bundles",
    "bundle_members",
    "communities",
    "parties",
    "rights",
    "sources",
]


@pytest.fixture
def stocked(engine, sample, sample_dir, tmp_path):
    """The sample with its tenure records and one room carrying a column of its own (楼栋)."""
    import_rights(engine, sample_dir / "jinsong_north_rights.csv")
    extra = frame([{"编号": "X-1", "类型": "门房", "楼栋": "3号楼", "geometry": room(50, -40)}])
    pyogrio.write_dataframe(extra, tmp_path / "extra.gpkg")
    import_file(engine, tmp_path / "extra.gpkg", community=COMMUNITY)
    return engine


def _ogrinfo(*args: str) -> str:
    ogrinfo = shutil.which("ogrinfo")
    assert ogrinfo, "ogrinfo (Debian gdal-bin) is installed by the test command"
    return subprocess.run(
        [ogrinfo, "-ro", "-so", *args], capture_output=True, text=True, check=True
    ).stdout


def test_the_geopackage_has_one_geometry_type_per_layer_and_typed_fields(stocked, tmp_path):
    path = tmp_path / "all.gpkg"
    written = export(stocked, path)
    assert [name for name, _, _ in written] == LAYERS
    rows = {name: n for name, _, n in written}
    assert rows["spaces"] + rows["spaces_points"] == len(listing.spaces(stocked)) == 23
    types = dict(pyogrio.list_layers(path))
    assert types["spaces"] == "MultiPolygon" and types["spaces_points"] == "MultiPoint"
    assert types["bundles"] == types["communities"] == types["gaps"] == "MultiPolygon"
    assert types["rights"] is None and "layer_styles" in types
    listed = _ogrinfo(str(path))  # as QGIS's GDAL sees it
    assert "spaces (Multi Polygon)" in listed and "spaces_points (Multi Point)" in listed
    fields = _ogrinfo(str(path), "spaces")
    for name, kind in (
        ("floors", "Integer"),
        ("parking_spaces", "Integer"),
        ("units", "Integer"),  # no value at all in the sample: typed from the schema
        ("surveyed_at", "Date"),
        ("operating_right_end", "Date"),
        ("disputed", r"Integer\(Boolean\)"),
        ("usable_area_m2", "Real"),
    ):
        assert re.search(rf"^{name}: {kind} ", fields, re.M), (name, fields)
    assert re.search(r"^parent_id: Integer ", _ogrinfo(str(path), "rights"), re.M)
    assert re.search(r"^issued_on: Date ", _ogrinfo(str(path), "sources"), re.M)


def test_spaces_carry_status_bundle_labels_and_their_own_columns(stocked, tmp_path):
    path = tmp_path / "all.gpkg"
    export(stocked, path)
    spaces = pyogrio.read_dataframe(path, layer="spaces").set_index("survey_ref")
    expected = annotate(listing.spaces(stocked)).set_index("survey_ref")["gap_severity"]
    assert spaces.loc["JS-013", "title_status"] == expected["JS-013"] == "blocking"
    assert spaces.loc["JS-013", "title_status_zh"] == "产权障碍"
    assert spaces.loc["JS-001", "title_status"] == "clean"
    bundles, members = bundles_in_store(stocked)
    for bundle, ref in members[["bundle_id", "survey_ref"]].itertuples(index=False):
        assert spaces.loc[ref, "bundle_id"] == bundle
    assert pd.isna(spaces.loc["JS-004", "bundle_id"])
    assert spaces.loc["JS-013", "land_type_zh"] == "划拨"
    assert spaces.loc["X-1", "楼栋"] == "3号楼"  # the surveyor's own column comes back
    communities = pyogrio.read_dataframe(path, layer="communities")
    assert communities.loc[0, "households"] > 0 and communities.loc[0, "district"]
    assert str(communities["households"].dtype).startswith("int")


def test_each_layer_opens_in_qgis_coloured_by_title_status(stocked, tmp_path):
    path = tmp_path / "all.gpkg"
    export(stocked, path, lang="zh")
    found = styles_in(path)
    assert set(found) == {"spaces", "spaces_points", "gaps", "bundles", "communities"}
    style = ET.fromstring(found["spaces"].split("\n", 1)[1])
    renderer = style.find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == "title_status"
    categories = {c.get("value"): c.get("label") for c in renderer.iter("category")}
    assert categories == {s: i18n.title_status(s, "zh") for s in STATUS_COLOURS}
    colours = [o.get("value") for o in renderer.iter("Option") if o.get("name") == "color"]
    red = "{},{},{}".format(*(int(STATUS_COLOURS["blocking"][i : i + 2], 16) for i in (1, 3, 5)))
    assert any(c.startswith(red) for c in colours)
    aliases = {a.get("field"): a.get("name") for a in style.iter("alias")}
    assert aliases["survey_ref"] == "编号" and "rights" not in aliases  # fields of the layer
    point = ET.fromstring(found["spaces_points"].split("\n", 1)[1])
    assert point.find(".//symbol").get("type") == "marker"


def test_a_workbook_in_chinese_imports_back(stocked, tmp_path):
    path = tmp_path / "all.xlsx"
    export(stocked, path, lang="zh")
    book = openpyxl.load_workbook(path, read_only=True)
    assert book.sheetnames[:3] == ["空间", "产权问题", "产权问题汇总"]  # one sheet: WKT mixes
    headers = [c.value for c in next(book["空间"].iter_rows(max_row=1))]
    assert headers[:3] == ["空间ID", "编号", "社区"] and "建筑面积（㎡）" in headers
    assert "geometry" in headers  # WKT, so the sheet imports back
    fresh = connect(tmp_path / "fresh.sqlite", create=True)
    from inventory import store

    store.init(fresh)
    (report,) = import_file(fresh, path, layer="空间", crs="EPSG:4326", community=COMMUNITY)
    assert report.rejected == 0 and report.loaded == 23
    for field in ("survey_ref", "kind", "floor_area_m2", "usable_area_m2", "owner_name"):
        assert field in report.fields.values(), (field, report.fields)
    back = listing.spaces(fresh).set_index("survey_ref")
    assert back.loc["JS-013", "floor_area_m2"] == pytest.approx(
        listing.spaces(stocked).set_index("survey_ref").loc["JS-013", "floor_area_m2"]
    )
    fresh.dispose()


def test_every_chinese_header_of_a_field_is_one_the_importer_reads():
    for field, aliases in SPACE_FIELDS.items():
        if field in i18n.COLUMNS:
            header = i18n.column(field, "zh")
            assert without_unit(header) in aliases, (field, header)


def test_csv_headers_in_english_and_a_bad_language(stocked, tmp_path):
    export(stocked, tmp_path / "all.csv", lang="en")
    table = pd.read_csv(tmp_path / "all.csv", encoding="utf-8-sig")
    assert {"Survey ref", "Floor area (m²)", "Title status"} <= set(table.columns)
    with pytest.raises(InputError, match="zh or en"):
        export(stocked, tmp_path / "x.csv", lang="fr")


def test_the_export_command_names_each_layer(stocked, db_url, tmp_path):
    out = tmp_path / "cli.gpkg"
    result = CliRunner().invoke(app, ["export", str(out), "--db", db_url, "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "rows (spaces_points) written" in result.output
    assert "Survey ref" in styles_in(out)["spaces"]


# ---- PostGIS views ------------------------------------------------------------------


def _pg_source(db_url: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(db_url)
    return (
        f"PG:host={u.host} port={u.port or 5432} user={u.username} "
        f"password={u.password} dbname={u.database}"
    )


@pytest.mark.parametrize("backend", ["postgis"], indirect=True)
def test_postgis_views_list_in_gis_clients_with_their_geometry(stocked, db_url):
    made = {v.name: v for v in views.create_views(stocked)}
    assert made["v_space"].geometry == "MULTIPOLYGON" and made["v_space"].rows == 22
    assert made["v_space_point"].geometry == "MULTIPOINT" and made["v_space_point"].rows == 1
    assert made["v_bundle_member"].geometry is None
    listed = _ogrinfo(_pg_source(db_url))
    for name, kind in (
        ("v_space", "Multi Polygon"),
        ("v_space_point", "Multi Point"),
        ("v_gap", "Multi Polygon"),
        ("v_bundle", "Multi Polygon"),
    ):
        assert f"{name} ({kind})" in listed, listed
    fields = _ogrinfo(_pg_source(db_url), "v_space")
    assert re.search(r"^floors: Integer ", fields, re.M)
    assert re.search(r"^surveyed_at: Date ", fields, re.M)


@pytest.mark.parametrize("backend", ["postgis"], indirect=True)
def test_the_views_say_what_the_tool_says(stocked):
    views.create_views(stocked)
    space = pd.read_sql("SELECT * FROM v_space", stocked).set_index("survey_ref")
    spaces = listing.spaces(stocked)
    expected = annotate(spaces).set_index("survey_ref")["gap_severity"].fillna("clean")
    polygonal = expected.drop(index=space.index.symmetric_difference(expected.index))
    assert space["title_status"].sort_index().to_dict() == polygonal.sort_index().to_dict()
    assert space.loc["JS-013", "title_status_zh"] == "产权障碍"
    assert space.loc["JS-013", "gaps"] == "allocated_land"
    assert space.loc["JS-013", "kind_zh"] == "锅炉房"
    bundles, members = bundles_in_store(stocked)
    view = pd.read_sql("SELECT * FROM v_bundle ORDER BY bundle_id", stocked)
    assert list(view["bundle_id"]) == list(bundles["bundle_id"])
    assert list(view["members"]) == list(bundles["members"])
    assert list(view["usable_area_m2"]) == pytest.approx(list(bundles["usable_area_m2"]))
    assert list(view["blocking"]) == list(bundles["blocking"])
    for bundle, ref in members[["bundle_id", "survey_ref"]].itertuples(index=False):
        assert space.loc[ref, "bundle_id"] == bundle
    gaps = pd.read_sql("SELECT survey_ref FROM v_gap", stocked)
    assert set(gaps["survey_ref"]) == set(polygonal[polygonal != "clean"].index)


@pytest.mark.parametrize("backend", ["postgis"], indirect=True)
def test_views_follow_retirement_and_survive_init(stocked):
    from inventory import rounds, store

    views.create_views(stocked, max_gap_m=50)
    rounds.retire(stocked, "JS-004", reason="demolished", community=COMMUNITY)
    refs = set(pd.read_sql("SELECT survey_ref FROM v_space", stocked)["survey_ref"])
    assert "JS-004" not in refs and "JS-001" in refs
    store.init(stocked)  # up to date: the views stay as made
    with stocked.connect() as conn:
        assert views.made_with(conn)["max_gap_m"] == 50
    assert views.drop_views(stocked) == list(views.VIEWS)
    assert views.list_views(stocked) == []


@pytest.mark.parametrize("backend", ["spatialite"], indirect=True)
def test_the_embedded_store_says_where_views_are(engine):
    with pytest.raises(ConfigurationError, match="inventory export"):
        views.create_views(engine)
