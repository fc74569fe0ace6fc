"""What a map is drawn on: tiles from the web, or the user's own data offline.

Online tiles come from xyzservices' catalogue (OpenStreetMap, CartoDB, Esri…, and
Gaode/Amap), plus Tianditu (天地图, the national basemap, with the user's key). Gaode's
tiles are in GCJ-02: the map's own data are shifted to GCJ-02 to sit on them
(:func:`to_gcj02`), never the other way. Offline, any layer the user has — community
boundaries, roads, buildings as a GeoPackage or shapefile — is read, clipped to the map
and inlined under the spaces (:func:`read_base`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
import xyzservices.providers as xyz
from pyogrio.errors import DataSourceError

from inventory.chinacoords import wgs84_to_gcj02
from inventory.errors import InputError

#: Most features of one base layer inlined into a map (after clipping to it).
MAX_BASE_FEATURES = 50_000
_TIANDITU = (
    "https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
    "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}"
    "&TILECOL={x}&tk={key}"
)
_TIANDITU_ATTRIBUTION = "&copy; 天地图 Tianditu (国家地理信息公共服务平台)"
_KEY = re.compile(r"[A-Za-z0-9]{8,64}")


@dataclass(frozen=True)
class Tiles:
    """A tile source: the layers to draw (url, attribution, name, max zoom, subdomains)."""

    name: str
    layers: tuple[tuple[str, str, str, int, str], ...]
    gcj02: bool = False  # tiles drawn in GCJ-02 (Chinese web maps): shift the data


#: Short names of the usual choices (any other xyzservices name works too).
CHOICES = (
    "none",
    "osm",
    "tianditu",
    "tianditu-satellite",
    "gaode",
    "gaode-satellite",
    "esri-satellite",
)


def tiles(name: str | None, key: str | None = None) -> Tiles | None:
    """Return the tile source ``name`` (None or "none": offline, no tiles).

    ``name``: one of :data:`CHOICES` or an xyzservices name (``Esri.WorldImagery``).
    ``key``: Tianditu's key (天地图 tk, from console.tianditu.gov.cn).

    Raises:
        InputError: an unknown name, or Tianditu without a well-formed key.

    """
    if name in (None, "none"):
        return None
    if name in ("tianditu", "tianditu-satellite"):
        if not key or not _KEY.fullmatch(key):
            raise InputError(
                f"`tiles={name}` needs your Tianditu key (天地图 tk, letters and digits, from "
                "console.tianditu.gov.cn): give `tiles_key=YOUR_KEY`, or use `tiles=osm`."
            )
        base, notes = ("vec", "cva") if name == "tianditu" else ("img", "cia")
        return Tiles(
            name,
            tuple(
                (
                    _TIANDITU.replace("{layer}", layer).replace("{key}", key),
                    _TIANDITU_ATTRIBUTION,
                    f"天地图 {layer}",
                    18,
                    "01234567",
                )
                for layer in (base, notes)
            ),
        )
    aliases = {
        "osm": "OpenStreetMap.Mapnik",
        "esri-satellite": "Esri.WorldImagery",
        "gaode": "Gaode.Normal",
        "gaode-satellite": "Gaode.Satellite",
    }
    try:
        provider = xyz.query_name(aliases.get(name, name))
    except ValueError:
        raise InputError(
            f"`tiles={name!r}` is not a tile source: use one of {', '.join(CHOICES)}, or a name "
            "of the xyzservices catalogue such as Esri.WorldImagery."
        ) from None
    import warnings

    with warnings.catch_warnings():  # a provider's notice: requires_token says it
        warnings.simplefilter("ignore")
        if provider.requires_token():
            raise InputError(
                f"`tiles={name}` needs an API key of its own; use one of {', '.join(CHOICES)}."
            )
        url = provider.build_url(fill_subdomain=False)
    return Tiles(
        name,
        (
            (
                url,
                provider.html_attribution,
                provider.name,
                int(provider.get("max_zoom", 19)),
                "".join(provider.get("subdomains") or "abc"),
            ),
        ),
        gcj02=provider.name.startswith("Gaode"),
    )


def to_gcj02(frame: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame | None:
    """Return ``frame`` (EPSG:4326) with its coordinates shifted to GCJ-02, for Gaode tiles."""
    if frame is None or frame.empty:
        return frame

    def shift(coords: np.ndarray) -> np.ndarray:
        lon, lat = wgs84_to_gcj02(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    out = frame.copy()
    out.geometry = shapely.transform(frame.geometry.to_numpy(), shift)
    return out


def read_base(path: str | Path, bounds: tuple[float, float, float, float]) -> gpd.GeoDataFrame:
    """Read a layer the user has (roads, buildings, boundaries) for a map within ``bounds``.

    Reprojected to EPSG:4326 and clipped to ``bounds`` (lon/lat, widened by a fifth), only
    the geometry kept.

    Raises:
        InputError: the file is missing or unreadable, has no CRS, or holds more than
            :data:`MAX_BASE_FEATURES` features where the map is.

    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"Basemap file not found: {p}. Check the path (`base={p}`).")
    minx, miny, maxx, maxy = bounds
    dx, dy = (maxx - minx) * 0.2 + 0.002, (maxy - miny) * 0.2 + 0.002
    box = (minx - dx, miny - dy, maxx + dx, maxy + dy)
    try:
        info = pyogrio.read_info(p)
        if not info.get("crs"):
            raise InputError(
                f"{p.name} has no coordinate system (.prj): the map cannot place it. Save it "
                "with its CRS (in QGIS: Export ▸ Save Features As, with a CRS)."
            )
        frame = gpd.read_file(p, columns=[], engine="pyogrio")
    except (DataSourceError, OSError) as exc:
        raise InputError(f"{p.name} cannot be read as a basemap ({exc}).") from None
    frame = frame.to_crs(4326)
    frame = frame[frame.intersects(shapely.box(*box))]
    if len(frame) > MAX_BASE_FEATURES:
        raise InputError(
            f"{p.name} has {len(frame):,} features where the map is (at most "
            f"{MAX_BASE_FEATURES:,} are inlined): clip it to the area first."
        )
    frame = frame.clip(box)
    return frame[~frame.geometry.is_empty][["geometry"]].reset_index(drop=True)
