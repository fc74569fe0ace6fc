"""End to end on one PostGIS: a synthetic country at growing sizes, each step timed.

Run on demand (not part of the tests):

    INVENTORY_TEST_POSTGIS_URL=postgresql+psycopg://inventory:inventory@localhost/postgres \\
        .venv/bin/python benchmarks/national_bench.py --sizes 100000,200000,400000

For each size it builds a synthetic country (``synthetic_inventory``: districts of 100
communities of 100 spaces each, kinds and tenure in the Jinsong proportions), and on a
fresh PostGIS database runs what a national user would: the import (communities, then
spaces), the title gaps, the bundles (30 m), capacity within 500 m of 50 random points,
the revenue of a package (every community of one district, a pooled scenario) and the
map of one district (a planner's map to hand out); the map of every space (``--mode
city``) is measured too, but left out of the country's run. It prints each step's
time, how it grows with size (the exponent k of t ∝ n^k fitted to every size: 1 is
linear) and the time extrapolated to ``--country`` spaces (China: ~6.6 M) from the
largest size measured — with k as fitted, and with every step that grows growing at
least linearly (a k below 1 from noise at the smaller sizes would flatter the country).

With ``--partitioned`` the analyses run again on the same rows in a ``space`` table
partitioned by district (declarative range partitions on ``community_id``: a district's
communities have consecutive ids), to compare with the plain table. The import is
measured on the plain table only: the store's foreign keys point at it.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyogrio
from _common import admin_engine, fresh_database  # benchmarks/ is on sys.path when run
from sqlalchemy import text

from inventory import store
from inventory.bundles import bundles_in_store
from inventory.capacity import capacity_near
from inventory.db import connect
from inventory.gaps import title_gaps_in_store
from inventory.importer import import_file
from inventory.maps import map_from_store
from inventory.revenue import estimate_in_store
from inventory.samples import synthetic_inventory

DATA = Path(__file__).resolve().parent / "_data"
PER_COMMUNITY = 100
PER_DISTRICT = 100  # communities (synthetic_inventory's districts)
ANALYSES = (
    "gaps",
    "bundles",
    "capacity x50",
    "revenue (district)",
    "map (district)",
    "map (every space)",
)
#: Measured, but left out of the country's run: a planner hands out a district's or a
#: city's map, not one page holding every space of the country.
OUTSIDE_THE_RUN = ("map (every space)",)
POOLED = """name = "pooled district"
model = "area_pooling"
discount_rate = 0.06
[package]
district = "D0000"
[use_classes.service]
tariff_yuan_m2_day = 2.0
occupancy = 0.9
[[streams]]
type = "rent"
[[streams]]
type = "property_fee"
fee_yuan_m2_month = 0.8
collection_mature = 0.8
cost_yuan_m2_year = 6
[[works]]
name = "works"
cost_yuan_m2_floor = 100
"""


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def country_files(n: int) -> tuple[Path, Path]:
    """Write (once) the synthetic country of ``n`` spaces as two GeoPackages."""
    DATA.mkdir(exist_ok=True)
    comm_path, space_path = DATA / f"country_{n}_communities.gpkg", DATA / f"country_{n}.gpkg"
    if not (comm_path.exists() and space_path.exists()):
        communities, spaces = synthetic_inventory(max(n // PER_COMMUNITY, 1), PER_COMMUNITY)
        communities["floor_area_m2"] = 50_000.0
        pyogrio.write_dataframe(communities, comm_path, layer="communities")
        pyogrio.write_dataframe(spaces.iloc[:n], space_path, layer="spaces")
    return comm_path, space_path


def analyses(engine, work: Path, rng: np.random.Generator, extent) -> dict[str, float]:
    """Time each analysis of a national user on ``engine``'s store."""
    times = {}
    times["gaps"], _ = timed(lambda: title_gaps_in_store(engine))
    times["bundles"], _ = timed(lambda: bundles_in_store(engine, 30.0))
    minx, miny, maxx, maxy = extent
    points = list(zip(rng.uniform(minx, maxx, 50), rng.uniform(miny, maxy, 50), strict=True))
    times["capacity x50"], _ = timed(lambda: [capacity_near(engine, p, 500.0) for p in points])
    scenario = work / "pooled.toml"
    scenario.write_text(POOLED, encoding="utf-8")
    times["revenue (district)"], _ = timed(lambda: estimate_in_store(engine, scenario))
    times["map (district)"], _ = timed(
        lambda: map_from_store(engine, work / "district.html", district="D0000")
    )
    times["map (every space)"], _ = timed(
        lambda: map_from_store(engine, work / "city.html", mode="city")
    )
    return times


