"""The package installs the ordinary way and works outside a source checkout (#11)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the wheel built from this checkout installed in it.

    The wheel's dependencies are taken from the test environment (a path in a .pth file)
    rather than downloaded again; the package itself comes from the wheel only.
    """
    tmp = tmp_path_factory.mktemp("wheel")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            ROOT,
            "--no-deps",
            "--no-build-isolation",
            "-w",
            tmp / "dist",
            "-q",
        ],
        cwd=tmp,
    )
    (wheel,) = (tmp / "dist").glob("stock_space_inventory-*.whl")
    venv = tmp / "venv"
    _run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", venv], cwd=tmp)
    python = venv / "bin" / "python"
    site = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp
    ).stdout.strip()
    Path(site, "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([python, "-m", "pip", "install", "--no-deps", "-q", wheel], cwd=tmp)
    work = tmp / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "INVENTORY_DATABASE_URL"}
    env["COLUMNS"] = "200"  # the report's lines unwrapped
    return venv, work, env


def test_the_wheel_is_the_package_in_use(installed):
    venv, work, env = installed
    where = _run(
        [venv / "bin/python", "-c", "import inventory; print(inventory.__file__)"], work, env
    )
    assert where.stdout.strip().startswith(str(venv))


def test_version(installed):
    venv, work, env = installed
    from inventory import __version__

    out = _run([venv / "bin/inventory", "--version"], work, env).stdout
    assert out.strip() == f"inventory {__version__}"


def test_init_and_demo_from_the_wheel(installed):
    venv, work, env = installed
    init = _run([venv / "bin/inventory", "init", "--db", work / "store.sqlite"], work, env)
    assert "Store ready: SpatiaLite" in init.stdout
    demo = _run([venv / "bin/inventory", "demo"], work, env)
    assert "read 21 = loaded 21 + updated 0 + unchanged 0 + rejected 0" in demo.stdout
    assert (work / "maps" / "demo.html").stat().st_size > 100_000
    samples = _run([venv / "bin/inventory", "sample-data", work / "samples"], work, env)
    assert "jinsong_north_spaces.shp" in samples.stdout


def test_alembic_from_a_checkout(tmp_path):
    """``alembic upgrade head`` and ``alembic check`` still work from the source tree."""
    env = dict(os.environ, INVENTORY_DATABASE_URL=str(tmp_path / "a.sqlite"))
    alembic = Path(sys.executable).parent / "alembic"
    _run([alembic, "upgrade", "head"], ROOT, env)
    check = _run([alembic, "check"], ROOT, env)
    assert "No new upgrade operations detected" in check.stdout + check.stderr


def test_the_public_api_resolves_and_is_typed():
    import inventory

    assert set(inventory.__all__) == {"__version__", *inventory._EXPORTS}
    for name in inventory.__all__:
        assert getattr(inventory, name) is not None, name
    assert (ROOT / "inventory" / "py.typed").exists()


def test_importing_the_package_loads_no_heavy_library():
    code = "import sys, inventory, inventory.cli; print(sorted({'geopandas', 'folium', 'scipy', 'pandas'} & set(sys.modules)))"
    out = _run([sys.executable, "-c", code], ROOT)
    assert out.stdout.strip() == "[]"


def test_notebook_example(tmp_path, sample_dir):
    """The README's Python example, as an analyst runs it."""
    import geopandas as gpd

    import inventory as inv

    store = inv.connect(str(tmp_path / "nb.sqlite"), create=True)
    inv.init(store)
    inv.import_file(store, sample_dir / "jinsong_north_community.shp", communities=True)
    inv.import_file(store, sample_dir / "jinsong_north_spaces.shp")
    spaces = inv.spaces(store)
    assert isinstance(spaces, gpd.GeoDataFrame) and len(spaces) == 21
    gaps, totals = inv.title_gaps_in_store(store)
    bundles, members = inv.bundles_in_store(store, 30)
    assert len(gaps) and len(bundles) and isinstance(bundles, gpd.GeoDataFrame)
    assert inv.capacity_in_store(store, ["kind"])["usable_area_m2"].sum() > 0
    result = inv.estimate_in_store(store, "jinsong_north")
    assert result.summary().loc[0, "revenue_wan"] > 0
    path, n = inv.map_from_store(store, tmp_path / "m.html")
    assert n == 21 and path.exists()
    store.dispose()
