"""Bundles (聚少成多): small scattered spaces close enough to be run as one unit.

Spaces whose outlines lie within ``max_gap_m`` of each other are linked, and a bundle is
a connected group of links, found with a spatial index (shapely's STRtree ``dwithin``)
and scipy's connected components — never by comparing every pair. Distances are
measured in the UTM zone of each partition (the community, or with
``across_communities`` the UTM zone itself), exact to centimetres at these scales.
Bundles are reproducible: the same spaces and options give the same bundles and ids.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sqlalchemy import Engine

from inventory import _dialects
from inventory.codes import KIND
from inventory.errors import InputError
from inventory.gaps import annotate
from inventory.geodesy import reproject

#: Walking-scale default: two rooms 30 m apart can share staff and a sign.
DEFAULT_MAX_GAP_M = 30.0


def utm_epsg(lon: float, lat: float) -> int:
    """Return the EPSG code of the WGS84 UTM zone containing (lon, lat)."""
    zone = int((lon + 180) // 6) + 1
    return (32600 if lat >= 0 else 32700) + zone


def select_spaces(
    spaces: gpd.GeoDataFrame,
    kinds: list[str] | None = None,
    min_area_m2: float | None = None,
    exclude_blocking: bool = False,
) -> gpd.GeoDataFrame:
    """Return the spaces that may join bundles, with their title-gap columns.

    Default kinds: every kind but parking (parking capacity is counted in spaces, not m²).

    Raises:
        InputError: a kind is not known.

    """
    codes = []
    for k in kinds or []:
        code = KIND.match(k)
        if code is None:
            raise InputError(f"--kind {k!r} is not a kind; kinds: {', '.join(KIND.codes)}.")
        codes.append(code)
    chosen = codes or [k for k in KIND.codes if k != "parking"]
    out = annotate(spaces[spaces["kind"].isin(chosen)])
    area = out["usable_area_m2"].astype(float).fillna(out["footprint_area_m2"].astype(float))
    out["area_m2"] = area
    if min_area_m2:
        out = out[area >= min_area_m2]
    if exclude_blocking:
        out = out[out["gap_severity"] != "blocking"]
    return out


def _partitions(spaces: gpd.GeoDataFrame, across: bool) -> pd.Series:
    centroids = shapely.centroid(spaces.geometry.values)
    zones = [utm_epsg(p.x, p.y) for p in centroids]
    if across:
        return pd.Series(zones, index=spaces.index).astype(str)
    # one zone per community: its spaces' mean centroid
    frame = pd.DataFrame(
        {
            "c": spaces["community"].to_numpy(),
            "x": shapely.get_x(centroids),
            "y": shapely.get_y(centroids),
        }
    )
    mean = frame.groupby("c")[["x", "y"]].mean()
    zone_of = {c: utm_epsg(r.x, r.y) for c, r in mean.iterrows()}
    return pd.Series([f"{c}|{zone_of[c]}" for c in frame["c"]], index=spaces.index)


def _labels(chosen: gpd.GeoDataFrame, max_gap_m: float, across: bool, engine) -> np.ndarray:
    """Return a cluster label per row: linked spaces share a label."""
    if engine is not None and len(chosen):
        with engine.connect() as conn:
            pushed = _dialects.cluster_labels(conn, chosen["space_id"].tolist(), max_gap_m, across)
        if pushed is not None:
            keys = [pushed[i] for i in chosen["space_id"]]
            return pd.factorize(pd.Series(keys))[0]
    labels = np.full(len(chosen), -1)
    next_label = 0
    for key, idx in chosen.groupby(_partitions(chosen, across)).indices.items():
        epsg = int(key.rsplit("|", 1)[-1])
        metric = reproject(chosen.geometry.values[idx], "EPSG:4326", f"EPSG:{epsg}")
        left, right = shapely.STRtree(metric).query(metric, predicate="dwithin", distance=max_gap_m)
        graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(len(idx), len(idx)))
        count, comp = connected_components(graph, directed=False)
        labels[idx] = comp + next_label
        next_label += count
    return labels


def find_bundles(
    spaces: gpd.GeoDataFrame,
    max_gap_m: float = DEFAULT_MAX_GAP_M,
    *,
    kinds: list[str] | None = None,
    min_area_m2: float | None = None,
    exclude_blocking: bool = False,
    across_communities: bool = False,
    min_members: int = 2,
    engine: Engine | None = None,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Group spaces into bundles; return (bundles, membership).

    With the ``engine`` of a PostGIS store the spaces came from, the clustering runs in
    the database (``ST_ClusterDBSCAN`` partitioned by community); otherwise in memory.
    Both give the same bundles.

    Args:
        spaces: spaces as returned by :func:`inventory.listing.spaces` (EPSG:4326).
        max_gap_m: largest gap in metres between two outlines of one bundle.
        kinds: kinds that may join (codes or aliases); default all but parking.
        min_area_m2: leave out spaces smaller than this (usable, else footprint area).
        exclude_blocking: leave out spaces with a blocking title gap.
        across_communities: pool spaces of neighbouring communities (片区统筹).
        min_members: smallest bundle reported (2: a lone space is not a bundle).
        engine: the store the spaces came from; on PostGIS the clustering runs there.

    Returns:
        bundles: one row per bundle — ``bundle_id``, ``communities``, ``members``,
        ``member_count``, total footprint / floor / usable area, smallest and largest
        member, the title-status mix, and the convex hull of its members as geometry;
        membership: ``bundle_id``, ``survey_ref``, ``community`` for every member.

    Raises:
        InputError: max_gap_m is negative or a kind is unknown.

    """
    if max_gap_m < 0:
        raise InputError(f"--max-gap {max_gap_m} must be 0 m or more.")
    chosen = select_spaces(spaces, kinds, min_area_m2, exclude_blocking)
    chosen = chosen.sort_values(["community", "survey_ref"]).reset_index(drop=True)
    chosen["_label"] = _labels(chosen, max_gap_m, across_communities, engine)
    # number bundles by their first member (community, survey_ref): reproducible ids
    groups = [g for _, g in chosen.groupby("_label", sort=False) if len(g) >= min_members]
    groups.sort(key=lambda g: (g["community"].iloc[0], g["survey_ref"].iloc[0]))
    records, members = [], []
    for number, g in enumerate(groups, start=1):
        bundle_id = f"B{number:04d}"
        severity = g["gap_severity"].fillna("clean")
        records.append(
            {
                "bundle_id": bundle_id,
                "communities": ", ".join(sorted(set(g["community"]))),
                "members": ", ".join(g["survey_ref"]),
                "member_count": len(g),
                "kinds": ", ".join(sorted(set(g["kind"]))),
                "footprint_area_m2": round(float(g["footprint_area_m2"].astype(float).sum()), 1),
                "floor_area_m2": round(float(g["floor_area_m2"].astype(float).fillna(0).sum()), 1),
                "usable_area_m2": round(float(g["area_m2"].sum()), 1),
                "smallest_m2": round(float(g["area_m2"].min()), 1),
                "largest_m2": round(float(g["area_m2"].max()), 1),
                "clean": int((severity == "clean").sum()),
                "transitional": int((severity == "transitional").sum()),
                "minor": int((severity == "minor").sum()),
                "blocking": int((severity == "blocking").sum()),
                "geometry": shapely.convex_hull(shapely.union_all(g.geometry.values)),
            }
        )
        members += [
            {"bundle_id": bundle_id, "survey_ref": r, "community": c}
            for r, c in zip(g["survey_ref"], g["community"], strict=True)
        ]
    columns = [
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
    bundles = gpd.GeoDataFrame(records, columns=columns, geometry="geometry", crs=4326)
    return bundles, pd.DataFrame(members, columns=["bundle_id", "survey_ref", "community"])
