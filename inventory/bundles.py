"""Bundles (聚少成多): small scattered spaces close enough to be run as one unit.

Spaces whose outlines lie within ``max_gap_m`` of each other are linked, and a bundle is
a connected group of links. In memory this is one STRtree ``dwithin`` query and scipy's
connected components; on PostGIS, ``ST_ClusterDBSCAN(..., minpoints := 1)`` partitioned
by community — never a comparison of every pair. Distances are measured in metres: per
community, degrees scaled by the ellipsoid's radii of curvature at the community's mean
latitude; with ``across_communities``, in the UTM zone of the spaces' centre (one frame:
no partition edge for a bundle to straddle; distances within 0.1% inside the zone).
Bundles are reproducible: the same spaces and options give the same bundles and ids, on
either backend.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import TypedDict, Unpack

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Double,
    Engine,
    Select,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.sql.expression import cast

from inventory import listing
from inventory._gc import gc_paused
from inventory.backends import backend
from inventory.codes import KIND, NOT_MICRO_SPACE
from inventory.defaults import DEFAULT_MAX_GAP_M
from inventory.errors import InputError
from inventory.gaps import (
    permits_to_join,
    severity_sql,
    with_permit_end,
    with_permits,
    worst_severity,
)
from inventory.geodesy import WGS84_A, WGS84_E2, metres_per_degree, reproject, utm_epsg
from inventory.models import Community, Space
from inventory.store import require_community, require_district, require_schema

#: Partitions are laid side by side this far apart (m) so one index serves them all.
_PARTITION_OFFSET_M = 1e7
#: The sweep gives way to an R-tree when its x-overlaps would pass this many per space
#: (a long row of spaces with the same x; one frame for a whole city): memory stays
#: within a few hundred bytes per space.
_SWEEP_PAIRS_PER_SPACE = 16

_AREA_COLUMNS = (
    "footprint_area_m2",
    "floor_area_m2",
    "usable_area_m2",
    "smallest_m2",
    "largest_m2",
)
_STATUS_COLUMNS = ("clean", "transitional", "minor", "blocking")
BUNDLE_COLUMNS = [
    "bundle_id",
    "communities",
    "members",
    "member_count",
    "kinds",
    "footprint_area_m2",
    "floor_area_m2",
    "usable_area_m2",
    "smallest_m2",
    "largest_m2",
    "clean",
    "transitional",
    "minor",
    "blocking",
    "geometry",
]


def kind_codes(kinds: list[str] | None) -> list[str]:
    """Return the kind codes that may join bundles: ``kinds`` (codes or aliases) or the stock rooms.

    Parking capacity is counted in spaces, not m², so it joins only when asked for; so do
    the renewal models' other resources (dwellings, shops, land parcels, counted
    facilities: :data:`~inventory.codes.NOT_MICRO_SPACE`).

    Raises:
        InputError: a kind is not known.

    """
    codes = KIND.match_all(kinds, "kinds")
    return codes or [k for k in KIND.codes if k not in NOT_MICRO_SPACE]


def select_spaces(
    spaces: gpd.GeoDataFrame,
    kinds: list[str] | None = None,
    min_area_m2: float | None = None,
    exclude_blocking: bool = False,
    today: date | None = None,
) -> gpd.GeoDataFrame:
    """Return the spaces that may join bundles, with only what a bundle sums up.

    Columns: ``community``, ``survey_ref``, ``kind``, ``footprint_area_m2`` and
    ``floor_area_m2`` (missing: 0), ``area_m2`` (usable, else footprint area),
    ``severity`` (the worst title gap, or "clean") and the geometry.

    Raises:
        InputError: a kind is not known.

    """
    chosen = spaces[spaces["kind"].isin(kind_codes(kinds))]
    footprint = chosen["footprint_area_m2"].astype(float)
    out = gpd.GeoDataFrame(
        {
            "community": chosen["community"].to_numpy(),
            "survey_ref": chosen["survey_ref"].to_numpy(),
            "kind": chosen["kind"].to_numpy(),
            "footprint_area_m2": footprint.fillna(0.0).to_numpy(),
            "floor_area_m2": chosen["floor_area_m2"].astype(float).fillna(0.0).to_numpy(),
            "area_m2": chosen["usable_area_m2"].astype(float).fillna(footprint).to_numpy(),
            "severity": worst_severity(chosen, today),
        },
        geometry=chosen.geometry.values,
        crs=spaces.crs,
    )
    if min_area_m2:
        out = out[out["area_m2"] >= min_area_m2]
    if exclude_blocking:
        out = out[out["severity"] != "blocking"]
    return out


def _check_sizes(max_gap_m: float, min_area_m2: float | None) -> None:
    if not math.isfinite(max_gap_m) or max_gap_m < 0:
        raise InputError(f"`max_gap_m={max_gap_m:g}` must be 0 m or more.")
    if min_area_m2 is not None and (not math.isfinite(min_area_m2) or min_area_m2 < 0):
        raise InputError(f"`min_area_m2={min_area_m2:g}` must be 0 m² or more.")


def _labels_in_memory(chosen: gpd.GeoDataFrame, max_gap_m: float, across: bool) -> np.ndarray:
    geoms = chosen.geometry.values
    box = shapely.bounds(geoms)
    # the boxes' middles: as cheap in SQL as here
    lon, lat = (box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2
    if across:
        # one frame for all: no partition edge for a bundle to straddle
        scaled = reproject(geoms, "EPSG:4326", f"EPSG:{utm_epsg(lon.mean(), lat.mean())}")
    else:
        part, _ = pd.factorize(chosen["community"].to_numpy())
        mean_lat = np.bincount(part, weights=lat) / np.bincount(part)
        k_lon, k_lat = metres_per_degree(mean_lat)
        coords, owner = shapely.get_coordinates(geoms, return_index=True)
        p = part[owner]
        metric = np.column_stack(
            (coords[:, 0] * k_lon[p] + p * _PARTITION_OFFSET_M, coords[:, 1] * k_lat[p])
        )
        scaled = shapely.set_coordinates(geoms.copy(), metric)
    # candidates: pairs whose boxes come within the gap, each pair once; then one
    # vectorised exact test on them (the same pairs as an R-tree's dwithin predicate)
    left, right = _box_pairs(shapely.bounds(scaled), max_gap_m)
    near = shapely.dwithin(scaled[left], scaled[right], max_gap_m)
    left, right = left[near], right[near]
    from scipy.sparse import coo_matrix  # the in-memory path only: not on each start-up
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(len(geoms), len(geoms)))
    return connected_components(graph, directed=False)[1]


def _box_pairs(bounds: np.ndarray, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Return each pair (i, j) of boxes that come within ``gap`` of each other, once.

    By a sort-and-sweep (:func:`_sweep_pairs`) — no geometry is built, ~5x faster than
    querying an STRtree with grown boxes — or, where the sweep would weigh too many
    pairs (many spaces in a north-south row, or one frame for a whole city), by an
    STRtree.
    """
    found = _sweep_pairs(bounds, gap, _SWEEP_PAIRS_PER_SPACE * len(bounds))
    return _tree_box_pairs(bounds, gap) if found is None else found


