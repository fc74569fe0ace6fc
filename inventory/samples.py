"""Sample data: the Jinsong North community (劲松北社区) and synthetic city-scale inventories.

The figures come from the published Jinsong North case (see the domain brief): a 26 hm²
site built in 1978, 9,494 residents in 4,199 households, ~200,000 m² of floor area,
~5,000 m² of stock rooms of which a ~3,000 m² boiler room on allocated land, a ~1,000 m²
coal yard, a demonstration area of 12 rooms totalling 1,670 m² (smallest 25 m²), 1,000 m²
of idle land, ~600 parking spaces, and ~30% of the activated rooms without complete title.
Positions are invented (fixed seed); the community's real location is approximate.

Regenerate the committed files with::

    python -m inventory.samples sample_data

which writes them the way surveyors deliver them: a shapefile in CGCS2000 /
Gauss-Krüger CM 117E (EPSG:4548) whose DBF is GBK-encoded with Chinese field names and
no ``.cpg`` (and no code page in the DBF header), and the same data as a GeoPackage.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from shapely import MultiPoint, MultiPolygon, Point, Polygon, box
from shapely.affinity import rotate

from inventory.geodesy import local_metric_crs

SEED = 20190601  # the demonstration area opened in 2019
#: Approximate centre of Jinsong North, Chaoyang District, Beijing (WGS84).
JINSONG_CENTRE = (116.4655, 39.8795)
#: Site of 26 hm²: 650 m × 400 m.
SITE_W, SITE_H = 650.0, 400.0
SHAPEFILE_EPSG = 4548  # CGCS2000 / 3-degree Gauss-Kruger CM 117E

COMMUNITY = {
    "name": "劲松北社区",
    "district": "朝阳区",
    "street_office": "劲松街道",
    "built_year": 1978,
    "households": 4199,
    "residents": 9494,
    "floor_area_m2": 200000.0,
}


@dataclass(frozen=True)
class _Room:
    ref: str
    name: str
    kind: str  # Chinese label, as surveyors write it
    floor_area: float
    floors: int
    x: float  # centre, metres east of the site's south-west corner
    y: float
    vacancy: str = "闲置"
    use: str = ""
    condition: str = "一般"
    owner: str = "劲松街道办事处"
    owner_type: str = "政府"
    land: str = "出让"
    certificate: str = "有"
    dispute: str = "否"
    note: str = ""


# The 12 demonstration rooms (1,670 m²; smallest 25 m²) and the other stock rooms.
# Four of the twelve rooms (33%) lack complete title, each in a different way.
_ROOMS: tuple[_Room, ...] = (
    _Room("JS-001", "1号院门房", "门房", 25, 1, 120, 300, "在用", "修鞋摊"),
    # 40 m² bike shed 10 m east of the 25 m² gatehouse: together they are worth running.
    _Room("JS-002", "1号院自行车棚", "自行车棚", 40, 1, 120 + 2.5 + 10 + 5, 300, "在用", "理发"),
    _Room(
        "JS-003",
        "3号楼车棚",
        "自行车棚",
        60,
        1,
        230,
        320,
        "低效利用",
        "存车",
        owner="北京市劲松房管所",
        owner_type="单位",
        certificate="无",
        note="无完整房权手续，街道协调临时许可",
    ),
    _Room("JS-004", "5号院门房", "门卫室", 85, 1, 330, 90, "在用", "便民维修"),
    _Room(
        "JS-005",
        "社区配套用房A",
        "配套用房",
        100,
        1,
        420,
        300,
        "在用",
        "社区客厅",
        condition="良好",
    ),
    _Room(
        "JS-006",
        "7号楼车棚",
        "自行车棚",
        120,
        1,
        500,
        330,
        "闲置",
        owner="原劲松服务公司",
        owner_type="不详",
        certificate="无",
        land="不详",
        note="原产权单位已撤销，产权人不明",
    ),
    _Room(
        "JS-007", "社区配套用房B", "公房", 150, 1, 560, 120, "在用", "便民超市", condition="良好"
    ),
    _Room(
        "JS-008",
        "12号楼地下室",
        "地下室",
        180,
        1,
        300,
        200,
        "低效利用",
        "库房",
        owner="北京市人防办",
        owner_type="政府",
        certificate="部分",
        note="人防工程，平时使用须备案",
    ),
    _Room(
        "JS-009", "社区配套用房C", "配套用房", 200, 2, 180, 60, "在用", "社区食堂", condition="良好"
    ),
    _Room(
        "JS-010",
        "15号楼地下室",
        "人防",
        230,
        1,
        460,
        210,
        "在用",
        "烘焙坊",
        owner="北京市人防办",
        owner_type="政府",
    ),
    _Room(
        "JS-011",
        "17号楼地下室",
        "地下室",
        230,
        1,
        90,
        180,
        "闲置",
        owner="劲松一建公司/劲松房管所",
        owner_type="单位",
        dispute="是",
        note="两家单位均主张产权",
    ),
    _Room(
        "JS-012",
        "社区配套用房D",
        "配套用房",
        250,
        1,
        600,
        260,
        "在用",
        "便利店",
        condition="良好",
    ),
    # Stock rooms outside the demonstration area.
    _Room(
        "JS-013",
        "原锅炉房",
        "锅炉房",
        3000,
        1,
        380,
        330,
        "闲置",
        "",
        condition="较差",
        owner="北京市热力集团",
        owner_type="国有企业",
        land="划拨",
        note="划拨用地，改变用途须审批；估算改为养老或菜市场年收益≥350万元",
    ),
    _Room(
        "JS-014",
        "20号楼地下室",
        "地下室",
        330,
        1,
        240,
        130,
        "闲置",
        owner="北京市人防办",
        owner_type="政府",
    ),
)

_PARKING: tuple[tuple[str, str, int, float, float, float, float], ...] = (
    # ref, name, spaces, centre x, centre y, width, height (m); 2.5 m × 5.3 m a space + aisles
    ("JS-P01", "北侧停车场", 140, 80, 370, 150, 40),
    ("JS-P02", "中心停车场", 120, 330, 270, 130, 40),
    ("JS-P03", "东侧停车场", 110, 610, 180, 40, 120),
    ("JS-P04", "南侧停车场", 90, 460, 30, 110, 40),
    ("JS-P05", "西侧停车场", 70, 25, 90, 40, 70),
)
# Kerbside parking recorded as points with a space count (70 spaces along the inner roads).
_KERB = ("JS-P06", "内部道路路侧停车", 70)


def _room_polygon(room: _Room, rng: np.random.Generator) -> Polygon:
    footprint = room.floor_area / room.floors
    aspect = rng.uniform(1.0, 2.0)
    w = (footprint * aspect) ** 0.5
    h = footprint / w
    poly = box(room.x - w / 2, room.y - h / 2, room.x + w / 2, room.y + h / 2)
    if room.ref in ("JS-001", "JS-002"):
        # exact squares so the 10 m gap between them is exact
        side = footprint**0.5
        poly = box(room.x - side / 2, room.y - side / 2, room.x + side / 2, room.y + side / 2)
    return poly


def jinsong_north(seed: int = SEED) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Return (community, spaces) for Jinsong North in EPSG:4326, with Chinese field names.

    The columns are those a surveyor's shapefile carries (编号, 名称, 类型, 建筑面积, 层数,
    ...), so that importing them exercises the field mapping.
    """
    rng = np.random.default_rng(seed)
    local = local_metric_crs(*JINSONG_CENTRE)
    origin = (-SITE_W / 2, -SITE_H / 2)

    def to_local(geom):
        from shapely.affinity import translate

        return translate(geom, origin[0], origin[1])

    boundary = to_local(Polygon([(0, 0), (SITE_W, 0), (SITE_W, SITE_H), (0, SITE_H)]))
    boundary = rotate(boundary, 8, origin=(0, 0))  # the estate's street grid is skewed
    records = []
    for room in _ROOMS:
        records.append(
            {
                "编号": room.ref,
                "名称": room.name,
                "类型": room.kind,
                "建筑面积": room.floor_area,
                "层数": room.floors,
                "使用面积": round(room.floor_area * 0.85, 1),
                "车位数": None,
                "现状": room.vacancy,
                "当前用途": room.use,
                "房屋状况": room.condition,
                "产权单位": room.owner,
                "权属类型": room.owner_type,
                "土地性质": room.land,
                "产权证": room.certificate,
                "争议": room.dispute,
                "调查日期": "2019-03-15",
                "备注": room.note,
                "geometry": rotate(to_local(_room_polygon(room, rng)), 8, origin=(0, 0)),
            }
        )
    # The coal yard and the idle land are open ground: no floors.
    for ref, name, kind, area, x, y, owner, owner_type, land, note in (
        (
            "JS-015",
            "原堆煤场",
            "堆煤场",
            1000.0,
            565,
            60,
            "北京市热力集团",
            "国有企业",
            "划拨",
            "锅炉房配套堆煤场，划拨用地",
        ),
        ("JS-016", "闲置空地", "闲置空地", 1000.0, 150, 230, "劲松街道办事处", "政府", "出让", ""),
    ):
        w = (area * 1.6) ** 0.5
        geom = box(x - w / 2, y - area / w / 2, x + w / 2, y + area / w / 2)
        records.append(
            {
                "编号": ref,
                "名称": name,
                "类型": kind,
                "建筑面积": None,
                "层数": None,
                "使用面积": area,
                "车位数": None,
                "现状": "闲置",
                "当前用途": "",
                "房屋状况": "较差",
                "产权单位": owner,
                "权属类型": owner_type,
                "土地性质": land,
                "产权证": "有",
                "争议": "否",
                "调查日期": "2019-03-15",
                "备注": note,
                "geometry": rotate(to_local(geom), 8, origin=(0, 0)),
            }
        )
    for ref, name, spaces, x, y, w, h in _PARKING:
        geom = box(x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        records.append(
            {
                "编号": ref,
                "名称": name,
                "类型": "停车场",
                "建筑面积": None,
                "层数": None,
                "使用面积": None,
                "车位数": spaces,
                "现状": "在用",
                "当前用途": "居民停车",
                "房屋状况": "一般",
                "产权单位": "劲松街道办事处",
                "权属类型": "政府",
                "土地性质": "出让",
                "产权证": "有",
                "争议": "否",
                "调查日期": "2019-03-15",
                "备注": "",
                "geometry": rotate(to_local(geom), 8, origin=(0, 0)),
            }
        )
    records_df = pd.DataFrame.from_records(records)
    # Polygons as multipolygons: one geometry type per layer, as a shapefile requires.
    records_df["geometry"] = [MultiPolygon([g]) for g in records_df["geometry"]]
    spaces = gpd.GeoDataFrame(records_df, geometry="geometry", crs=local).to_crs(4326)

    kerb_pts = [Point(x, 160) for x in np.linspace(100, 550, 8)]
    kerb = gpd.GeoDataFrame(
        {
            "编号": [_KERB[0]],
            "名称": [_KERB[1]],
            "类型": ["停车位"],
            "车位数": [_KERB[2]],
            "现状": ["在用"],
            "产权单位": ["劲松街道办事处"],
            "权属类型": ["政府"],
            "土地性质": ["出让"],
            "产权证": ["有"],
            "争议": ["否"],
            "调查日期": ["2019-03-15"],
        },
        geometry=[rotate(to_local(MultiPoint(kerb_pts)), 8, origin=(0, 0))],
        crs=local,
    ).to_crs(4326)

    community = gpd.GeoDataFrame(
        {
            "社区名称": [COMMUNITY["name"]],
            "所属区": [COMMUNITY["district"]],
            "街道": [COMMUNITY["street_office"]],
            "建成年份": [COMMUNITY["built_year"]],
            "户数": [COMMUNITY["households"]],
            "人口": [COMMUNITY["residents"]],
            "建筑面积": [COMMUNITY["floor_area_m2"]],
        },
        geometry=[MultiPolygon([boundary])],
        crs=local,
    ).to_crs(4326)
    return community, pd.concat([spaces, kerb], ignore_index=True)


def _strip_dbf_codepage(shp: Path) -> None:
    """Delete the .cpg and zero the DBF's language driver byte, as many surveyors' tools do."""
    shp.with_suffix(".cpg").unlink(missing_ok=True)
    dbf = shp.with_suffix(".dbf")
    data = bytearray(dbf.read_bytes())
    data[29] = 0
    dbf.write_bytes(bytes(data))


#: The concession's operator, as the sample names it (the studies do not name one).
OPERATOR = "社区运营单位"
STREET_OFFICE = "劲松街道办事处"


def jinsong_north_rights() -> pd.DataFrame:
    """Return the Jinsong North rights table (Chinese headers), one right per row.

    Records the published arrangements: the 20-year concession of the twelve activated
    rooms to the operator (from 2018, rent-free), the transitional permits the street
    office coordinated for the rooms without complete title (JS-003, JS-008), and the
    shares of the two work units that both claim JS-011. Contract and permit numbers are
    invented; the permits' terms are an assumption (renewed to 2027-05-31).
    """
    rows = [
        {
            "编号": f"JS-{i:03d}",
            "权利类型": "经营权",
            "权利人": OPERATOR,
            "主体类型": "运营方",
            "授权方": STREET_OFFICE,
            "起始日期": "2018-01-01",
            "终止日期": "2037-12-31",
            "证件类型": "合同",
            "证件编号": "劲松街道特许经营协议〔2018〕1号",
            "发证机关": STREET_OFFICE,
            "发证日期": "2018-01-01",
            "说明": "20年特许经营，免租金",
        }
        for i in range(1, 13)
    ]
    for ref, uses in (("JS-003", "存车、便民服务"), ("JS-008", "便民服务、库房")):
        rows.append(
            {
                "编号": ref,
                "权利类型": "临时许可",
                "权利人": OPERATOR,
                "主体类型": "运营方",
                "授权方": STREET_OFFICE,
                "起始日期": "2019-06-01",
                "终止日期": "2027-05-31",
                "许可用途": uses,
                "许可条件": "结构与消防安全经鉴定；不改变规划与权属",
                "证件类型": "许可文件",
                "证件编号": f"劲街临许〔2019〕{ref[-2:]}号",
                "发证机关": STREET_OFFICE,
                "发证日期": "2019-06-01",
            }
        )
    for owner in ("劲松一建公司", "劲松房管所"):
        rows.append(
            {
                "编号": "JS-011",
                "权利类型": "所有权",
                "权利人": owner,
                "主体类型": "单位",
                "份额": "0.5",
                "说明": "两家单位均主张产权；份额待确认",
            }
        )
    return pd.DataFrame(rows)


def write_jinsong_north(out_dir: str | Path) -> list[Path]:
    """Write the Jinsong North sample files into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    community, spaces = jinsong_north()
    polygons = spaces[spaces.geom_type == "MultiPolygon"]
    points = spaces[spaces.geom_type != "MultiPolygon"]
    written = []
    for name, gdf in (
        ("jinsong_north_spaces", polygons),
        ("jinsong_north_parking_points", points.dropna(axis=1, how="all")),
        ("jinsong_north_community", community),
    ):
        path = out / f"{name}.shp"
        for suffix in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
            path.with_suffix(suffix).unlink(missing_ok=True)
        pyogrio.write_dataframe(gdf.to_crs(SHAPEFILE_EPSG), path, encoding="GBK")
        _strip_dbf_codepage(path)
        written.append(path)
    gpkg = out / "jinsong_north.gpkg"
    gpkg.unlink(missing_ok=True)
    pyogrio.write_dataframe(community, gpkg, layer="community")
    pyogrio.write_dataframe(spaces, gpkg, layer="spaces", geometry_type="Unknown")
    written.append(gpkg)
    rights = out / "jinsong_north_rights.csv"
    jinsong_north_rights().to_csv(rights, index=False, encoding="utf-8-sig")
    written.append(rights)
    return written


def synthetic_inventory(
    communities: int, spaces_per_community: int, seed: int = 7
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Return (communities, spaces) for a synthetic city or country, in EPSG:4326.

    Communities are 500 m × 500 m squares laid out on a grid across eastern China
    (from ~105°E, 22°N); each holds ``spaces_per_community`` rectangular spaces of
    25–3,000 m² with kinds, tenure and title gaps in roughly the Jinsong proportions.
    Columns use the English field names of the store, so benchmarks measure loading,
    not field guessing. Meant for benchmarks: fast and vectorised, not pretty.
    """
    rng = np.random.default_rng(seed)
    n = communities * spaces_per_community
    cols = int(np.ceil(np.sqrt(communities)))
    cidx = np.arange(communities)
    # ~0.006° ≈ 500 m; leave 100 m between communities.
    step = 0.0055
    cx0 = 105.0 + (cidx % cols) * step * 1.2
    cy0 = 22.0 + (cidx // cols) * step
    comm = gpd.GeoDataFrame(
        {
            "name": [f"C{i:06d}" for i in cidx],
            "district": [f"D{i // 100:04d}" for i in cidx],
            "street_office": [f"S{i // 10:05d}" for i in cidx],
            "built_year": rng.integers(1960, 2000, communities),
        },
        geometry=[box(x, y, x + 0.0045, y + 0.0045) for x, y in zip(cx0, cy0, strict=True)],
        crs=4326,
    )
    owner = np.repeat(cidx, spaces_per_community)
    kinds = np.array(
        [
            "service_room",
            "bike_shed",
            "gatehouse",
            "basement",
            "parking",
            "idle_land",
            "coal_yard",
            "boiler_room",
        ]
    )
    kind = kinds[rng.choice(len(kinds), n, p=[0.3, 0.2, 0.15, 0.15, 0.1, 0.05, 0.03, 0.02])]
    area = np.clip(rng.lognormal(np.log(120), 0.9, n), 25, 3000)
    side = np.sqrt(area)
    # metres → degrees near 22–40°N (rough is fine for synthetic data)
    dx = side / 95_000.0
    dy = side / 111_000.0
    x = cx0[owner] + rng.uniform(0.0002, 0.0045 - 0.0006, n)
    y = cy0[owner] + rng.uniform(0.0002, 0.0045 - 0.0006, n)
    geoms = shapely.multipolygons(shapely.box(x, y, x + dx, y + dy), indices=np.arange(n))
    cert = rng.choice(["complete", "missing", "partial"], n, p=[0.7, 0.2, 0.1])
    spaces = gpd.GeoDataFrame(
        {
            "survey_ref": [f"S{i:08d}" for i in range(n)],
            "community": comm["name"].to_numpy()[owner],
            "kind": kind,
            "floor_area_m2": np.round(area, 1),
            "floors": 1,
            "certificate_status": cert,
            "land_type": rng.choice(["granted", "allocated"], n, p=[0.8, 0.2]),
            "owner_type": rng.choice(["government", "work_unit", "state_enterprise"], n),
            "vacancy": rng.choice(["idle", "under_used", "in_use"], n),
            # drawn last so the columns above keep their values for a given seed
            "owner_name": rng.choice(["区房管局", "热力公司", "街道办事处", "原单位后勤处"], n),
        },
        geometry=geoms,
        crs=4326,
    )
    return comm, spaces


# ---- the other published cases of the six models (Tang et al., Table 1) ----------------------
#
# Each case's inventory holds the resources its scenario (inventory/scenarios/<case>.toml)
# needs. Published figures are used where there are any (households, buildings, floor
# area); everything else (positions, the split into buildings and rooms, areas the
# studies do not give) is invented with a fixed seed and marked so in the scenario.


@dataclass(frozen=True)
class _Case:
    centre: tuple[float, float]  # lon, lat (approximate)
    communities: tuple[dict, ...]
    spaces: tuple[dict, ...]  # each: ref, community, kind, floor_area_m2 (or None), units, ...


def _dwellings(
    prefix: str,
    community: str,
    buildings: int,
    floor_area: float,
    units: int,
    kind: str = "dwelling",
) -> list[dict]:
    """Return ``buildings`` dwellings sharing ``floor_area`` and ``units`` (flats) evenly."""
    per = np.full(buildings, units // buildings)
    per[: units % buildings] += 1
    return [
        {
            "ref": f"{prefix}-D{i + 1:02d}",
            "community": community,
            "kind": kind,
            "floor_area_m2": round(floor_area * per[i] / units, 1),
            "floors": 6 if kind == "dwelling" else 3,
            "units": int(per[i]),
            "vacancy": "in_use",
            "owner_type": "government" if kind == "public_housing" else "private",
            "land_type": "allocated" if kind == "public_housing" else "granted",
            "certificate_status": "complete",
        }
        for i in range(buildings)
    ]


def _rooms(
    prefix: str, community: str, areas: list[float], kinds: list[str], **tenure
) -> list[dict]:
    return [
        {
            "ref": f"{prefix}-{i + 1:03d}",
            "community": community,
            "kind": kind,
            "floor_area_m2": area,
            "floors": 1,
            "vacancy": "idle",
            "owner_type": "government",
            "owner_name": "街道办事处",
            "land_type": "granted",
            "certificate_status": "complete",
            **tenure,
        }
        for i, (area, kind) in enumerate(zip(areas, kinds, strict=True))
    ]


def _parking(ref: str, community: str, spaces: int) -> dict:
    return {
        "ref": ref,
        "community": community,
        "kind": "parking",
        "floor_area_m2": None,
        "parking_spaces": spaces,
        "vacancy": "in_use",
        "owner_type": "government",
        "owner_name": "街道办事处",
        "land_type": "granted",
        "certificate_status": "complete",
    }


def _hongyupo() -> _Case:
    # 14.8 hm², 88 buildings, 12.6万 m² (Tang et al.); the split into four communities and
    # their rooms and parking are invented.
    parts = (
        ("红育坡一社区", 28, 40000.0, 120),
        ("红育坡二社区", 25, 36000.0, 90),
        ("红育坡三社区", 21, 30000.0, 40),
        ("红育坡四社区", 14, 20000.0, 10),
    )
    spaces: list[dict] = []
    for j, (name, buildings, area, parking) in enumerate(parts):
        prefix = f"HYP{j + 1}"
        spaces += _dwellings(prefix, name, buildings, area, round(area / 60))
        rooms = [(300.0, 120.0, 80.0), (150.0, 60.0), (90.0, 40.0), (30.0,)][j]
        spaces += _rooms(
            prefix, name, list(rooms), ["service_room", "bike_shed", "gatehouse"][: len(rooms)]
        )
        spaces.append(_parking(f"{prefix}-P01", name, parking))
    return _Case(
        (106.5165, 29.5310),
        tuple(
            {
                "name": n,
                "district": "九龙坡区",
                "street_office": "红育坡片区",
                "floor_area_m2": a,
                "households": round(a / 60),
                "buildings": b,
            }
            for n, b, a, _ in parts
        ),
        tuple(spaces),
    )


CASES: dict[str, callable] = {
    # 13 buildings demolished (Tang et al.); 30,000 m² of old flats and 600 households invented
    "zhegong": lambda: _Case(
        (120.1650, 30.2930),
        (
            {
                "name": "浙工新村",
                "district": "拱墅区",
                "street_office": None,
                "floor_area_m2": 30000.0,
                "households": 600,
                "buildings": 13,
            },
        ),
        tuple(_dwellings("ZG", "浙工新村", 13, 30000.0, 600)),
    ),
    # 29 households in a 3-storey public-housing building (Tang et al.); 45 m² a flat invented
    "guangming": lambda: _Case(
        (116.4230, 39.8930),
        (
            {
                "name": "光明楼17号楼",
                "district": "东城区",
                "street_office": None,
                "floor_area_m2": 29 * 45.0,
                "households": 29,
                "buildings": 1,
            },
        ),
        tuple(_dwellings("GM", "光明楼17号楼", 1, 29 * 45.0, 29, kind="public_housing")),
    ),
    # a shipyard parcel 1.2 km away sold with the renovation (Tang et al.); the community's
    # size, rooms and the parcel's area invented
    "heyuan": lambda: _Case(
        (113.2410, 23.0960),
        (
            {
                "name": "河源社区",
                "district": "荔湾区",
                "street_office": None,
                "floor_area_m2": 150000.0,
                "households": 2500,
                "buildings": 40,
            },
        ),
        (
            *_dwellings("HY", "河源社区", 40, 150000.0, 2500),
            *_rooms(
                "HY", "河源社区", [200.0, 120.0, 60.0], ["service_room", "bike_shed", "gatehouse"]
            ),
            {
                **_rooms(
                    "HY-L",
                    "河源社区",
                    [40000.0],
                    ["land_parcel"],
                    owner_name="原船厂",
                    owner_type="state_enterprise",
                )[0],
                "ref": "HY-L01",
                "floors": None,
                "name": "原船厂地块",
                "offset_m": (1200.0, 0.0),
            },
        ),
    ),
    "hongyupo": _hongyupo,
}


def renewal_case(name: str, seed: int = SEED) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Return (communities, spaces) in EPSG:4326 for a published case.

    Cases: zhegong, guangming, heyuan or hongyupo (see :data:`CASES`); the columns are the
    store's English field names.
    """
    if name not in CASES:
        raise KeyError(f"{name!r} is not a sample case; cases: {', '.join(CASES)}")
    case = CASES[name]()
    rng = np.random.default_rng(seed)
    local = local_metric_crs(*case.centre)
    boundaries, spaces = [], []
    for j, c in enumerate(case.communities):
        x0 = j * 500.0  # communities side by side, 500 m apart
        boundaries.append(box(x0, 0, x0 + 400, 400))
        members = [s for s in case.spaces if s["community"] == c["name"]]
        for k, space in enumerate(members):
            floors = space.get("floors") or 1
            footprint = (space["floor_area_m2"] or 40 * 2.5 * 5.3 * 1.0) / floors
            if space["kind"] == "parking":
                footprint = space["parking_spaces"] * 2.5 * 5.3 * 1.6
            side = footprint**0.5
            dx, dy = space.get("offset_m", (0.0, 0.0))
            if space.get("offset_m"):
                x, y = x0 + 200 + dx, 200 + dy
            else:
                col, row = k % 8, k // 8
                x = x0 + 25 + col * 47 + rng.uniform(-3, 3)
                y = 25 + row * 47 + rng.uniform(-3, 3)
            geom = box(x - side / 2, y - side / 2, x + side / 2, y + side / 2)
            if not space.get("offset_m") and side > 44:  # a large parcel or block: fit it in
                geom = box(x0 + 10, y - side / 2, x0 + 10 + side, y + side / 2)
            record = {k2: v for k2, v in space.items() if k2 not in ("ref", "offset_m")}
            record["survey_ref"] = space["ref"]
            record["surveyed_at"] = "2021-06-01"
            record["geometry"] = MultiPolygon([geom])
            spaces.append(record)
    comm = gpd.GeoDataFrame(
        pd.DataFrame(list(case.communities)).drop(columns=["buildings"]),
        geometry=[MultiPolygon([b]) for b in boundaries],
        crs=local,
    ).to_crs(4326)
    frame = pd.DataFrame(spaces)
    defaults = {
        "name": None,
        "disputed": False,
        "owner_name": "业主",
        "parking_spaces": None,
        "units": None,
        "current_use": None,
        "condition": "fair",
        "operating_right_end": None,
        "usable_area_m2": None,
    }
    for column, value in defaults.items():
        if column not in frame:
            frame[column] = value
        else:
            frame[column] = frame[column].where(frame[column].notna(), value)
    return comm, gpd.GeoDataFrame(frame, geometry="geometry", crs=local).to_crs(4326)


def write_renewal_cases(out_dir: str | Path) -> list[Path]:
    """Write each published case as a GeoPackage (layers communities and spaces); return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in CASES:
        comm, spaces = renewal_case(name)
        path = out / f"{name}.gpkg"
        path.unlink(missing_ok=True)
        pyogrio.write_dataframe(comm, path, layer="communities")
        pyogrio.write_dataframe(spaces, path, layer="spaces")
        written.append(path)
    return written


#: The second survey round (2025): five rooms re-delivered from a map app with new
#: references, and a workbook of corrections and new rooms.
ROUND2_KML = "jinsong_north_round2.kml"
ROUND2_XLSX = "jinsong_north_round2.xlsx"


def second_round(seed: int = SEED) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Return (the map app's placemarks, the workbook's rows) of a second survey round.

    The placemarks are JS-001 to JS-005 surveyed again on a phone map (奥维互动地图), each
    outline a few decimetres off and named R2-01…R2-05: the same rooms under references the
    store does not know. The workbook corrects JS-009 (now let as a canteen extension,
    more area) and JS-012 (vacant since the shop closed), adds JS-017 (a 仓库, storeroom,
    a word the kind list does not know) and JS-018 (its area typed as -80: rejected until
    fixed). Both in EPSG:4326.
    """
    from shapely.affinity import translate

    _, spaces = jinsong_north(seed)
    rooms = spaces.set_index("编号")
    rng = np.random.default_rng(seed + 2)
    placemarks = []
    for i, ref in enumerate(["JS-001", "JS-002", "JS-003", "JS-004", "JS-005"], start=1):
        room = rooms.loc[ref]
        dx, dy = rng.uniform(-3e-6, 3e-6, 2)  # a few decimetres: a phone's GNSS
        placemarks.append(
            {
                "编号": f"R2-{i:02d}",
                "名称": room["名称"],
                "类型": room["类型"],
                "建筑面积（㎡）": room["建筑面积"],
                "现状": room["现状"],
                "geometry": translate(room.geometry, dx, dy),
            }
        )
    base = rooms.loc["JS-009"].geometry.centroid
    rows = []
    for ref, name, kind, area, vacancy, use, geom in (
        ("JS-009", rooms.loc["JS-009", "名称"], rooms.loc["JS-009", "类型"], 230.0, "在用",
         "社区食堂", rooms.loc["JS-009"].geometry),
        ("JS-012", rooms.loc["JS-012", "名称"], rooms.loc["JS-012", "类型"],
         rooms.loc["JS-012", "建筑面积"], "闲置", None, rooms.loc["JS-012"].geometry),
        ("JS-017", "7号楼北侧仓库", "仓库", 60.0, "闲置", None,
         translate(base, 0.0004, 0.0002).buffer(0.00005, cap_style="square")),
        ("JS-018", "8号楼地下室", "地下室", -80.0, "闲置", None,
         translate(base, -0.0004, 0.0002).buffer(0.00005, cap_style="square")),
    ):  # fmt: skip
        rows.append(
            {
                "编号": ref,
                "名称": name,
                "类型": kind,
                "建筑面积（㎡）": area,
                "现状": vacancy,
                "当前用途": use,
                "调查日期": "2025-05-20",
                "geometry": geom,
            }
        )
    return (
        gpd.GeoDataFrame(placemarks, geometry="geometry", crs=4326),
        gpd.GeoDataFrame(rows, geometry="geometry", crs=4326),
    )


def _kml(placemarks: gpd.GeoDataFrame) -> str:
    """Return placemarks as a phone map app exports them: fields in the description."""
    from xml.sax.saxutils import escape

    parts = []
    records = placemarks.drop(columns="geometry").to_dict("records")
    for fields, geometry in zip(records, placemarks.geometry, strict=True):
        table = "".join(
            f"<tr><td>{escape(str(k))}</td><td>{escape(str(v))}</td></tr>"
            for k, v in fields.items()
        )
        ring = " ".join(f"{x:.8f},{y:.8f},0" for x, y in geometry.geoms[0].exterior.coords)
        parts.append(
            f"<Placemark><name>{escape(str(fields['名称']))}</name>"
            f"<description><![CDATA[<table>{table}</table>]]></description>"
            f"<Polygon><outerBoundaryIs><LinearRing><coordinates>{ring}</coordinates>"
            "</LinearRing></outerBoundaryIs></Polygon></Placemark>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="http://www.opengis.net/kml/2.2">'
        f"<Document><name>劲松北社区第二轮调查</name>{''.join(parts)}</Document></kml>\n"
    )


def write_second_round(out_dir: str | Path) -> list[Path]:
    """Write the second survey round's files (see :func:`second_round`); return their paths.

    The workbook has a title row above its header and units in its headers (建筑面积（㎡）),
    as delivered.
    """
    from openpyxl import Workbook

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    placemarks, rows = second_round()
    kml = out / ROUND2_KML
    kml.write_text(_kml(placemarks), encoding="utf-8")
    book = Workbook()
    sheet = book.active
    sheet.title = "第二轮"
    sheet.append(["劲松北社区存量空间第二轮调查表（2025年5月）"])
    table = rows.assign(wkt=rows.geometry.to_wkt()).drop(columns="geometry")
    sheet.append(list(table.columns))
    for values in table.itertuples(index=False):
        sheet.append([None if v is None or v != v else v for v in values])
    xlsx = out / ROUND2_XLSX
    book.save(xlsx)
    return [kml, xlsx]


def _main(argv: list[str]) -> int:
    out = argv[1] if len(argv) > 1 else "sample_data"
    for path in write_jinsong_north(out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
