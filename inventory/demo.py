"""The main job, end to end on the embedded store: ``inventory demo``.

Creates a fresh SpatiaLite store, imports the Jinsong North sample survey as surveyors
deliver it (GBK shapefiles with Chinese field names in Gauss-Krüger coordinates),
and exports what the store then holds for QGIS and Excel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from inventory import listing, outputs, store
from inventory.db import connect
from inventory.importer import ImportReport, import_file

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"
DEMO_DB = Path("inventory-demo.sqlite")
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
    info: store.StoreInfo | None = None
    exports: list[Path] = field(default_factory=list)


def run(
    db: str | Path = DEMO_DB, out_dir: str | Path = "maps", sample_dir: str | Path = SAMPLE_DIR
) -> DemoResult:
    """Run the demo into the SpatiaLite file ``db`` (replaced if it exists); write to ``out_dir``."""
    db = Path(db)
    db.unlink(missing_ok=True)
    engine = connect(str(db), create=True)
    try:
        result = DemoResult(db=db, revision=store.init(engine))
        for name, is_community in SAMPLE_FILES:
            result.imports += import_file(engine, Path(sample_dir) / name, communities=is_community)
        result.info = store.info(engine)
        spaces = listing.spaces(engine)
        out = Path(out_dir)
        for suffix in ("gpkg", "csv"):
            result.exports.append(
                outputs.write(spaces, out / f"demo_spaces.{suffix}", layer="spaces")
            )
    finally:
        engine.dispose()
    return result
