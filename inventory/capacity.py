"""Capacity: how much usable area of each kind and tenure is where a need is, and who can host it.

Distances from a point are exact: the spaces are projected to an azimuthal equidistant
projection centred on the point, in which every distance from the centre is the
geodesic distance. On PostGIS, :func:`capacity_near` answers in SQL with ``ST_DWithin``
on geography near the radius, behind the spatial index — the same answer.
"""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Engine, func, select, true

from inventory import listing
from inventory.backends import backend
from inventory.bundles import find_bundles
from inventory.codes import NOT_MICRO_SPACE
from inventory.defaults import CAPACITY_GROUPS, DEFAULT_MAX_GAP_M
from inventory.errors import InputError
from inventory.gaps import annotate
from inventory.geodesy import near_bounds, reproject, to_local_metres
from inventory.importer.sources import read
from inventory.models import Community, Space
from inventory.store import require_community, require_schema


def parse_point(text: str) -> tuple[float, float]:
    """Parse "LON,LAT" (WGS84 degrees).

    Raises:
        InputError: not two numbers, or not a longitude/latitude pair.

    """
    try:
        lon, lat = (float(v) for v in text.replace("，", ",").split(","))
    except ValueError:
        raise InputError(
            f"`near={text!r}` must be LON,LAT in degrees, e.g. `near='116.4655,39.8795'`."
        ) from None
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InputError(f"`near={text!r}` is not a longitude,latitude pair (is it LAT,LON?).")
    return lon, lat


def distances_m(geoms, lon: float, lat: float) -> np.ndarray:
    """Return the geodesic distance in metres from (lon, lat) to each geometry (0 inside)."""
    metric = to_local_metres(np.asarray(geoms, dtype=object), lon, lat)
    return shapely.distance(metric, shapely.Point(0, 0))


def filter_spaces(
    spaces: gpd.GeoDataFrame,
    *,
    near: tuple[float, float] | None = None,
    radius_m: float | None = None,
    within: str | Path | None = None,
    community: str | None = None,
) -> gpd.GeoDataFrame:
    """Keep the spaces near a point, inside polygons, and/or of one community.

    ``near`` with ``radius_m`` keeps spaces within that many metres (and adds
    ``distance_m``); ``within`` is any file the importer reads, holding polygons.

    Raises:
        InputError: near without radius (or the reverse), or an unreadable polygon file.

    """
    out = spaces
    if community:
        out = out[out["community"] == community]
    if (near is None) != (radius_m is None):
        raise InputError("`near` and `radius_m` go together: a point and a distance in metres.")
    if near is not None:
        out = out.assign(distance_m=distances_m(out.geometry.values, *near).round(1))
        out = out[out["distance_m"] <= radius_m]
    if within is not None:
        area = read(within)
        polygons = area.geometries[pd.notna(area.geometries)]
        if area.crs is not None and area.crs.to_epsg() != 4326:
            polygons = reproject(polygons, area.crs, "EPSG:4326")
        out = out[shapely.intersects(out.geometry.values, shapely.union_all(polygons))]
    return out


def _check_groups(by) -> None:
    unknown = [g for g in by if g not in CAPACITY_GROUPS]
    if unknown:
        raise InputError(
            f"`by={','.join(unknown)!r}`: group by one or more of {', '.join(CAPACITY_GROUPS)}."
        )


#: What capacity adds up: areas (m²), and counts of parking spaces and of units (flats,
#: shops, charging posts, lifts, advertising spots).
_SUMS = ("footprint_area_m2", "floor_area_m2", "usable_area_m2", "parking_spaces", "units")
_COUNTS = ("parking_spaces", "units")


def capacity(
    spaces: gpd.GeoDataFrame,
    by: list[str] | tuple[str, ...] = ("community", "kind"),
    max_gap_m: float = DEFAULT_MAX_GAP_M,
) -> pd.DataFrame:
    """Return counts, areas and parking spaces of ``spaces`` grouped by ``by``.

    ``tenure_status`` is the worst title-gap severity or "clean"; ``bundle`` is the
    bundle a space belongs to at ``max_gap_m`` (or "-" for a lone space).

    Raises:
        InputError: an unknown grouping.

    """
    _check_groups(by)
    frame = spaces.copy()
    if "tenure_status" in by:  # the title-gap rules only when asked: near-queries stay quick
        frame["tenure_status"] = annotate(spaces)["gap_severity"].fillna("clean")
    if "bundle" in by:
        _, members = find_bundles(spaces, max_gap_m, kinds=list(set(spaces["kind"])) or None)
        keys = zip(members["community"], members["survey_ref"], strict=True)
        lookup = dict(zip(keys, members["bundle_id"], strict=True))
        own = zip(frame["community"], frame["survey_ref"], strict=True)
        frame["bundle"] = [lookup.get(k, "-") for k in own]
    for col in _SUMS:
        frame[col] = frame[col].astype(float).fillna(0.0)
    grouped = (
        frame.assign(spaces=1)
        .groupby(list(by), as_index=False, dropna=False)[["spaces", *_SUMS]]
        .sum()
    )
    for col in _COUNTS:
        grouped[col] = grouped[col].astype(int)
    return grouped.round(1)