def _sweep_pairs(bounds: np.ndarray, gap: float, most: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Pairs of boxes within ``gap``, by a sort-and-sweep on x; None above ``most`` to weigh.

    Boxes sorted by their left edge; each is paired with the boxes whose left edge lies
    before its right edge plus the gap; then the y-overlap is tested on those pairs at once.
    """
    n = len(bounds)
    order = np.argsort(bounds[:, 0], kind="stable")
    box = bounds[order]
    last = np.searchsorted(box[:, 0], box[:, 2] + gap, side="right")
    count = np.maximum(last - np.arange(n) - 1, 0)
    total = int(count.sum())
    if total > most:
        return None
    left = np.repeat(np.arange(n), count)
    right = left + 1 + np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    y_overlap = (box[right, 1] <= box[left, 3] + gap) & (box[left, 1] <= box[right, 3] + gap)
    return order[left[y_overlap]], order[right[y_overlap]]


def _tree_box_pairs(bounds: np.ndarray, gap: float) -> tuple[np.ndarray, np.ndarray]:
    b, g = bounds, gap
    left, right = shapely.STRtree(shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3])).query(
        shapely.box(b[:, 0] - g, b[:, 1] - g, b[:, 2] + g, b[:, 3] + g)
    )
    once = left < right
    return left[once], right[once]


@gc_paused()
def find_bundles(
    spaces: gpd.GeoDataFrame,
    max_gap_m: float = DEFAULT_MAX_GAP_M,
    *,
    kinds: list[str] | None = None,
    min_area_m2: float | None = None,
    exclude_blocking: bool = False,
    across_communities: bool = False,
    min_members: int = 2,
    today: date | None = None,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Group spaces into bundles; return (bundles, membership).

    Args:
        spaces: spaces as returned by :func:`inventory.listing.spaces` (EPSG:4326).
        max_gap_m: largest gap in metres between two outlines of one bundle.
        kinds: kinds that may join (codes or aliases); default all but parking.
        min_area_m2: leave out spaces smaller than this (usable, else footprint area).
        exclude_blocking: leave out spaces with a blocking title gap.
        across_communities: pool spaces of neighbouring communities (片区统筹).
        min_members: smallest bundle reported (2: a lone space is not a bundle).
        today: the date title gaps are judged on (operating rights); default today.

    Returns:
        bundles: one row per bundle — ``bundle_id``, ``communities``, ``members``,
        ``member_count``, ``kinds``, total footprint / floor / usable area, smallest and
        largest member, the title-status mix (clean / transitional / minor / blocking
        counts), and the convex hull of its members as geometry;
        membership: ``bundle_id``, ``survey_ref``, ``community`` for every member.

    Raises:
        InputError: max_gap_m or min_area_m2 is negative, or a kind is unknown.

    """
    _check_sizes(max_gap_m, min_area_m2)
    chosen = select_spaces(spaces, kinds, min_area_m2, exclude_blocking, today)
    if not _in_order(chosen["community"].to_numpy(), chosen["survey_ref"].to_numpy()):
        chosen = chosen.sort_values(["community", "survey_ref"])
    chosen = chosen.reset_index(drop=True)
    if len(chosen) == 0:
        return _empty()
    labels = _labels_in_memory(chosen, max_gap_m, across_communities)
    kept = np.flatnonzero(np.bincount(labels)[labels] >= min_members)
    if len(kept) == 0:
        return _empty()
    # number bundles by their first member in (community, survey_ref) order: rows are
    # sorted that way, so the first appearance of each label gives the order
    _, first, inverse = np.unique(labels[kept], return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    codes = rank[inverse]
    order = kept[np.argsort(codes, kind="stable")]  # rows by bundle, in row order inside
    codes = np.sort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes) != 0])
    ids = np.array([f"B{i:04d}" for i in range(1, len(starts) + 1)], dtype=object)

    def column(name: str) -> np.ndarray:
        return chosen[name].to_numpy()[order]

    def listed(name: str) -> list[str]:
        return [", ".join(p) for p in np.split(column(name), starts[1:])]

    area = column("area_m2").astype(float)
    severity = column("severity")
    table = pd.DataFrame(
        {
            "bundle_id": ids,
            "communities": _distinct(column("community"), starts),
            "members": listed("survey_ref"),
            "member_count": np.diff(np.r_[starts, len(codes)]),
            "kinds": _distinct(column("kind"), starts),
            "footprint_area_m2": _total(column("footprint_area_m2"), starts),
            "floor_area_m2": _total(column("floor_area_m2"), starts),
            "usable_area_m2": _total(area, starts),
            "smallest_m2": np.fmin.reduceat(area, starts),  # fmin/fmax pass over NaN
            "largest_m2": np.fmax.reduceat(area, starts),
            **{
                status: np.add.reduceat((severity == status).astype(np.int64), starts)
                for status in _STATUS_COLUMNS
            },
        }
    ).round({c: 1 for c in _AREA_COLUMNS})
    # one collection of its members per bundle, then its convex hull
    hulls = shapely.convex_hull(
        shapely.geometrycollections(chosen.geometry.values[order], indices=codes)
    )
    bundles = gpd.GeoDataFrame(table, geometry=hulls, crs=4326)[BUNDLE_COLUMNS]
    membership = pd.DataFrame(
        {
            "bundle_id": ids[codes],
            "survey_ref": column("survey_ref"),
            "community": column("community"),
        }
    )
    return bundles, membership


