"""Everything the inventory knows, for QGIS and Excel: ``inventory export``."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
from sqlalchemy import Engine

from inventory import i18n, listing, outputs
from inventory.bundles import DEFAULT_MAX_GAP_M, bundles_in_store
from inventory.codes import CERTIFICATE_STATUS, CONDITION, LAND_TYPE, OWNER_TYPE, VACANCY
from inventory.gaps import STATUS_COLOURS, annotate, title_gaps
from inventory.geopackage import Category, Style, add_styles
from inventory.tenure import records

#: Code columns that get a Chinese label column beside them (``kind_zh`` is the listing's).
LABELLED = {
    "owner_type": OWNER_TYPE,
    "land_type": LAND_TYPE,
    "certificate_status": CERTIFICATE_STATUS,
    "vacancy": VACANCY,
    "condition": CONDITION,
}
#: Above this many distinct extra attributes, they stay one JSON column (``extra_attributes``).
MAX_EXTRA_COLUMNS = 100
BUNDLE_COLOUR = "#6a1b9a"
COMMUNITY_COLOUR = "#1565c0"


def export(
    engine: Engine,
    path: str | Path,
    *,
    community: str | None = None,
    max_gap_m: float = DEFAULT_MAX_GAP_M,
    lang: str | None = None,
) -> list[tuple[str, Path, int]]:
    """Write spaces, title gaps (and totals), bundles (and members), communities and tenure.

    A ``.gpkg`` gets them all as layers of one file, ready for QGIS: one geometry type
    per layer (room outlines in ``spaces``, parking points in ``spaces_points``), typed
    fields, and a default style per layer coloured by title status; an ``.xlsx`` gets them
    as sheets of one workbook; ``.geojson`` and ``.csv`` get one file per layer. Spaces
    carry their title status, bundle and the Chinese labels of their codes (``*_zh``), and
    the source file's own columns that map to no field. ``lang`` (zh, en) names the
    columns and sheets of a workbook or CSV, and the fields in QGIS, in that language.
    Returns (layer, file, rows) for each.

    Raises:
        InputError: the format or the language is unknown.

    """
    lang = i18n.language(lang)
    spaces = listing.spaces(engine, community=community, extras=True)
    gaps, totals = title_gaps(spaces)
    bundles, members = bundles_in_store(engine, max_gap_m, community=community, loaded=spaces)
    layers = {
        "spaces": for_readers(spaces, members),
        "gaps": for_readers(gaps),
        "gap_totals": totals,
        "bundles": bundles,
        "bundle_members": members,
        "communities": listing.communities(engine, [community] if community else None),
        **records(engine, community),  # parties, rights, sources
    }
    written = outputs.write_layers(path, None, layers, lang=lang)
    if outputs.format_for(path) == "gpkg":
        add_styles(Path(path), styles(lang))
    return written


def for_readers(spaces: gpd.GeoDataFrame, members: pd.DataFrame | None = None) -> gpd.GeoDataFrame:
    """Return spaces as a reader wants them: title status, bundle, labels, own columns.

    Adds ``title_status`` (the worst gap, or clean) and ``title_status_zh``, ``bundle_id``
    (from ``members``, a bundle membership table), a ``*_zh`` label beside each code
    column (:data:`LABELLED`), and the source's extra attributes as columns of their own
    names (suffixed ``(source)`` where a name is taken; one JSON column above
    :data:`MAX_EXTRA_COLUMNS` names).
    """
    out = annotate(spaces) if "gap_severity" not in spaces else spaces.copy()
    status = out["gap_severity"].fillna("clean")
    if "gap_severity" not in spaces:
        out = out.drop(columns=["gaps", "gap_severity", "gap_detail"])
    columns = list(out.columns)
    at = columns.index("certificate_status") + 1 if "certificate_status" in columns else 0
    for name in ("title_status_zh", "title_status"):
        columns.insert(at, name)
    out["title_status"] = status.to_numpy()
    out["title_status_zh"] = [i18n.title_status(s) for s in status]
    for name, codes in LABELLED.items():
        if name in out:
            out[f"{name}_zh"] = [
                codes.label(v, "zh") if isinstance(v, str) else None for v in out[name]
            ]
            columns.insert(columns.index(name) + 1, f"{name}_zh")
    if members is not None:
        which = {
            (c, r): b
            for b, r, c in members[["bundle_id", "survey_ref", "community"]].itertuples(index=False)
        }
        out["bundle_id"] = [
            which.get((c, r)) for c, r in zip(out["community"], out["survey_ref"], strict=True)
        ]
        columns.insert(columns.index("title_status_zh") + 1, "bundle_id")
    out = out[columns]
    if "extra_attributes" in out:
        out = _with_extras(out)
    return out


def _with_extras(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    extras = frame.pop("extra_attributes")
    keys: list[str] = []
    for attrs in extras:
        keys += [k for k in attrs or {} if k not in keys]
    if not keys:
        return frame
    if len(keys) > MAX_EXTRA_COLUMNS:
        frame.insert(len(frame.columns) - 1, "extra_attributes", extras.to_numpy())
        return frame
    for key in keys:
        name = key if key not in frame.columns else f"{key} (source)"
        frame.insert(len(frame.columns) - 1, name, [(a or {}).get(key) for a in extras])
    return frame


def styles(lang: str | None = None) -> dict[str, Style]:
    """Return the default QGIS style of each layer :func:`export` writes to a GeoPackage."""
    categories = tuple(
        Category(s, _label(i18n.TITLE_STATUS[s], lang), colour)
        for s, colour in STATUS_COLOURS.items()
    )
    aliases = {name: i18n.column(name, lang) for name in i18n.COLUMNS} if lang is not None else {}
    by_status = Style("title status", "title_status", categories, aliases=aliases)
    return {
        "spaces": by_status,
        "spaces_points": by_status,
        "gaps": by_status,
        "gaps_points": by_status,
        "bundles": Style("bundles", outline=BUNDLE_COLOUR, dashed=True, aliases=aliases),
        "communities": Style("communities", outline=COMMUNITY_COLOUR, aliases=aliases),
    }


def _label(pair: tuple[str, str], lang: str | None) -> str:
    return pair[0] if lang == "zh" else pair[1] if lang == "en" else f"{pair[0]} / {pair[1]}"