def partition_by_district(engine) -> float:
    """Move ``space``'s rows into a copy partitioned by district; return the seconds taken."""
    start = time.perf_counter()
    with engine.begin() as conn:
        lo, hi = conn.execute(text("SELECT min(id), max(id) FROM community")).one()
        conn.execute(text("ALTER TABLE space RENAME TO space_plain"))
        conn.execute(
            text(
                "CREATE TABLE space (LIKE space_plain INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                "INCLUDING GENERATED) PARTITION BY RANGE (community_id)"
            )
        )
        for first in range(lo, hi + 1, PER_DISTRICT):
            conn.execute(
                text(
                    f"CREATE TABLE space_d{first} PARTITION OF space "
                    f"FOR VALUES FROM ({first}) TO ({first + PER_DISTRICT})"
                )
            )
        conn.execute(text("INSERT INTO space SELECT * FROM space_plain"))
        # the plain table's indexes, on the partitioned one (each partition gets its own)
        rows = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE tablename = 'space_plain'")
        ).scalars()
        for definition in list(rows):
            if " UNIQUE " in definition:
                continue  # a unique index must hold the partition key; the rows are unique
            conn.execute(
                text(
                    definition.replace("ON public.space_plain", "ON public.space").replace(
                        "CREATE INDEX ", "CREATE INDEX part_"
                    )
                )
            )
        conn.execute(text("ANALYZE space"))
    return time.perf_counter() - start


def run_size(n: int, admin, url, partitioned: bool):
    """Import a country of ``n`` spaces into a fresh database and time every step."""
    comm_path, space_path = country_files(n)
    fresh_database(admin, "bench_national")
    engine = connect(url.set(database="bench_national").render_as_string(hide_password=False))
    plain, parted, moved = {}, {}, None
    try:
        store.init(engine)
        t_comm, _ = timed(lambda: import_file(engine, comm_path, communities=True))
        t_space, _ = timed(lambda: import_file(engine, space_path))
        plain["import"] = t_comm + t_space
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        extent = pyogrio.read_info(comm_path)["total_bounds"]
        with tempfile.TemporaryDirectory(prefix="inventory-national-") as tmp:
            plain |= analyses(engine, Path(tmp), np.random.default_rng(1), extent)
            if partitioned:
                moved = partition_by_district(engine)
                parted = analyses(engine, Path(tmp), np.random.default_rng(1), extent)
    finally:
        engine.dispose()
    return plain, parted, moved


def growth(sizes: list[int], times: list[float]) -> float:
    """The exponent k of t ∝ n^k, fitted to every size (least squares on the logarithms)."""
    if len(sizes) < 2 or min(times) <= 0:
        return float("nan")
    return float(np.polyfit(np.log(sizes), np.log(times), 1)[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,200000,400000", help="spaces, comma-separated")
    parser.add_argument("--country", type=int, default=6_600_000, help="spaces to extrapolate to")
    parser.add_argument("--partitioned", action="store_true", help="also on a partitioned space")
    parser.add_argument("--url", help="admin URL (default: $INVENTORY_TEST_POSTGIS_URL)")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    admin, url = admin_engine(args.url)
    steps = ("import", *ANALYSES)
    plain: dict[str, list[float]] = {s: [] for s in steps}
    parted: dict[str, list[float]] = {s: [] for s in ANALYSES}
    moves: list[float] = []
    for n in sizes:
        size_plain, size_parted, moved = run_size(n, admin, url, args.partitioned)
        for step, t in size_plain.items():
            plain[step].append(t)
        for step, t in size_parted.items():
            parted[step].append(t)
        if moved is not None:
            moves.append(moved)
        print(f"{n:,} spaces done (peak {peak_mib():,.0f} MiB)", flush=True)

    largest = sizes[-1]
    print(
        f"\nSynthetic country on one PostGIS, {len(sizes)} sizes; k: t ∝ n^k fitted to "
        f"{sizes[0]:,}–{largest:,}; extrapolated to {args.country:,} spaces from {largest:,}"
    )
    head = "".join(f"{n:>12,}" for n in sizes)
    print(f"{'step (s)':<22}{head}{'k':>7}{'country s':>12}")
    total = linear = 0.0
    for step in steps:
        k = growth(sizes, plain[step])
        k = k if k == k else 1.0
        country = plain[step][-1] * (args.country / largest) ** k
        cells = "".join(f"{t:>12.1f}" for t in plain[step])
        if step in OUTSIDE_THE_RUN:
            print(f"{step:<22}{cells}{k:>7.2f}{f'({country:.0f})':>12}")
            continue
        total += country
        # a step that grows at all grows at least linearly: it reads every space
        linear += plain[step][-1] * (args.country / largest) ** (max(k, 1.0) if k > 0.5 else k)
        print(f"{step:<22}{cells}{k:>7.2f}{country:>12.0f}")
    print(f"{'whole run':<22}{'':>{12 * len(sizes)}}{'':>7}{total:>12.0f}")
    print(f"{'  if each grew at least linearly':<{22 + 12 * len(sizes) + 7}}{linear:>12.0f}")
    print(f"(in brackets, not in the run: {', '.join(OUTSIDE_THE_RUN)})")
    print(
        f"target: the whole country in < 300 s on this machine; extrapolated {total:,.0f} s "
        f"({linear:,.0f} s if each step grew at least linearly)"
    )
    if args.partitioned:
        print("\nThe same analyses on space partitioned by district (ratio to the plain table)")
        print(f"{'step (s)':<22}{head}")
        for step in ANALYSES:
            cells = "".join(
                f"{t:>6.1f} {t / p:>4.2f}x" for t, p in zip(parted[step], plain[step], strict=True)
            )
            print(f"{step:<22}{cells}")
        print(f"{'moving the rows':<22}" + "".join(f"{t:>12.1f}" for t in moves))
    return 0


if __name__ == "__main__":
    sys.exit(main())
