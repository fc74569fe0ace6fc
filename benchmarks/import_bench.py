"""Import speed on PostGIS: the inventory's import vs ogr2ogr vs a bare binary COPY.

Run on demand (not part of the tests):

    INVENTORY_TEST_POSTGIS_URL=postgresql+psycopg://inventory:inventory@localhost/postgres \\
        .venv/bin/python benchmarks/import_bench.py --n 1000000

All three load the same synthetic GeoPackage (``inventory.samples.synthetic_inventory``,
cached under benchmarks/_data/) into fresh databases on the same server in one run, and
the ratios are against ogr2ogr measured in that run. Each loader runs in its own process
so its peak memory (max RSS) is measured too. The inventory's figure includes reading,
field mapping, validation (geometry repair, areas, overlaps), community assignment,
quarantine and the transactional write; ogr2ogr and the bare COPY do none of that. It
runs from the process's start (Python's start-up and imports included, as a user runs
``inventory import``) to the commit, on a store made beforehand (``inventory init``).
Each loader finds a quiet server: the database filled before is dropped and the server
checkpointed. The floor of the schema is the import's own rows, already valid, copied
back into the empty ``space`` table through its constraints and indexes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import admin_engine, fresh_database  # benchmarks/ is on sys.path when run
from sqlalchemy import create_engine, text

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"

TOOL = """
import time
began = time.perf_counter()
import sys
from inventory.db import connect
from inventory import store
from inventory.importer import import_file
from inventory.tenure import sync_survey_rights
engine = connect(sys.argv[1])
start = time.perf_counter()
store.init(engine)  # `inventory init`, run once per store: not the import's time
setup = time.perf_counter() - start
r = import_file(engine, sys.argv[2])[0]
took = time.perf_counter() - began - setup  # start-up (imports) and the import
assert r.read == r.loaded + r.rejected, r
# the tenure records rebuilt for every space after the import, timed alone (it deletes
# what the import wrote and writes it again through the indexes and foreign keys)
start = time.perf_counter()
with engine.begin() as conn:
    written = sync_survey_rights(conn)
