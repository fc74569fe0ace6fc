"""The main job, end to end on the embedded store: ``inventory demo``.

Creates a fresh SpatiaLite store, imports the Jinsong North sample survey as surveyors
deliver it (GBK shapefiles with Chinese field names in Gauss-Krüger coordinates),
then finds the title gaps, the bundles of nearby small spaces, the capacity by kind and
tenure, the places that could host a 150 m² community canteen near the centre, and the
shipped Jinsong revenue scenario, and exports all of it for QGIS and Excel.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd

from inventory import listing, maps, outputs, revenue, store
from inventory.bundles import DEFAULT_MAX_GAP_M, find_bundles
from inventory.capacity import capacity, hosts
from inventory.db import connect
from inventory.defaults import DEMO_DB
from inventory.export import for_readers, styles
from inventory.gaps import title_gaps
from inventory.geopackage import add_styles
from inventory.importer import ImportReport, import_file
from inventory.pack import meeting_pack
from inventory.samples import JINSONG_CENTRE, write_jinsong_north
from inventory.scenario import load_scenario
from inventory.tenure import RightsReport, import_rights, records

#: The sample files in import order: boundaries first, so spaces find their community.
SAMPLE_FILES = (
    ("jinsong_north_community.shp", True),
    ("jinsong_north_spaces.shp", False),
    ("jinsong_north_parking_points.shp", False),
)


@dataclass
class DemoResult:
    """What the demo did, step by step, for the command line to show."""

    db: Path
    revision: str
    imports: list[ImportReport] = field(default_factory=list)
    rights: RightsReport | None = None
    info: store.StoreInfo | None = None
    gaps: gpd.GeoDataFrame | None = None
    gap_totals: pd.DataFrame | None = None
    bundles: gpd.GeoDataFrame | None = None
    capacity: pd.DataFrame | None = None
    hosts: gpd.GeoDataFrame | None = None
    revenue: revenue.RevenueResult | None = None
    plot: Path | None = None
    map_html: Path | None = None
    exports: list[Path] = field(default_factory=list)


def run(
    db: str | Path = DEMO_DB,
    out_dir: str | Path = "maps",
    sample_dir: str | Path | None = None,
    lang: str | None = None,
) -> DemoResult:
    """Run the demo into the SpatiaLite file ``db`` (replaced if it exists); write to ``out_dir``.

    The map, the meeting pack and the plot are in ``lang`` (the map and pack default to
    Chinese, the plot to both languages).

    ``sample_dir`` holds the sample survey's files; by default the committed generator
    writes them afresh into a temporary folder (the same files as ``sample_data/``), so
    an installed package needs no source checkout.
    """
    if sample_dir is None:
        with tempfile.TemporaryDirectory(prefix="inventory-sample-") as tmp:
            write_jinsong_north(tmp)
            return run(db, out_dir, tmp, lang)
    db = Path(db)
    for stale in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        stale.unlink(missing_ok=True)
    engine = connect(str(db), create=True)
    try:
        result = DemoResult(db=db, revision=store.init(engine))
        for name, is_community in SAMPLE_FILES:
            result.imports += import_file(engine, Path(sample_dir) / name, communities=is_community)
        result.rights = import_rights(engine, Path(sample_dir) / "jinsong_north_rights.csv")
        result.info = store.info(engine)
        spaces = listing.spaces(engine)
        floor_area = store.community_floor_area(engine, "劲松北社区")
        boundaries = listing.communities(engine)
        rights = records(engine)["rights"]
    finally:
        engine.dispose()
    result.gaps, result.gap_totals = title_gaps(spaces)
    result.bundles, members = find_bundles(spaces, DEFAULT_MAX_GAP_M)
    result.capacity = capacity(spaces, ["kind", "tenure_status"])
    # a community canteen of 150 m² within 300 m of the estate's centre
    result.hosts = hosts(spaces, 150, near=JINSONG_CENTRE, radius_m=300)
    result.revenue = revenue.estimate(
        spaces, load_scenario("jinsong_north"), managed_floor_area_m2=floor_area
    )
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    result.plot = revenue.plot(result.revenue, Path(out_dir) / "demo_cash_flow.png", lang)
    gpkg = Path(out_dir) / "demo_inventory.gpkg"
    gpkg.unlink(missing_ok=True)
    layers = {
        "spaces": for_readers(spaces, members),
        "gaps": for_readers(result.gaps),
        "gap_totals": result.gap_totals,
        "bundles": result.bundles,
        "bundle_members": members,
        "capacity": result.capacity,
        "canteen_hosts": result.hosts,
        "revenue_summary": result.revenue.summary(),
        "revenue_yearly": result.revenue.yearly(),
    }
    outputs.write_layers(gpkg, "gpkg", layers)
    add_styles(gpkg, styles())
    m = maps.build_map(
        spaces,
        communities=boundaries,
        bundles=result.bundles,
        members=members,
        revenue=maps.revenue_by_space(result.revenue),
        rights=rights,
        lang=lang or "zh",
    )
    result.map_html = maps.save(m, Path(out_dir) / "demo.html")
    csv = outputs.write(spaces, Path(out_dir) / "demo_spaces.csv")
    engine = connect(str(db))
    try:  # the planner's meeting pack, HTML (a PDF needs Chromium: inventory report … .pdf)
        pack = meeting_pack(
            engine,
            "劲松北社区",
            Path(out_dir) / "demo_pack.html",
            scenarios=["jinsong_north", "jinsong_master_lease"],
            lang=lang or "zh",
        ).path
    finally:
        engine.dispose()
    result.exports = [result.map_html, pack, gpkg, csv, result.plot]
    return result
