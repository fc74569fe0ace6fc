"""Areas are right in metres anywhere in China: in Python and in each database."""

import pytest
from shapely import box
from sqlalchemy import insert, select

from inventory.backends import backend
from inventory.geodesy import area_m2, gauss_kruger_3deg_epsg, local_metric_crs, reproject
from inventory.models import Community, Space

# A 60 m × 50 m rectangle (3,000 m², the Jinsong boiler room) at four corners of China.
PLACES = {
    "Beijing": (116.4655, 39.8795),
    "Urumqi": (87.6168, 43.8256),
    "Harbin": (126.6424, 45.7567),
    "Sanya": (109.5119, 18.2528),
}
TRUE_AREA = 3000.0


def rectangle_at(lon, lat):
    return reproject(box(-30, -25, 30, 25), local_metric_crs(lon, lat), "EPSG:4326")


@pytest.mark.parametrize("place", sorted(PLACES))
def test_area_in_python_is_within_half_a_percent(place):
    area = area_m2(rectangle_at(*PLACES[place]))[0]
    assert area == pytest.approx(TRUE_AREA, rel=0.005)


def test_naive_degree_area_would_be_wrong():
    # The reason for the care: planar area in degrees² is meaningless, and a single
    # projected CRS for all of China is off by far more than 0.5% at its edges.
    g = rectangle_at(*PLACES["Harbin"])
    utm50_area = reproject(g, "EPSG:4326", "EPSG:32650").area
    assert abs(utm50_area / TRUE_AREA - 1) > 0.005


@pytest.mark.parametrize("place", sorted(PLACES))
def test_area_in_the_database_agrees(engine, place):
    geom = rectangle_at(*PLACES[place])
    with engine.begin() as conn:
        cid = conn.execute(insert(Community).values(name=place).returning(Community.id)).scalar()
        conn.execute(
            insert(Space).values(
                community_id=cid,
                survey_ref="R1",
                kind="boiler_room",
                geom=f"SRID=4326;{geom.wkt}",
                footprint_area_m2=float(area_m2(geom)[0]),
            )
        )
        db_area = conn.scalar(select(backend(conn).geodesic_area(Space.geom)))
    assert db_area == pytest.approx(TRUE_AREA, rel=0.005)


def test_gauss_kruger_zones():
    assert gauss_kruger_3deg_epsg(116.47) == 4548  # CM 117E, Beijing
    assert gauss_kruger_3deg_epsg(87.6) == 4538  # CM 87E, Urumqi
    with pytest.raises(ValueError, match="outside China"):
        gauss_kruger_3deg_epsg(10.0)
