"""GCJ-02 and BD-09 web-map coordinates to WGS84, vectorised.

Chinese web maps (Amap/Gaode, Tencent: GCJ-02; Baidu: BD-09) shift coordinates by an
obfuscation of a few hundred metres. The forward formula is public; the inverse has no
closed form, so it is solved by fixed-point iteration to well under a centimetre.
PyPI's packages for this (eviltransform, prcoords, coord-convert) are scalar and
unmaintained, which is why this small module exists.
"""

from __future__ import annotations

import numpy as np

_A = 6378245.0  # Krasovsky 1940 semi-major axis, as the GCJ-02 algorithm uses
_EE = 0.00669342162296594323
_BD_PI = np.pi * 3000.0 / 180.0


def _offsets(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = lon - 105.0
    y = lat - 35.0
    d_lat = (
        -100.0
        + 2.0 * x
        + 3.0 * y
        + 0.2 * y * y
        + 0.1 * x * y
        + 0.2 * np.sqrt(np.abs(x))
        + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
        + (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    )
    d_lon = (
        300.0
        + x
        + 2.0 * y
        + 0.1 * x * x
        + 0.1 * x * y
        + 0.1 * np.sqrt(np.abs(x))
        + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
        + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    )
    rad = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * np.pi)
    d_lon = (d_lon * 180.0) / (_A / sqrt_magic * np.cos(rad) * np.pi)
    return d_lon, d_lat


def wgs84_to_gcj02(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Shift WGS84 longitude/latitude (arrays) to GCJ-02."""
    lon, lat = np.asarray(lon, dtype="float64"), np.asarray(lat, dtype="float64")
    d_lon, d_lat = _offsets(lon, lat)
    return lon + d_lon, lat + d_lat


def gcj02_to_wgs84(lon, lat, tolerance_deg: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Return WGS84 longitude/latitude for GCJ-02 coordinates (iterative exact inverse)."""
    g_lon, g_lat = np.asarray(lon, dtype="float64"), np.asarray(lat, dtype="float64")
    w_lon, w_lat = g_lon.copy(), g_lat.copy()
    for _ in range(30):
        f_lon, f_lat = wgs84_to_gcj02(w_lon, w_lat)
        e_lon, e_lat = f_lon - g_lon, f_lat - g_lat
        w_lon, w_lat = w_lon - e_lon, w_lat - e_lat
        if max(np.max(np.abs(e_lon), initial=0), np.max(np.abs(e_lat), initial=0)) < tolerance_deg:
            break
    return w_lon, w_lat


def bd09_to_gcj02(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Return GCJ-02 longitude/latitude for Baidu BD-09 coordinates."""
    x = np.asarray(lon, dtype="float64") - 0.0065
    y = np.asarray(lat, dtype="float64") - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _BD_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _BD_PI)
    return z * np.cos(theta), z * np.sin(theta)


def bd09_to_wgs84(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Return WGS84 longitude/latitude for Baidu BD-09 coordinates."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))
