"""Spatial inventory of stock spaces (存量空间) in old residential communities.

The Python API an analyst uses in a notebook; every call returns plain data or a
GeoDataFrame (EPSG:4326)::

    import inventory as inv

    store = inv.connect("jinsong.sqlite", create=True)
    inv.init(store)
    inv.import_file(store, "sample_data/jinsong_north_community.shp", communities=True)
    inv.import_file(store, "sample_data/jinsong_north_spaces.shp")
    spaces = inv.spaces(store)                      # GeoDataFrame
    gaps, totals = inv.title_gaps_in_store(store)
    bundles, members = inv.bundles_in_store(store, 30)
    table = inv.capacity_in_store(store, ["kind"])
    result = inv.estimate_in_store(store, "jinsong_north")
    inv.map_from_store(store, "maps/jinsong.html")

Names are loaded on first use, so ``import inventory`` (and ``inventory --help``) stays
fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: Public name → the module that defines it.
_EXPORTS = {
    "connect": "inventory.db",
    "init": "inventory.store",
    "info": "inventory.store",
    "StoreInfo": "inventory.store",
    "import_file": "inventory.importer",
    "import_files": "inventory.importer",
    "ImportReport": "inventory.importer",
    "spaces": "inventory.listing",
    "rejects": "inventory.listing",
    "communities": "inventory.listing",
    "annotate": "inventory.gaps",
    "title_gaps": "inventory.gaps",
    "title_gaps_in_store": "inventory.gaps",
    "find_bundles": "inventory.bundles",
    "bundles_in_store": "inventory.bundles",
    "capacity": "inventory.capacity",
    "capacity_in_store": "inventory.capacity",
    "answer_in_store": "inventory.capacity",
    "hosts": "inventory.capacity",
    "load_scenario": "inventory.scenario",
    "estimate": "inventory.revenue",
    "estimate_in_store": "inventory.revenue",
    "compare": "inventory.revenue",
    "compare_in_store": "inventory.revenue",
    "RevenueResult": "inventory.revenue",
    "build_map": "inventory.maps",
    "map_from_store": "inventory.maps",
    "save_map": "inventory.maps",
    "export": "inventory.export",
    "write": "inventory.outputs",
    "InventoryError": "inventory.errors",
    "InputError": "inventory.errors",
    "ConfigurationError": "inventory.errors",
    "BackendUnavailableError": "inventory.errors",
    "SchemaError": "inventory.errors",
    "ScenarioError": "inventory.errors",
}
_RENAMED = {"save_map": "save"}

__all__ = [
    "__version__",
    "connect",
    "init",
    "info",
    "StoreInfo",
    "import_file",
    "import_files",
    "ImportReport",
    "spaces",
    "rejects",
    "communities",
    "annotate",
    "title_gaps",
    "title_gaps_in_store",
    "find_bundles",
    "bundles_in_store",
    "capacity",
    "capacity_in_store",
    "answer_in_store",
    "hosts",
    "load_scenario",
    "estimate",
    "estimate_in_store",
    "compare",
    "compare_in_store",
    "RevenueResult",
    "build_map",
    "map_from_store",
    "save_map",
    "export",
    "write",
    "InventoryError",
    "InputError",
    "ConfigurationError",
    "BackendUnavailableError",
    "SchemaError",
    "ScenarioError",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'inventory' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors
    from inventory.bundles import bundles_in_store, find_bundles
    from inventory.capacity import answer_in_store, capacity, capacity_in_store, hosts
    from inventory.db import connect
    from inventory.errors import (
        BackendUnavailableError,
        ConfigurationError,
        InputError,
        InventoryError,
        ScenarioError,
        SchemaError,
    )
    from inventory.export import export
    from inventory.gaps import annotate, title_gaps, title_gaps_in_store
    from inventory.importer import ImportReport, import_file, import_files
    from inventory.listing import communities, rejects, spaces
    from inventory.maps import build_map, map_from_store
    from inventory.maps import save as save_map
    from inventory.outputs import write
    from inventory.revenue import (
        RevenueResult,
        compare,
        compare_in_store,
        estimate,
        estimate_in_store,
    )
    from inventory.scenario import load_scenario
    from inventory.store import StoreInfo, info, init