class BundleOptions(TypedDict, total=False):
    """The options of :func:`find_bundles` that :func:`bundles_in_store` takes as well."""

    kinds: list[str] | None
    min_area_m2: float | None
    exclude_blocking: bool
    across_communities: bool
    min_members: int
    today: date | None


def bundles_in_store(
    engine: Engine,
    max_gap_m: float = DEFAULT_MAX_GAP_M,
    *,
    community: str | None = None,
    loaded: gpd.GeoDataFrame | None = None,
    district: str | None = None,
    **options: Unpack[BundleOptions],
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Group the spaces of the store (of one ``community``, or all) into bundles.

    ``district`` keeps the spaces of the communities in that district.

    ``options`` are :func:`find_bundles`'s (kinds, min_area_m2, exclude_blocking,
    across_communities, min_members, today), with the same defaults.
    The same bundles as :func:`find_bundles` on the loaded spaces. On PostGIS the work
    stays in the database: the title-gap rules (:func:`inventory.gaps.severity_sql`), the
    clustering, the summaries and the hulls, and only the bundles come back. On the
    embedded store the spaces are loaded (or ``loaded``, the same spaces already read by
    the caller, is used) and bundled in memory.

    Raises:
        InputError: max_gap_m or min_area_m2 is negative, or a kind is unknown.

    """
    unknown = set(options) - set(BundleOptions.__annotations__)
    if unknown:
        raise TypeError(f"bundles_in_store() got unexpected options: {', '.join(sorted(unknown))}")
    min_area_m2 = options.get("min_area_m2")
    today = options.get("today")
    _check_sizes(max_gap_m, min_area_m2)
    codes = kind_codes(options.get("kinds"))
    space = Space.__table__.c
    area = func.coalesce(space.usable_area_m2, space.footprint_area_m2)
    permits = permits_to_join(not (community or district))
    severity = severity_sql(with_permit_end(space, permits), today)
    stmt = candidates_sql(codes, severity, permits=permits)
    if community:
        stmt = stmt.where(Community.name == community)
    if district:
        stmt = stmt.where(Community.district == district)
    if min_area_m2:
        stmt = stmt.where(area >= min_area_m2)
    if options.get("exclude_blocking"):
        stmt = stmt.where(func.coalesce(severity, "") != "blocking")
    require_schema(engine)
    require_community(engine, community)
    require_district(engine, district)
    rows = None
    db = backend(engine)
    if db.clusters_in_sql:
        across = options.get("across_communities", False)
        # communities are clustered apart: a store's share each for the server's cores
        parts = 1 if across or community else QUERY_PARTS
        with db.snapshot_connections(engine, parts) as conns:

            def part(k: int) -> list:
                chosen = (
                    stmt if len(conns) == 1 else stmt.where(space.community_id % len(conns) == k)
                )
                return _clusters_in_postgis(
                    conns[k],
                    chosen.subquery("chosen"),
                    max_gap_m,
                    across,
                    options.get("min_members", 2),
                    codes,
                )

            with ThreadPoolExecutor(len(conns)) as pool:
                rows = [row for found in pool.map(part, range(len(conns))) for row in found]
    in_memory = {**options, "max_gap_m": max_gap_m, "kinds": codes}
    found = None if rows is None else _from_rows(rows, codes)
    if found is None:
        # the embedded store, or a community name or survey reference holding the
        # separator of the member lists: bundle the spaces in memory
        spaces = (
            listing.spaces(engine, community=community, district=district)
            if loaded is None
            else loaded
        )
        return find_bundles(spaces, **in_memory)
    return found


def candidates_sql(
    codes: list[str], severity: ColumnElement, *extra: ColumnElement, permits=None
) -> Select:
    """Return the live spaces of the ``codes`` kinds that may join bundles, as SQL.

    Columns: ``community_id``, ``community``, ``survey_ref``, ``kind``, the areas
    (``area_m2`` is the usable area, else the footprint), ``severity`` (the SQL of the
    worst gap) and ``geom``, then ``extra``. ``permits``
    (:func:`inventory.gaps.permits_to_join`) is outer-joined when ``severity`` reads it.
    """
    space = Space.__table__.c
    area = func.coalesce(space.usable_area_m2, space.footprint_area_m2)
    stmt = (
        select(
            space.community_id,
            Community.name.label("community"),
            space.survey_ref,
            space.kind,
            space.footprint_area_m2,
            space.floor_area_m2,
            area.label("area_m2"),
            severity.label("severity"),
            space.geom,
            *extra,
        )
        .join(Community, space.community_id == Community.id)
        .where(space.kind.in_(codes), space.retired_at.is_(None))
    )
    return with_permits(stmt, space.id, permits)


def labels_by_community_sql(chosen, gap_m: float):
    """Return ``chosen`` (a subquery of :func:`candidates_sql`) with its cluster labels.

    Adds ``part`` (the community) and ``label``: ``ST_ClusterDBSCAN(..., minpoints := 1)``
    within ``gap_m`` metres over each community scaled to metres around its mean latitude
    (the radii of curvature of :func:`inventory.geodesy.metres_per_degree`), as the
    in-memory path measures.
    """
    g = chosen.c.geom
    # a window over the same partition as the clustering: one sort serves both
    cy = (func.ST_YMin(g) + func.ST_YMax(g)) / 2.0
    mean = func.avg(cy).over(partition_by=chosen.c.community_id)
    parted = select(
        chosen,
        chosen.c.community_id.label("part"),
        func.radians(mean, type_=Double).label("lat"),
    ).subquery("parted")
    sin, cos = func.sin(parted.c.lat, type_=Double), func.cos(parted.c.lat, type_=Double)
    w = func.sqrt(1 - WGS84_E2 * sin * sin, type_=Double)  # typed: no numeric arithmetic
    per_radian = float(np.pi / 180 * WGS84_A)
    metric = func.ST_Scale(
        parted.c.geom, per_radian / w * cos, per_radian * (1 - WGS84_E2) / (w * w * w)
    )
    framed = select(parted, metric.label("metric")).subquery("framed")
    return _labelled(framed, gap_m)


def _labelled(framed, gap_m: float):
    return select(
        *(col for col in framed.c if col.name not in ("metric", "lat")),
        func.ST_ClusterDBSCAN(framed.c.metric, float(gap_m), 1)
        .over(partition_by=framed.c.part)
        .label("label"),
    ).subquery("labelled")


#: How many parts of the store :func:`bundles_in_store` clusters at once on PostGIS (one
#: connection each, one snapshot; at most 4).
QUERY_PARTS = max(1, min(4, os.cpu_count() or 1))

#: Separator of the member lists :func:`_clusters_in_postgis` returns (ASCII RS).
SEPARATOR = "\x1e"


def _clusters_in_postgis(
    conn: Connection, chosen, gap_m: float, across: bool, min_members: int, kind_codes: list[str]
) -> list:
    """Return one row per bundle of the ``chosen`` spaces, clustered by PostGIS.

    ``chosen`` is a subquery with ``community_id``, ``community``, ``survey_ref``,
    ``kind``, ``footprint_area_m2``, ``floor_area_m2``, ``area_m2``, ``severity`` and
    ``geom``. Links come from ``ST_ClusterDBSCAN(..., minpoints := 1)`` over each
    community scaled to metres around its mean latitude with the radii of curvature of
    :func:`inventory.geodesy.metres_per_degree`, or with ``across`` over all the spaces
    in the UTM zone of their centre (:func:`inventory.geodesy.utm_epsg`), as the
    in-memory path does, so both backends give the same bundles. Only the bundles (``min_members`` or more) come back:
    ``members`` and ``member_communities`` as texts joined by :data:`SEPARATOR` (in the
    same order, not sorted), ``member_count``, the kinds as bits
    (bit i: ``kind_codes[i - 1]``), area sums in hundredths of m² (integers), the
    smallest and largest area, the count
    per severity and the convex hull as WKB.
    """
    from sqlalchemy.dialects.postgresql import array

    if across:
        # one frame for all, the UTM zone of their centre: no partition edge
        g = chosen.c.geom
        x, y = (func.ST_XMin(g) + func.ST_XMax(g)) / 2.0, (func.ST_YMin(g) + func.ST_YMax(g)) / 2.0
        lon, lat = conn.execute(select(func.avg(x), func.avg(y))).one()
        if lon is None:
            return []
        framed = select(
            chosen,
            literal(0).label("part"),
            func.ST_Transform(g, utm_epsg(lon, lat)).label("metric"),
        ).subquery("framed")
        labelled = _labelled(framed, gap_m)
    else:
        labelled = labels_by_community_sql(chosen, gap_m)
    # each bundle's rows by (community, survey_ref) in code-point order, as bundles list
    # their members: an aggregate over a sorted subquery keeps its order (PostgreSQL's
    # documented idiom), one sort for all where an ORDER BY per aggregate sorts twice
    lc, in_order = labelled.c, backend(conn).codepoint_order
    c = (
        select(labelled)
        .order_by(lc.part, lc.label, in_order(lc.community), in_order(lc.survey_ref))
        .subquery("ordered")
        .c
    )
    count = func.count()
    # the distinct kinds of a bundle as bits of their place in the code list
    kind_bit = literal(1).op("<<")(func.array_position(array(kind_codes), c.kind))
    stmt = (
        select(
            # texts split in Python: far faster than a text[] for the driver to parse;
            # the caller checks the order and sorts any bundle that is not in it
            *(
                func.string_agg(column, literal(SEPARATOR)).label(name)
                for name, column in (("members", c.survey_ref), ("member_communities", c.community))
            ),
            count.label("member_count"),
            func.bit_or(kind_bit).label("kinds"),
            # in hundredths of m², as integers: the same totals in any order of summation
            *(
                func.sum(cast(func.floor(func.coalesce(col, 0.0) * 100 + 0.5), BigInteger)).label(
                    name
                )
                for name, col in (
                    ("footprint_area_m2", c.footprint_area_m2),
                    ("floor_area_m2", c.floor_area_m2),
                    ("usable_area_m2", c.area_m2),
                )
            ),
            func.min(c.area_m2).label("smallest_m2"),
            func.max(c.area_m2).label("largest_m2"),
            count.filter(c.severity.is_(None)).label("clean"),
            *(
                count.filter(c.severity == s).label(s)
                for s in ("transitional", "minor", "blocking")
            ),
            func.ST_AsBinary(func.ST_ConvexHull(func.ST_Collect(c.geom))).label("wkb"),
        )
        .group_by(c.part, c.label)
        .having(count >= int(min_members))
    )
    # JIT compiling this query costs more (~1 s) than it saves
    conn.execute(text("SET LOCAL jit = off"))
    return conn.execute(stmt).all()


@gc_paused()
def _from_rows(rows: list, codes: list[str]) -> tuple[gpd.GeoDataFrame, pd.DataFrame] | None:
    """Return (bundles, membership) from :func:`_clusters_in_postgis` rows.

    None when the member lists do not split cleanly (a value holds the separator).
    """
    if not rows:
        return _empty()
    sep = SEPARATOR
    counts = [r.member_count for r in rows]
    refs = sep.join(r.members for r in rows).split(sep)
    member_communities = sep.join(r.member_communities for r in rows).split(sep)
    if not len(refs) == len(member_communities) == sum(counts):
        return None
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    refs, member_communities, resorted = _members_in_order(refs, member_communities, starts, counts)
    # number bundles by their first member in (community, survey_ref) order, as in memory
    order = sorted(range(len(rows)), key=lambda i: (member_communities[starts[i]], refs[starts[i]]))
    member_text = [
        ", ".join(refs[starts[i] : starts[i] + counts[i]]) if i in resorted else None for i in order
    ]
    col = dict(zip(rows[0]._fields, zip(*(rows[i] for i in order), strict=True), strict=True))
    ids = [f"B{i:04d}" for i in range(1, len(rows) + 1)]
    kind_sets = {
        bits: ", ".join(sorted(k for i, k in enumerate(codes, 1) if bits >> i & 1))
        for bits in set(col["kinds"])
    }
    table = pd.DataFrame(
        {
            "bundle_id": ids,
            "communities": _communities(member_communities, starts, counts)[order],
            "members": [
                listed.replace(sep, ", ") if text is None else text
                for listed, text in zip(col["members"], member_text, strict=True)
            ],
            "member_count": col["member_count"],
            "kinds": [kind_sets[bits] for bits in col["kinds"]],
            **{
                name: np.array(col[name], dtype=np.int64) / 100
                for name in _AREA_COLUMNS[:3]  # sums in hundredths of m²
            },
            **{name: np.array(col[name], dtype=float) for name in _AREA_COLUMNS[3:]},
            **{s: np.array(col[s], dtype=int) for s in _STATUS_COLUMNS},
        }
    ).round({c: 1 for c in _AREA_COLUMNS})
    hulls = shapely.from_wkb(col["wkb"])
    bundles = gpd.GeoDataFrame(table, geometry=hulls, crs=4326)[BUNDLE_COLUMNS]
    # members in bundle order: each bundle's run of the flat lists, bundles renumbered
    run_counts = np.asarray(counts)[order]
    run_starts = np.cumsum(run_counts) - run_counts
    take = np.repeat(starts[order] - run_starts, run_counts) + np.arange(run_counts.sum())
    membership = pd.DataFrame(
        {
            "bundle_id": np.repeat(ids, run_counts),
            "survey_ref": refs[take],
            "community": member_communities[take],
        }
    )
    return bundles, membership


def _communities(ordered: np.ndarray, starts: np.ndarray, counts: list[int]) -> np.ndarray:
    """Return each bundle's communities, joined, from its members in community order."""
    first, last = ordered[starts], ordered[starts + np.asarray(counts) - 1]
    out = first.copy()
    for k in np.flatnonzero(first != last):  # a bundle across communities
        out[k] = ", ".join(dict.fromkeys(ordered[starts[k] : starts[k] + counts[k]]))
    return out