#: Groupings that are columns of the store, so that SQL can group by them.
STORE_GROUPS = ("community", "district", "street_office", "kind", "vacancy")


def capacity_near(
    engine: Engine,
    near: tuple[float, float],
    radius_m: float,
    by: list[str] | tuple[str, ...] = ("kind",),
    *,
    community: str | None = None,
    max_gap_m: float = DEFAULT_MAX_GAP_M,
) -> pd.DataFrame:
    """Return :func:`capacity` of the spaces in the store within ``radius_m`` of ``near``.

    See :func:`capacity_in_store`.
    """
    return capacity_in_store(
        engine, by, near=near, radius_m=radius_m, community=community, max_gap_m=max_gap_m
    )


def capacity_in_store(
    engine: Engine,
    by: list[str] | tuple[str, ...] = ("kind",),
    *,
    near: tuple[float, float] | None = None,
    radius_m: float | None = None,
    community: str | None = None,
    max_gap_m: float = DEFAULT_MAX_GAP_M,
) -> pd.DataFrame:
    """Return :func:`capacity` of the spaces in the store (of one community, or near a point).

    When every grouping is a column of the store (``STORE_GROUPS``), one SQL aggregate
    answers: on either backend for the whole store or a community, and on PostGIS near a
    point too, through the spatial index and an exact geodesic distance, so that an
    analyst's "what is within 500 m of here" stays interactive on a city of a million
    spaces. Otherwise (groupings by tenure status or bundle need the title-gap rules or
    the bundles; near a point on the embedded store) the spaces are loaded — near a point
    through the spatial index — and measured and grouped in Python: the same answer.

    Raises:
        InputError: an unknown grouping, near without radius (or the reverse), or a radius
            that is not positive.

    """
    _check_groups(by)
    if (near is None) != (radius_m is None):
        raise InputError("`near` and `radius_m` go together: a point and a distance in metres.")
    table = Space.__table__
    where = true()
    if near is not None:
        if not (radius_m > 0 and math.isfinite(radius_m)):
            raise InputError(f"`radius_m={radius_m!r}`: give a distance in metres greater than 0.")
        where = backend(engine).within_metres(table, table.c.geom, near[0], near[1], radius_m)
    if where is None or not set(by) <= set(STORE_GROUPS):
        bounds = near_bounds(near[0], near[1], radius_m) if near is not None else None
        spaces = listing.spaces(engine, bounds=bounds, community=community)
        spaces = filter_spaces(spaces, near=near, radius_m=radius_m, community=community)
        return capacity(spaces, by, max_gap_m)
    require_schema(engine)
    require_community(engine, community)
    columns = {
        "community": Community.name,
        "district": Community.district,
        "street_office": Community.street_office,
        "kind": Space.kind,
        "vacancy": Space.vacancy,
    }
    stmt = (
        select(
            *[columns[g].label(g) for g in by],
            func.count().label("spaces"),
            *[func.sum(func.coalesce(getattr(Space, c), 0)).label(c) for c in _SUMS],
        )
        .where(where, Space.retired_at.is_(None))  # retired spaces leave every analysis
        .group_by(*[columns[g] for g in by])
        # in the order capacity() gives
        .order_by(*[backend(engine).codepoint_order(columns[g]) for g in by])
    )
    if community or any(columns[g].class_ is Community for g in by):
        # joined only when asked about: near a point the spatial index alone then leads
        stmt = stmt.join(Community, Space.community_id == Community.id)
    if community:
        stmt = stmt.where(Community.name == community)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    # the same columns, types and rounding as capacity()
    data = list(zip(*rows, strict=True)) if rows else [()] * (len(by) + 1 + len(_SUMS))
    frame = {g: list(values) for g, values in zip(by, data, strict=False)}
    frame["spaces"] = np.asarray(data[len(by)], dtype="int64")
    for col, values in zip(_SUMS, data[len(by) + 1 :], strict=True):
        frame[col] = np.round(np.asarray(values, dtype=float), 1)
    for col in _COUNTS:
        frame[col] = frame[col].astype(int)
    return pd.DataFrame(frame)


