"""Shared validators and builders for import tests."""

from __future__ import annotations

import geopandas as gpd
import pyogrio
from shapely import box
from sqlalchemy import func, select

from inventory.models import ImportBatch, RejectedFeature, Space

# A point inside Jinsong North, and a helper to draw rooms near it (metres → degrees).
LON0, LAT0 = 116.4655, 39.8795
DEG_X, DEG_Y = 1 / 85_300, 1 / 111_000


def room(dx_m: float, dy_m: float, w_m: float = 10, h_m: float = 10):
    x = LON0 + dx_m * DEG_X
    y = LAT0 + dy_m * DEG_Y
    return box(x, y, x + w_m * DEG_X, y + h_m * DEG_Y)


def frame(rows: list[dict], crs="EPSG:4326") -> gpd.GeoDataFrame:
    geoms = [r.pop("geometry") for r in rows]
    return gpd.GeoDataFrame(rows, geometry=geoms, crs=crs)


def rooms(n: int, **extra) -> gpd.GeoDataFrame:
    return frame(
        [
            {
                "编号": f"R-{i:03d}",
                "类型": "配套用房",
                "建筑面积": 100.0,
                "geometry": room(i * 20, 0),
                **extra,
            }
            for i in range(n)
        ]
    )


def write(gdf: gpd.GeoDataFrame, path, **kwargs):
    pyogrio.write_dataframe(gdf, path, **kwargs)
    return path


def validate_report(report, engine) -> None:
    """Nothing lost: every feature read is accounted for, in the report and in the store."""
    assert report.read == report.loaded + report.updated + report.unchanged + report.rejected
    rejected = [i for i in report.issues if i.status == "rejected"]
    assert len(rejected) == report.rejected
    if report.batch_id is None:
        return
    with engine.connect() as conn:
        batch = conn.execute(select(ImportBatch).where(ImportBatch.id == report.batch_id)).one()
        quarantined = conn.scalar(
            select(func.count()).where(RejectedFeature.batch_id == report.batch_id)
        )
    assert batch.read_count == report.read
    assert batch.rejected_count == report.rejected == quarantined


def count(engine, model=Space) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model))


def store_at_revision(url: str, revision: str):
    """Return an engine on a new store migrated only up to ``revision`` (to test upgrades)."""
    from alembic import command

    from inventory import store
    from inventory.backends import backend
    from inventory.db import connect

    engine = connect(url, create=True)
    cfg = store.alembic_config()
    with engine.begin() as conn:
        backend(conn).ensure_spatial_extension(conn)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return engine