def _members_in_order(
    refs: list[str], communities: list[str], starts: np.ndarray, counts: list[int]
) -> tuple[np.ndarray, np.ndarray, set[int]]:
    """Put each bundle's members in (community, survey_ref) code-point order.

    Returns the two lists as arrays, and which bundles had to be reordered (most come
    from the store in order already).
    """
    refs_, comms = np.asarray(refs, dtype=object), np.asarray(communities, dtype=object)
    bundle = np.repeat(np.arange(len(counts)), counts)
    out_of_order = (bundle[1:] == bundle[:-1]) & ~_pairs_in_order(comms, refs_)
    resorted = {int(k) for k in np.unique(bundle[1:][out_of_order])}
    for k in resorted:
        run = slice(starts[k], starts[k] + counts[k])
        pairs = sorted(zip(comms[run], refs_[run], strict=True))
        comms[run] = [c for c, _ in pairs]
        refs_[run] = [r for _, r in pairs]
    return refs_, comms, resorted


def _in_order(community: np.ndarray, ref: np.ndarray) -> bool:
    """Whether rows are already by (community, survey reference), as the store lists them.

    One pass of comparisons instead of a sort of a million strings (~0.6 s).
    """
    try:
        return bool(_pairs_in_order(community, ref).all())
    except TypeError:  # a missing value: let the sort place it
        return False


