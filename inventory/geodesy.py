"""Areas and local metric frames for EPSG:4326 geometries, correct in metres across China.

Areas are computed in an Albers equal-area projection on the WGS84 ellipsoid: an
equal-area projection preserves area everywhere (only shapes distort away from its
standard parallels), so a 3,000 m² boiler room measures 3,000 m² in Sanya and in
Harbin alike, and the computation is vectorised over millions of geometries.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Transformer

#: Albers equal-area for China (standard parallels 25°N and 47°N), on WGS84.
CHINA_ALBERS = CRS.from_proj4(
    "+proj=aea +lat_0=0 +lon_0=105 +lat_1=25 +lat_2=47 +x_0=0 +y_0=0 +ellps=WGS84 +units=m"
)


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)


def reproject(geoms, src: str | CRS, dst: str | CRS):
    """Return ``geoms`` (a shapely geometry or array of them) transformed from ``src`` to ``dst``."""
    transformer = _transformer(CRS.from_user_input(src).to_wkt(), CRS.from_user_input(dst).to_wkt())
    return _apply(transformer, geoms)


def _apply(transformer: Transformer, geoms):
    return shapely.transform(
        geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
    )


def area_m2(geoms) -> np.ndarray:
    """Return the ellipsoidal area in m² of each EPSG:4326 geometry (0 for points and lines).

    Accepts a single geometry or an array-like; always returns a float64 array.
    """
    arr = np.atleast_1d(np.asarray(geoms, dtype=object))
    return shapely.area(reproject(arr, "EPSG:4326", CHINA_ALBERS)).astype("float64")


def to_local_metres(geoms, lon: float, lat: float):
    """Return ``geoms`` (EPSG:4326) in metres, azimuthal equidistant around (lon, lat).

    The distance from the centre to any point is its geodesic distance.

    Built as a PROJ pipeline, which takes microseconds (a CRS-to-CRS transformer searches
    PROJ's database and takes milliseconds): quick questions near a point stay quick.
    """
    transformer = Transformer.from_pipeline(
        f"+proj=aeqd +lat_0={float(lat):.10f} +lon_0={float(lon):.10f} +x_0=0 +y_0=0 "
        "+ellps=WGS84 +units=m"
    )
    return _apply(transformer, geoms)


def local_metric_crs(lon: float, lat: float) -> CRS:
    """Return an azimuthal equidistant CRS centred on (lon, lat), for metric work near it."""
    return CRS.from_proj4(
        f"+proj=aeqd +lat_0={lat:.6f} +lon_0={lon:.6f} +x_0=0 +y_0=0 +ellps=WGS84 +units=m"
    )


def gauss_kruger_3deg_epsg(lon: float) -> int:
    """Return the EPSG code of the CGCS2000 3-degree Gauss-Krüger zone (CM only) for ``lon``.

    EPSG:4534 is the zone with central meridian 75°E, EPSG:4554 the one at 135°E.
    """
    central = round(lon / 3) * 3
    if not 75 <= central <= 135:
        raise ValueError(f"Longitude {lon} is outside China's Gauss-Krüger zones (75°E–135°E).")
    return 4534 + (central - 75) // 3


def utm_epsg(lon: float, lat: float) -> int:
    """Return the EPSG code of the WGS84 UTM zone holding (lon, lat).

    Distances of a few tens of metres measure 0.04% short on the zone's central meridian
    and at most 0.1% long at its edges (3° away); about 1% long 900 km from it. PostGIS
    and pyproj transform to it alike, and PostGIS keeps the transformation cached.
    """
    zone = min(int((float(lon) + 180) // 6) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


#: WGS84 semi-major axis (m) and first eccentricity squared.
WGS84_A = 6378137.0
WGS84_E2 = 0.0066943799901413165


def metres_per_degree(lat) -> tuple[np.ndarray, np.ndarray]:
    """Return (metres per degree of longitude, of latitude) on WGS84 at latitude ``lat``.

    From the ellipsoid's radii of curvature: a local equirectangular frame built on them
    measures distances of a few hundred metres to well under a millimetre per metre.
    """
    phi = np.radians(np.asarray(lat, dtype="float64"))
    w = np.sqrt(1 - WGS84_E2 * np.sin(phi) ** 2)
    per_radian = np.pi / 180
    return per_radian * WGS84_A / w * np.cos(phi), per_radian * WGS84_A * (1 - WGS84_E2) / w**3


def near_bounds(lon: float, lat: float, radius_m: float) -> tuple[float, float, float, float]:
    """Return a lon/lat box that surely contains everything within ``radius_m`` of the point."""
    dlat = radius_m / 110_574 * 1.01 + 1e-6
    dlon = (
        radius_m / (111_320 * max(np.cos(np.radians(lat + np.sign(lat) * dlat)), 1e-6)) * 1.01
        + 1e-6
    )
    return lon - dlon, lat - dlat, lon + dlon, lat + dlat
