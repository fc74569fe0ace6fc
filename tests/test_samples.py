"""The sample community carries the Jinsong North figures of the domain brief."""

import pyogrio
import pytest
import shapely

from inventory.codes import CERTIFICATE_STATUS, KIND
from inventory.geodesy import area_m2
from inventory.samples import jinsong_north, synthetic_inventory, write_jinsong_north


@pytest.fixture(scope="module")
def jinsong():
    return jinsong_north()


def test_generator_is_deterministic(jinsong):
    again = jinsong_north()
    assert again[1].geometry.geom_equals_exact(jinsong[1].geometry, tolerance=0).all()


def test_community_figures(jinsong):
    community, _ = jinsong
    row = community.iloc[0]
    assert row["户数"] == 4199 and row["人口"] == 9494 and row["建成年份"] == 1978
    assert area_m2(row.geometry)[0] / 1e4 == pytest.approx(26, rel=0.01)


def test_stock_rooms(jinsong):
    _, spaces = jinsong
    kinds = spaces["类型"].map(KIND.match)
    assert kinds.notna().all()
    rooms = spaces[spaces["编号"].between("JS-001", "JS-012")]
    assert len(rooms) == 12
    assert rooms["建筑面积"].sum() == pytest.approx(1670)
    assert rooms["建筑面积"].min() == 25
    boiler = spaces[kinds == "boiler_room"].iloc[0]
    assert boiler["建筑面积"] == 3000 and boiler["土地性质"] == "划拨"
    assert area_m2(spaces[kinds == "coal_yard"].geometry).sum() == pytest.approx(1000, rel=0.01)
    all_rooms = spaces[~kinds.isin(["parking", "coal_yard", "idle_land"])]
    assert all_rooms["建筑面积"].sum() == pytest.approx(5000)
    # ~30% of the activated rooms lack complete title
    gaps = rooms[
        (rooms["产权证"].map(CERTIFICATE_STATUS.match) != "complete")
        | (rooms["争议"] == "是")
        | (rooms["权属类型"] == "不详")
    ]
    assert 0.25 <= len(gaps) / len(rooms) <= 0.35


def test_parking_and_layout(jinsong):
    community, spaces = jinsong
    assert spaces["车位数"].sum() == 600
    boundary = community.geometry.iloc[0]
    assert spaces.within(boundary).all()
    tree = shapely.STRtree(spaces.geometry.values)
    pairs = tree.query(spaces.geometry.values, predicate="intersects")
    assert (pairs[0] == pairs[1]).all(), "sample spaces must not overlap"


def test_files_are_as_surveyors_deliver_them(tmp_path):
    paths = write_jinsong_north(tmp_path)
    shp = tmp_path / "jinsong_north_spaces.shp"
    assert shp in paths
    assert not shp.with_suffix(".cpg").exists()
    assert shp.with_suffix(".dbf").read_bytes()[29] == 0  # no code page in the header
    assert pyogrio.read_info(shp)["crs"] == "EPSG:4548"
    assert "锅炉房".encode("gbk") in shp.with_suffix(".dbf").read_bytes()
    layers = {name for name, _ in pyogrio.list_layers(tmp_path / "jinsong_north.gpkg")}
    assert layers == {"community", "spaces"}


def test_committed_sample_matches_generator(sample_dir):
    gdf = pyogrio.read_dataframe(sample_dir / "jinsong_north_spaces.shp", encoding="gbk")
    _, spaces = jinsong_north()
    assert sorted(gdf["编号"]) == sorted(spaces[spaces.geom_type == "MultiPolygon"]["编号"])


def test_synthetic_inventory_scales():
    communities, spaces = synthetic_inventory(20, 50)
    assert len(communities) == 20 and len(spaces) == 1000
    assert spaces["survey_ref"].is_unique
    joined = spaces.sjoin(communities, predicate="within")
    assert (joined["community"] == joined["name"]).all()