def _pairs_in_order(community: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Whether each row comes at or after the row before it, by (community, reference)."""
    a, b = community[:-1], community[1:]
    return (a < b) | ((a == b) & (ref[:-1] <= ref[1:]))


def _distinct(values: np.ndarray, starts: np.ndarray) -> list[str]:
    """Return the distinct values of each run of ``values`` from ``starts``, sorted, joined."""
    codes, uniques = pd.factorize(values, sort=True)
    uniques = np.asarray(uniques, dtype=object)
    if len(uniques) < 63:
        # few values (kinds): each run's set as bits, each set written once
        bits = np.bitwise_or.reduceat(np.int64(1) << codes.astype(np.int64), starts)
        text = {
            b: ", ".join(uniques[[i for i in range(len(uniques)) if b >> i & 1]])
            for b in set(bits.tolist())
        }
        return [text[b] for b in bits.tolist()]
    # many values (communities): most runs hold one
    low, high = np.minimum.reduceat(codes, starts), np.maximum.reduceat(codes, starts)
    out = uniques[low]
    ends = np.r_[starts[1:], len(codes)]
    for b in np.flatnonzero(low != high):
        out[b] = ", ".join(uniques[np.unique(codes[starts[b] : ends[b]])])
    return out.tolist()


def _total(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Return the sum of each run of ``values`` (m²) from ``starts``, missing values as 0.

    Summed as whole hundredths of m², as the store does: float sums taken in another
    order could round to another tenth.
    """
    centi = np.floor(np.nan_to_num(values.astype(float)) * 100 + 0.5).astype(np.int64)
    return np.add.reduceat(centi, starts) / 100


def _empty() -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    return (
        gpd.GeoDataFrame(columns=BUNDLE_COLUMNS, geometry="geometry", crs=4326),
        pd.DataFrame(columns=["bundle_id", "survey_ref", "community"]),
    )