def hosts(
    spaces: gpd.GeoDataFrame,
    need_area_m2: float,
    *,
    near: tuple[float, float] | None = None,
    radius_m: float | None = None,
    kinds: list[str] | None = None,
    max_gap_m: float = DEFAULT_MAX_GAP_M,
    allow_blocking: bool = False,
) -> gpd.GeoDataFrame:
    """List the spaces and bundles that can host a need of ``need_area_m2``, best first.

    Best first means: operable now (clean or transitional title before minor before
    blocking), then nearest (with ``near``), then the least area left over.

    Raises:
        InputError: the need's area is not positive.

    """
    if not (need_area_m2 > 0 and math.isfinite(need_area_m2)):
        raise InputError(
            f"`need_area_m2={need_area_m2}`: give the area the need takes, in m², greater than 0."
        )
    single = annotate(spaces)
    # parking, flats, shops, parcels and counted facilities host a need only when asked for
    single = single[single["kind"].isin(kinds) if kinds else ~single["kind"].isin(NOT_MICRO_SPACE)]
    area = single["usable_area_m2"].astype(float).fillna(single["footprint_area_m2"].astype(float))
    rows = gpd.GeoDataFrame(
        {
            "host": "space",
            "id": single["survey_ref"],
            "community": single["community"],
            "kinds": single["kind"],
            "members": single["survey_ref"],
            "usable_area_m2": area.round(1),
            "title": single["gap_severity"].fillna("clean"),
        },
        geometry=single.geometry.values,
        crs=4326,
    )
    if kinds:
        rows = rows[rows["kinds"].isin(kinds)]
    bundles, _ = find_bundles(spaces, max_gap_m, kinds=kinds)
    if len(bundles):
        worst = np.where(
            bundles["blocking"] > 0,
            "blocking",
            np.where(
                bundles["transitional"] > 0,
                "transitional",
                np.where(bundles["minor"] > 0, "minor", "clean"),
            ),
        )
        rows = pd.concat(
            [
                rows,
                gpd.GeoDataFrame(
                    {
                        "host": "bundle",
                        "id": bundles["bundle_id"],
                        "community": bundles["communities"],
                        "kinds": bundles["kinds"],
                        "members": bundles["members"],
                        "usable_area_m2": bundles["usable_area_m2"],
                        "title": worst,
                    },
                    geometry=bundles.geometry.values,
                    crs=4326,
                ),
            ],
            ignore_index=True,
        )
    rows = rows[rows["usable_area_m2"] >= need_area_m2]
    if not allow_blocking:
        rows = rows[rows["title"] != "blocking"]
    if (near is None) != (radius_m is None):
        raise InputError("`near` and `radius_m` go together: a point and a distance in metres.")
    rows = rows.copy()
    rows["distance_m"] = distances_m(rows.geometry.values, *near).round(1) if near else np.nan
    if near:
        rows = rows[rows["distance_m"] <= radius_m]
    rank = {"clean": 0, "transitional": 1, "minor": 2, "blocking": 3}
    rows["_rank"] = rows["title"].map(rank)
    rows["spare_m2"] = (rows["usable_area_m2"] - need_area_m2).round(1)
    rows = rows.sort_values(["_rank", "distance_m", "spare_m2", "id"], na_position="last")
    return gpd.GeoDataFrame(
        rows.drop(columns="_rank").reset_index(drop=True), geometry="geometry", crs=4326
    )


def answer_in_store(
    engine: Engine,
    by: list[str] | tuple[str, ...] = ("community", "kind"),
    *,
    near: tuple[float, float] | str | None = None,
    radius_m: float | None = None,
    within: str | Path | None = None,
    community: str | None = None,
    need_area_m2: float | None = None,
    kinds: list[str] | None = None,
    max_gap_m: float = DEFAULT_MAX_GAP_M,
) -> tuple[str, pd.DataFrame]:
    """Answer a capacity question about the store: ``("capacity", table)`` or ``("hosts", …)``.

    With ``need_area_m2``, the spaces and bundles that can host a need of that size,
    best first (:func:`hosts`); otherwise capacity grouped ``by`` (:func:`capacity`).
    ``near`` is (lon, lat) or "LON,LAT"; ``within`` a file of polygons. Questions the
    store can answer in SQL are (:func:`capacity_in_store`); for the others only the
    spaces in the box around ``near`` are loaded.

    Raises:
        InputError: an unknown grouping, a bad point or radius, an unreadable polygon
            file, or a need that is not positive.

    """
    point = parse_point(near) if isinstance(near, str) else near
    groups = by.split(",") if isinstance(by, str) else list(by)
    groups = [g.strip() for g in groups if g.strip()]
    if within is None and need_area_m2 is None:
        return "capacity", capacity_in_store(
            engine, groups, near=point, radius_m=radius_m, community=community, max_gap_m=max_gap_m
        )
    # the spatial index narrows the load to the box around the point; exact below
    # (filter_spaces refuses a point without a radius, or the reverse)
    bounds = near_bounds(*point, radius_m) if point and radius_m else None
    spaces = filter_spaces(
        listing.spaces(engine, bounds=bounds),
        near=point,
        radius_m=radius_m,
        within=within,
        community=community,
    )
    if need_area_m2 is not None:
        return "hosts", hosts(
            spaces, need_area_m2, near=point, radius_m=radius_m, kinds=kinds, max_gap_m=max_gap_m
        )
    return "capacity", capacity(spaces, groups, max_gap_m)
