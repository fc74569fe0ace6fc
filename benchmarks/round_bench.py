"""A second survey round against the first: the same spaces delivered again, half changed.

Run on demand (not part of the tests):

    INVENTORY_TEST_POSTGIS_URL=postgresql+psycopg://inventory:inventory@localhost/postgres \\
        .venv/bin/python benchmarks/round_bench.py --n 200000

A synthetic survey (``inventory.samples.synthetic_inventory``, cached under
benchmarks/_data/) is imported into a fresh store with ``inventory import``; then two
second rounds of the same spaces, each into its own copy of that store: one where half
the owners changed (their survey rights are rebuilt), one where half the floor areas
changed (the rights stay). Each import runs as a user runs it, in its own process, from
start-up to the commit. Ratios are against the first import measured in the same run, on
the same backend. Without a PostGIS URL only the SpatiaLite store is measured.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import admin_engine, fresh_database  # benchmarks/ is on sys.path when run
from sqlalchemy import text

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"


def _data(n: int) -> dict[str, Path]:
    """Return the first round and the two second rounds of ``n`` spaces (made once)."""
    files = {
        "first": DATA / f"round1_{n}.gpkg",
        "owners": DATA / f"round2_owners_{n}.gpkg",
        "areas": DATA / f"round2_areas_{n}.gpkg",
    }
    if all(f.exists() for f in files.values()):
        return files
    import numpy as np
    import pyogrio

    from inventory.samples import synthetic_inventory

    DATA.mkdir(exist_ok=True)
    per = 100
    _, spaces = synthetic_inventory(max(n // per, 1), per)
    spaces = spaces.iloc[:n]
    half = np.random.default_rng(1).choice(len(spaces), len(spaces) // 2, replace=False)
    rows = spaces.index[half]
    owners = spaces.copy()
    owners.loc[rows, "owner_name"] = [f"第二轮产权单位{i % 500}" for i in half]
    areas = spaces.copy()
    areas.loc[rows, "floor_area_m2"] = areas.loc[rows, "floor_area_m2"].fillna(10.0) * 1.05
    for name, frame in (("first", spaces), ("owners", owners), ("areas", areas)):
        pyogrio.write_dataframe(frame, files[name], layer="spaces")
    return files


def _import(url: str, path: Path) -> float:
    """Run ``inventory import`` on ``url``; return its wall time in seconds."""
    env = {**os.environ, "INVENTORY_DATABASE_URL": url}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "inventory", "import", str(path)],
        env=env,
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"inventory import {path.name} failed:\n{done.stderr[-2000:]}")
    return took


def _init(url: str) -> None:
    env = {**os.environ, "INVENTORY_DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "inventory", "init"], env=env, check=True, capture_output=True
    )


def _spatialite(files: dict[str, Path], work: Path) -> dict[str, float]:
    first = work / "first.db"
    _init(f"sqlite:///{first}")
    times = {"first": _import(f"sqlite:///{first}", files["first"])}
    for name in ("owners", "areas"):
        copy = work / f"{name}.db"
        shutil.copy(first, copy)
        times[name] = _import(f"sqlite:///{copy}", files[name])
    return times


def _postgis(files: dict[str, Path], raw: str | None) -> dict[str, float]:
    admin, url = admin_engine(raw)
    first = "bench_round1"
    fresh_database(admin, first)
    base = url.set(database=first).render_as_string(hide_password=False)
    _init(base)
    times = {"first": _import(base, files["first"])}
    for name in ("owners", "areas"):
        db = f"bench_round2_{name}"
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{db}" TEMPLATE "{first}"'))
        times[name] = _import(
            url.set(database=db).render_as_string(hide_password=False), files[name]
        )
    with admin.connect() as conn:
        for db in (first, "bench_round2_owners", "bench_round2_areas"):
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
    admin.dispose()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="spaces (default 200,000)")
    parser.add_argument("--url", help="admin URL (default: $INVENTORY_TEST_POSTGIS_URL)")
    args = parser.parse_args()
    files = _data(args.n)
    results = {}
    if args.url or os.environ.get("INVENTORY_TEST_POSTGIS_URL"):
        results["PostGIS"] = _postgis(files, args.url)
    with tempfile.TemporaryDirectory() as work:
        results["SpatiaLite"] = _spatialite(files, Path(work))
    print(f"{args.n:,} spaces; second rounds deliver all of them, half changed")
    print(f"{'store':<11} {'first import':>13} {'owners changed':>16} {'areas changed':>15}")
    for store, t in results.items():
        print(
            f"{store:<11} {t['first']:>12.1f}s "
            f"{t['owners']:>8.1f}s {t['owners'] / t['first']:>5.2f}x "
            f"{t['areas']:>7.1f}s {t['areas'] / t['first']:>5.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