print(r.loaded, r.rejected, f"{time.perf_counter() - start:.2f}", written, f"{took:.2f}")
"""

MAKE_DATA = """
import sys, pyogrio
from inventory.samples import synthetic_inventory
n, path = int(sys.argv[1]), sys.argv[2]
_, spaces = synthetic_inventory(max(n // 100, 1), 100)
pyogrio.write_dataframe(spaces.iloc[:n], path, layer="spaces")
"""

RAW_COPY = """
import sys, pyogrio, psycopg, shapely
meta, _, wkb, fields = pyogrio.raw.read(sys.argv[2])
names = [str(f) for f in meta["fields"]]
geoms = shapely.set_srid(shapely.from_wkb(wkb), 4326)
ewkb = shapely.to_wkb(geoms, include_srid=True)
with psycopg.connect(sys.argv[1]) as conn:
    conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    cols = ", ".join(f'"{n}" text' for n in names)
    conn.execute(f"CREATE TABLE raw_spaces ({cols}, geom geometry(Geometry, 4326))")
    with conn.cursor().copy(
        f"COPY raw_spaces ({', '.join(chr(34) + n + chr(34) for n in names)}, geom) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["text"] * len(names) + ["bytea"])
        columns = [[None if v is None else str(v) for v in f] for f in fields]
        for i, g in enumerate(ewkb):
            copy.write_row([c[i] for c in columns] + [g])
    conn.execute("CREATE INDEX ON raw_spaces USING gist (geom)")
print(len(ewkb))
"""

# the floor of this schema: the rows the import wrote, already valid and in the store's
# own binary form, copied into the empty ``space`` table with its constraints and indexes
# (in a transaction rolled back: the store stays as the import left it)
FLOOR = """
import io, sys, time, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    rows = io.BytesIO()
    with conn.cursor().copy("COPY space TO STDOUT (FORMAT BINARY)") as copy:
        for data in copy:
            rows.write(data)
    conn.execute("TRUNCATE space CASCADE")
    start = time.perf_counter()
    with conn.cursor().copy("COPY space FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(rows.getbuffer())
    print(f"{time.perf_counter() - start:.2f}")
    conn.rollback()
"""


def _run(cmd: list[str], env=None) -> tuple[float, float, str]:
    """Run ``cmd``; return (seconds, peak RSS of the child in MiB, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{err[-3000:]}")
    return elapsed, usage.ru_maxrss / 1024, out.strip()


def _settle(admin, done: str | None) -> None:
    """Drop the database a loader just filled and flush the server's dirty pages.

    Otherwise autovacuum would analyse that loader's million rows while the next one
    runs, and its writes would be checkpointed during the next: each loader gets the
    quiet server the first had.
    """
    with admin.connect() as conn:
        if done:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{done}" WITH (FORCE)'))
        try:
            conn.execute(text("CHECKPOINT"))
        except Exception:  # the role may not checkpoint: the loaders then share the noise
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="features (default 1,000,000)")
    parser.add_argument("--url", help="admin URL (default: $INVENTORY_TEST_POSTGIS_URL)")
    args = parser.parse_args()
    admin, url = admin_engine(args.url)

    DATA.mkdir(exist_ok=True)
    gpkg = DATA / f"synthetic_{args.n}.gpkg"
    if not gpkg.exists():
        # made in a process of its own: a child forked from a process holding the layer
        # would report that process's memory as its own peak (Linux counts the pages
        # shared at the fork in the child's max RSS)
        subprocess.run([sys.executable, "-c", MAKE_DATA, str(args.n), str(gpkg)], check=True)
    n = args.n

    results = {}
    dbs = {
        "ogr2ogr": "bench_ogr2ogr",
        "binary COPY": "bench_copy",
        "inventory import": "bench_tool",
    }
    for db in dbs.values():
        fresh_database(admin, db)
    # ogr2ogr needs the extension in its database; the others create it themselves
    eng = create_engine(url.set(database=dbs["ogr2ogr"]))
    with eng.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    eng.dispose()

    _settle(admin, None)
    pg = (
        f"PG:host={url.host or 'localhost'} port={url.port or 5432} user={url.username} "
        f"password={url.password} dbname={dbs['ogr2ogr']}"
    )
    results["ogr2ogr"] = _run(
        [
            "ogr2ogr",
            "-f",
            "PostgreSQL",
            pg,
            str(gpkg),
            "-nln",
            "spaces",
            "-lco",
            "GEOMETRY_NAME=geom",
            "--config",
            "PG_USE_COPY",
            "YES",
            "-gt",
            "100000",
        ]
    )
    _settle(admin, dbs["ogr2ogr"])
    copy_url = url.set(drivername="postgresql", database=dbs["binary COPY"])
    results["binary COPY"] = _run(
        [sys.executable, "-c", RAW_COPY, copy_url.render_as_string(hide_password=False), str(gpkg)]
    )
    _settle(admin, dbs["binary COPY"])
    tool_url = url.set(database=dbs["inventory import"]).render_as_string(hide_password=False)
    secs, rss, out = _run([sys.executable, "-c", TOOL, tool_url, str(gpkg)])
    loaded, _, sync_s, rights, took = out.split()
    results["inventory import"] = (float(took), rss, out)  # start-up and import, as a user runs it

    floor_url = url.set(drivername="postgresql", database=dbs["inventory import"])
    floor = float(
        _run([sys.executable, "-c", FLOOR, floor_url.render_as_string(hide_password=False)])[2]
    )

    anchor = results["ogr2ogr"][0]
    print(
        f"\nImport of {n:,} features into PostGIS ({_gdal_version()}), ratios vs ogr2ogr in this run"
    )
    print(
        f"{'loader':<18}{'seconds':>10}{'features/s':>14}{'speed vs ogr2ogr':>18}{'peak MiB':>10}"
    )
    for name, (secs, rss, _) in results.items():
        print(f"{name:<18}{secs:>10.1f}{n / secs:>14,.0f}{anchor / secs:>17.2f}x{rss:>10,.0f}")
    print(
        f"{'floor of the schema':<18}{floor:>10.1f}{n / floor:>14,.0f}{anchor / floor:>17.2f}x"
        "   (binary COPY of the valid rows into space with its constraints and indexes)"
    )
    print(
        f"then the tenure records rebuilt for every space (survey columns -> parties and "
        f"rights, deleted and written again through the indexes, as a round changing every "
        f"owner would): {rights} rights for {int(loaded):,} spaces in {float(sync_s):.1f} s "
        "(not in the import's time above)"
    )
    for db in dbs.values():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
    return 0


def _gdal_version() -> str:
    return subprocess.run(["ogr2ogr", "--version"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
