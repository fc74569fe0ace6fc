"""Everything the inventory knows, for QGIS and Excel: ``inventory export``."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from inventory import listing, outputs
from inventory.bundles import DEFAULT_MAX_GAP_M, bundles_in_store
from inventory.gaps import title_gaps
from inventory.listing import communities
from inventory.tenure import records


def export(
    engine: Engine,
    path: str | Path,
    *,
    community: str | None = None,
    max_gap_m: float = DEFAULT_MAX_GAP_M,
) -> list[tuple[str, Path, int]]:
    """Write spaces, title gaps (and totals), bundles (and members), communities and tenure.

    A ``.gpkg`` gets them all as layers of one file, an ``.xlsx`` as sheets of one
    workbook; ``.geojson`` and ``.csv`` get one file per layer. Returns (layer, file, rows) for each.

    Raises:
        InputError: the format is unknown.

    """
    spaces = listing.spaces(engine, community=community)
    gaps, totals = title_gaps(spaces)
    bundles, members = bundles_in_store(engine, max_gap_m, community=community, loaded=spaces)
    layers = {
        "spaces": spaces,
        "gaps": gaps,
        "gap_totals": totals,
        "bundles": bundles,
        "bundle_members": members,
        "communities": communities(engine, [community] if community else None),
        **records(engine, community),  # parties, rights, sources
    }
    return outputs.write_layers(path, None, layers)
