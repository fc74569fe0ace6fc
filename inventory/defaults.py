"""Defaults shared by the library and the command line (no heavy imports: ``--help`` is fast)."""

from pathlib import Path

#: Walking-scale bundle gap: two rooms 30 m apart can share staff and a sign.
DEFAULT_MAX_GAP_M = 30.0
#: What capacity can be grouped by.
CAPACITY_GROUPS = (
    "community",
    "district",
    "street_office",
    "kind",
    "tenure_status",
    "vacancy",
    "bundle",
)
#: The demo's own SpatiaLite file: ``./inventory.sqlite`` is never touched by it.
DEMO_DB = Path("inventory-demo.sqlite")
