"""The command line: exit codes, messages a person can act on, help with examples."""

from __future__ import annotations

import subprocess
import sys

import pyogrio
import pytest
import typer
from typer.testing import CliRunner

from inventory.cli import app

runner = CliRunner()
COMMANDS = [
    "init",
    "info",
    "import",
    "spaces",
    "rejects",
    "gaps",
    "bundles",
    "capacity",
    "revenue",
    "map",
    "export",
    "demo",
    "sample-data",
    "roles",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert "inventory " + command in result.output
    # each example on a line of its own, as written, not run together by the wrapper
    shown = result.output.split("Example:")[1].split("Options:")[0].split("Arguments:")[0]
    written = typer.main.get_command(app).commands[command].help.split("Example:")[1]
    want = [
        line.strip()
        for line in written.splitlines()
        if line.strip().startswith(("inventory", "INVENTORY"))
    ]
    assert want and [line.strip() for line in shown.strip().splitlines()] == want


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_in_the_readme(command):
    readme = (__import__("pathlib").Path(__file__).parent.parent / "README.md").read_text()
    assert f"inventory {command}" in readme


def test_info_before_init(tmp_path):
    result = runner.invoke(app, ["info", "--db", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 1
    assert "No inventory store at" in result.output and "inventory init" in result.output


def test_init_info_import_spaces_rejects(db_url, sample_dir, tmp_path):
    assert runner.invoke(app, ["init", "--db", db_url]).exit_code == 0
    result = runner.invoke(
        app,
        [
            "import",
            str(sample_dir / "jinsong_north_community.shp"),
            "--communities",
            "--db",
            db_url,
        ],
    )
    assert result.exit_code == 0, result.output
    bad = tmp_path / "bad.csv"
    bad.write_text('编号,类型,wkt\nX1,仓库,"POINT(116.46 39.88)"\n', encoding="utf-8")
    result = runner.invoke(
        app,
        [
            "import",
            str(sample_dir / "jinsong_north_spaces.shp"),
            str(sample_dir / "jinsong_north_parking_points.shp"),
            "--report",
            str(tmp_path / "r.csv"),
            "--db",
            db_url,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "read 21 = loaded 21 + updated 0 + unchanged 0 + rejected 0" in result.output
    assert (tmp_path / "r.csv").exists()
    # a file whose every feature is rejected: non-zero exit, and the reason shown
    result = runner.invoke(
        app, ["import", str(bad), "--crs", "EPSG:4326", "--community", "劲松北社区", "--db", db_url]
    )
    assert result.exit_code == 1
    assert "kind '仓库' is not known" in result.output
    result = runner.invoke(app, ["rejects", "--db", db_url])
    assert result.exit_code == 0 and "X1" in result.output
    result = runner.invoke(app, ["info", "--db", db_url])
    assert "1 communities" in result.output and "22 spaces" in result.output
    assert "600" in result.output  # parking spaces
    out = tmp_path / "boiler.geojson"
    result = runner.invoke(
        app, ["spaces", "--kind", "锅炉房", "--output", str(out), "--db", db_url]
    )
    assert result.exit_code == 0 and "1 spaces written" in result.output
    import pyogrio

    gdf = pyogrio.read_dataframe(out)
    assert gdf["survey_ref"].tolist() == ["JS-013"] and gdf["kind_zh"].tolist() == ["锅炉房"]


@pytest.mark.parametrize("fmt", ["csv", "json", "geojson", "gpkg", "xlsx"])
def test_spaces_export_formats_open(engine, db_url, sample_dir, tmp_path, fmt):
    from inventory.importer import import_file

    import_file(engine, sample_dir / "jinsong_north_spaces.shp", community="劲松北社区")
    out = tmp_path / f"spaces.{fmt}"
    result = runner.invoke(app, ["spaces", "--output", str(out), "--db", db_url])
    assert result.exit_code == 0, result.output
    if fmt in ("geojson", "gpkg"):
        import pyogrio

        assert len(pyogrio.read_dataframe(out)) == 21
    elif fmt == "xlsx":
        import openpyxl

        assert openpyxl.load_workbook(out).active.max_row == 22
    elif fmt == "csv":
        assert "原锅炉房" in out.read_text(encoding="utf-8-sig")
    else:
        import json

        assert len(json.loads(out.read_text(encoding="utf-8"))) == 21


def test_long_results_show_their_first_rows_and_say_how_to_get_all(
    engine, db_url, tmp_path, monkeypatch
):
    from inventory import cli
    from inventory.importer import import_file
    from tests.util import rooms, write

    import_file(engine, write(rooms(12), tmp_path / "rooms.gpkg"), community="测试社区")
    monkeypatch.setattr(cli, "TERMINAL_ROWS", 5)
    result = runner.invoke(app, ["spaces", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert "R-004" in result.output and "R-005" not in result.output
    assert "The first 5 of 12 rows; --output FILE writes them all." in result.output
    result = runner.invoke(app, ["bundles", "--max-gap", "1000", "--db", db_url])
    assert "The first" not in result.output  # one bundle: all shown
    result = runner.invoke(app, ["gaps", "--db", db_url])  # every room lacks a title
    assert "The first 5 of 12 rows" in result.output
    import_file(engine, write(rooms(6, 类型="门房"), tmp_path / "gates.gpkg"), community="二社区")
    result = runner.invoke(app, ["info", "--db", db_url])
    assert "The first" not in result.output  # 2 communities × 1 kind
    monkeypatch.setattr(cli, "TERMINAL_ROWS", 1)
    result = runner.invoke(app, ["info", "--db", db_url])
    assert "The first 1 of 2 rows; inventory capacity --by community,kind" in result.output
    import_file(engine, write(rooms(3, 类型="仓库"), tmp_path / "bad.gpkg"), community="测试社区")
    result = runner.invoke(app, ["rejects", "--db", db_url])  # a kind nobody knows
    assert "3 open rejected features" in result.output and "The first 1 of 3 rows" in result.output


def test_unreadable_file_exit_code_and_message(db_url, tmp_path):
    empty = tmp_path / "e.shp"
    empty.write_bytes(b"")
    result = runner.invoke(app, ["import", str(empty), "--db", db_url])
    assert result.exit_code == 1
    assert "is empty (0 bytes)" in result.output


def test_gpkg_written_after_spatialite_is_loaded(tmp_path):
    # Regression: loading mod_spatialite first made GDAL bind to the OS libraries and crash.
    code = f"""
from inventory.db import connect
from inventory import store
e = connect({str(tmp_path / "s.sqlite")!r}, create=True)
store.init(e)
import geopandas as gpd, shapely, pyogrio
g = gpd.GeoDataFrame({{"a": ["锅炉房"] * 50}}, geometry=[shapely.box(0, 0, 1, 1)] * 50, crs=4326)
for i in range(5):
    pyogrio.write_dataframe(g, {str(tmp_path)!r} + f"/o{{i}}.gpkg")
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_demo_runs_the_main_job(tmp_path):
    result = runner.invoke(
        app, ["demo", "--db", str(tmp_path / "demo.sqlite"), "--out-dir", str(tmp_path / "maps")]
    )
    assert result.exit_code == 0, result.output
    assert "read 21 = loaded 21" in result.output
    layers = {name for name, _ in pyogrio.list_layers(tmp_path / "maps" / "demo_inventory.gpkg")}
    assert {"spaces", "gaps", "bundles", "capacity", "canteen_hosts"} <= layers
    assert "B0001" in result.output and "allocated_land" in result.output
    page = (tmp_path / "maps" / "demo.html").read_text(encoding="utf-8")
    assert "L.map(" in page and 'src="http' not in page
    assert "inventoryMapTools" in page  # north arrow, metric scale, search, print
    pack = (tmp_path / "maps" / "demo_pack.html").read_text(encoding="utf-8")
    assert "劲松北社区 存量空间资源会议资料" in pack and "更新模式比较" in pack
    assert "demo_pack.html" in result.output
    assert types_of(tmp_path / "maps" / "demo_inventory.gpkg")["spaces"] == "MultiPolygon"


def types_of(path) -> dict:
    return dict(pyogrio.list_layers(path))


@pytest.mark.parametrize(
    "args",
    [
        ["spaces"],
        ["gaps"],
        ["bundles"],
        ["capacity"],
        ["capacity", "--by", "tenure_status"],
        ["revenue"],
        ["export", "{tmp}/x.gpkg"],
        ["map", "{tmp}/m.html"],
    ],
)
def test_a_mistyped_community_is_named_with_those_there_are(sample, db_url, tmp_path, args):
    args = [a.format(tmp=tmp_path) for a in args]
    result = runner.invoke(app, [*args, "--community", "劲松", "--db", db_url])
    assert result.exit_code == 1
    assert "--community '劲松' is not in the store" in result.output
    assert "Communities in the store: 劲松北社区." in result.output
    assert not list(tmp_path.glob("x.gpkg")) and not list(tmp_path.glob("m.html"))


def test_an_unknown_batch_is_named_with_those_there_are(sample, db_url):
    for command in ("spaces", "rejects"):
        result = runner.invoke(app, [command, "--batch", "99", "--db", db_url])
        assert result.exit_code == 1
        assert "--batch 99 is not an import batch: batches are 1 to 3" in result.output


def test_an_empty_store_says_to_import_first(db_url):
    result = runner.invoke(app, ["gaps", "--community", "劲松北社区", "--db", db_url])
    assert result.exit_code == 1
    assert "The store holds no communities yet: import a survey first." in result.output


# ---- conventions of #11 ---------------------------------------------------------------


def test_library_messages_name_flags_on_the_command_line(sample, db_url):
    result = runner.invoke(app, ["bundles", "--max-gap", "-5", "--db", db_url])
    assert result.exit_code == 1
    assert "--max-gap -5 must be 0 m or more" in result.output
    result = runner.invoke(app, ["map", "--kind", "仓库", "--db", db_url])
    assert result.exit_code == 1 and "--kind '仓库' is not a kind" in result.output
    result = runner.invoke(app, ["spaces", "--kind", "仓库", "--db", db_url])
    assert result.exit_code == 1 and "--kind '仓库' is not a kind" in result.output


def test_the_library_speaks_of_its_parameters(sample, engine):
    from inventory.bundles import find_bundles
    from inventory.errors import InputError

    with pytest.raises(InputError, match="`max_gap_m=-5` must be 0 m or more") as err:
        find_bundles(sample, -5)
    assert "--" not in str(err.value)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_output_dash_writes_to_stdout(sample, db_url, fmt):
    import io
    import json

    import pandas as pd

    result = runner.invoke(app, ["spaces", "--output", "-", "--format", fmt, "--db", db_url])
    assert result.exit_code == 0, result.output
    if fmt == "csv":
        frame = pd.read_csv(io.StringIO(result.stdout))
    else:
        frame = pd.DataFrame(json.loads(result.stdout))
    assert len(frame) == 22 and "JS-013" in set(frame["survey_ref"])


def test_quiet_prints_nothing_but_errors(sample, db_url, tmp_path):
    result = runner.invoke(app, ["-q", "gaps", "--db", db_url])
    assert result.exit_code == 0 and result.output == ""
    result = runner.invoke(app, ["-q", "gaps", "--community", "劲松", "--db", db_url])
    assert result.exit_code == 1 and "is not in the store" in result.output


def test_a_suffix_and_a_format_that_disagree_are_refused(sample, db_url, tmp_path):
    result = runner.invoke(
        app, ["gaps", "--output", str(tmp_path / "y.csv"), "--format", "xlsx", "--db", db_url]
    )
    assert result.exit_code == 1
    assert "its suffix says csv" in result.output and "--format" in result.output
    assert not (tmp_path / "y.csv").exists()


def test_narrow_terminals_never_cut_identifiers_or_money(sample, db_url, monkeypatch):
    from inventory import cli

    monkeypatch.setattr(cli.console, "width", 80)
    monkeypatch.setattr(cli.console, "_width", 80, raising=False)
    for args in (["spaces"], ["gaps"], ["bundles"], ["revenue"], ["capacity"]):
        result = runner.invoke(app, [*args, "--db", db_url])
        assert result.exit_code == 0, result.output
        assert "…" not in result.output, (args, result.output)
    result = runner.invoke(app, ["spaces", "--db", db_url])
    assert "JS-013" in result.output and "3,000" in result.output


def test_text_from_the_data_is_not_markup_or_escape_codes(engine, db_url, tmp_path, monkeypatch):
    from inventory import cli
    from inventory.importer import import_file
    from tests.util import frame, room, write

    rows = [
        {
            "编号": "M-1",
            "类型": "门房",
            "产权单位": "[bold red]x[/] [/oops] \x1b[31mred",
            "geometry": room(0, 0),
        }
    ]
    import_file(engine, write(frame(rows), tmp_path / "m.geojson"), community="测试社区")
    monkeypatch.setattr(cli.console, "width", 250)
    result = runner.invoke(app, ["spaces", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert "[bold red]x[/]" in result.output and "\x1b[31m" not in result.output
    assert "\u241b[31mred" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bundles", "--max-gap", "nan"], "--max-gap nan must be 0 m or more"),
        (["bundles", "--min-area", "inf"], "--min-area inf must be 0 m² or more"),
        (["capacity", "--near", "116.4655,39.8795", "--radius", "1e309"], "--radius inf"),
        (["capacity", "--need-area", "nan"], "--need-area nan"),
    ],
)
def test_absurd_numbers_are_refused(sample, db_url, args, message):
    result = runner.invoke(app, [*args, "--db", db_url])
    assert result.exit_code == 1 and message in result.output, result.output


def test_a_polygon_the_size_of_a_district_is_quarantined(engine, db_url, tmp_path):
    from inventory.importer import import_file
    from tests.util import frame, room, write

    rows = [
        {"编号": "BIG", "类型": "闲置空地", "geometry": room(0, 0, 30_000, 38_000)},
        {"编号": "OK", "类型": "门房", "geometry": room(0, 0)},
    ]
    (report,) = import_file(engine, write(frame(rows), tmp_path / "big.geojson"), community="X")
    assert (report.loaded, report.rejected) == (1, 1)
    (issue,) = [i for i in report.issues if i.status == "rejected"]
    assert issue.survey_ref == "BIG" and "larger than any stock space" in issue.reasons[0]
