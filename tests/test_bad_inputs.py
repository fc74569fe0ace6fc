"""The bad-input corpus: every case gets a message naming the problem, never a traceback.

Each case is what a surveyor or analyst really hands the tool. Row cases are one CSV row
among good ones: the row is quarantined with its reason and the accounting holds
(read = loaded + updated + unchanged + rejected). File cases are refused whole with a
message and leave the store as it was. Option cases are refused with the flag named.
Everything runs through the command line, on both backends.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from inventory.cli import app
from inventory.models import ImportBatch, Space
from tests.util import LAT0, LON0, count

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def _square(dx: float = 0.0, size: float = 1e-4) -> str:
    x, y = LON0 + dx, LAT0
    return f"POLYGON(({x} {y}, {x + size} {y}, {x + size} {y + size}, {x} {y + size}, {x} {y}))"


GOOD = {"编号": "OK-1", "类型": "门房", "wkt": _square(0.01)}

#: (case, the bad row's fields over a good row's, a fragment of the reason it is rejected for)
ROW_CASES = [
    ("unknown kind", {"类型": "仓库"}, "kind '仓库' is not known"),
    ("empty kind", {"类型": ""}, "kind is empty"),
    ("negative area", {"建筑面积": "-5"}, "floor area"),
    ("zero area", {"建筑面积": "0"}, "floor area"),
    ("absurd area", {"建筑面积": "5000000"}, "implausible"),
    ("area not a number", {"建筑面积": "很大"}, "floor area"),
    ("floors over 100", {"层数": "250"}, "floors"),
    ("floors not whole", {"层数": "2.5"}, "floors"),
    ("parking negative", {"类型": "停车场", "车位数": "-3"}, "parking spaces"),
    ("parking absurd", {"类型": "停车场", "车位数": "9999999"}, "parking spaces"),
    ("bad date", {"调查日期": "32/13/2020"}, "survey date"),
    ("impossible date", {"调查日期": "2021-02-30"}, "survey date"),
    ("bad yes/no", {"争议": "也许"}, "is not yes/no"),
    ("unknown land type", {"土地性质": "租赁地"}, "land type '租赁地' is not known"),
    ("unknown certificate", {"产权证": "某证"}, "certificate status '某证' is not known"),
    ("unknown owner type", {"权属类型": "外星"}, "owner type '外星' is not known"),
    ("unknown vacancy", {"现状": "半半"}, "vacancy '半半' is not known"),
    ("unknown condition", {"房屋状况": "摇摇欲坠x"}, "condition '摇摇欲坠x' is not known"),
    ("reference too long", {"编号": "R" * 101}, "at most 100 fit"),
    ("name too long", {"名称": "名" * 201}, "name is 201 characters long"),
    ("owner too long", {"产权单位": "单" * 201}, "owner name is 201 characters long"),
    ("holder too long", {"经营权人": "h" * 201}, "operating right holder is 201"),
    ("NUL in the notes", {"备注": "a\x00b"}, "NUL character"),
    (
        "right ends before it starts",
        {"经营起始": "2025-01-01", "经营终止": "2024-01-01"},
        "before it starts",
    ),
    ("no reference", {"编号": ""}, "no survey reference"),
    ("no geometry", {"wkt": ""}, "no geometry"),
    (
        "unclosed ring",
        {"wkt": "POLYGON((116.46 39.87, 116.47 39.87, 116.47 39.88))"},
        "cannot be read",
    ),
    ("not WKT", {"wkt": "somewhere near the gate"}, "cannot be read"),
    ("empty polygon", {"wkt": "POLYGON EMPTY"}, "empty geometry"),
    ("a point for a room", {"wkt": f"POINT({LON0} {LAT0})"}, "a point where a polygon is expected"),
    (
        "a parking point without count",
        {"类型": "停车场", "wkt": f"POINT({LON0} {LAT0})"},
        "needs a space count",
    ),
    ("a line", {"wkt": f"LINESTRING({LON0} {LAT0}, {LON0 + 1e-4} {LAT0})"}, ""),
    ("degenerate", {"wkt": _square(0.002, 1e-7)}, "degenerate"),
    (
        "outside China",
        {"wkt": "POLYGON((2.35 48.85, 2.36 48.85, 2.36 48.86, 2.35 48.86, 2.35 48.85))"},
        "outside China",
    ),
    (
        "lat/lon swapped",
        {
            "wkt": f"POLYGON(({LAT0} {LON0}, {LAT0 + 1e-4} {LON0}, {LAT0 + 1e-4} {LON0 + 1e-4}, {LAT0} {LON0 + 1e-4}, {LAT0} {LON0}))"
        },
        "",
    ),
    ("a district, not a room", {"wkt": _square(0.02, 0.5)}, "larger than any stock space"),
    ("duplicate reference", {"编号": "OK-1", "wkt": _square(0.004)}, "appears more than once"),
]


def _csv(path: Path, rows: list[dict]) -> Path:
    columns = sorted({k for r in rows for k in r}, key=lambda k: (k != "编号", k))
    lines = [",".join(columns)]
    for r in rows:
        lines.append(",".join('"' + str(r.get(c, "")).replace('"', '""') + '"' for c in columns))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _import(db_url, *args) -> tuple[int, str]:
    result = runner.invoke(app, ["import", *map(str, args), "--db", db_url])
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize(("case", "fields", "reason"), ROW_CASES, ids=[c[0] for c in ROW_CASES])
def test_a_bad_row_is_quarantined_with_its_reason(engine, db_url, tmp_path, case, fields, reason):
    bad = {**GOOD, "编号": "BAD-1", "wkt": _square(0.006), **fields}
    path = _csv(tmp_path / "rows.csv", [GOOD, bad])
    report = tmp_path / "report.json"
    code, output = _import(
        db_url, path, "--crs", "EPSG:4326", "--community", "测试社区", "--report", report
    )
    assert code in (0, 1) and "Traceback" not in output, output  # 1: nothing could be imported
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["read"] == data["loaded"] + data["updated"] + data["unchanged"] + data["rejected"]
    rejected = [i for i in data["issues"] if i["status"] == "rejected"]
    assert data["rejected"] >= 1 and rejected, output
    assert reason in "; ".join(r for i in rejected for r in i["reasons"]), (case, rejected)
    assert count(engine, ImportBatch) == 1


def _shapefile(tmp_path: Path) -> Path:
    for f in (ROOT / "sample_data").glob("jinsong_north_spaces.*"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / "jinsong_north_spaces.shp"


def _xlsx(path: Path, rows: list[list], sheets: dict | None = None) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "数据"
    for row in rows:
        sheet.append(row)
    for name, extra in (sheets or {}).items():
        other = book.create_sheet(name)
        for row in extra:
            other.append(row)
    book.save(path)
    return path


def _file_case(name: str, tmp_path: Path) -> list:
    """Write the file of a file case; return the import's arguments."""
    if name == "empty file":
        (tmp_path / "e.shp").write_bytes(b"")
        return [tmp_path / "e.shp"]
    if name in ("no .dbf", "no .shx", "junk .prj", "no .prj", "wrong .cpg", "truncated"):
        shp = _shapefile(tmp_path)
        if name == "no .dbf":
            shp.with_suffix(".dbf").unlink()
        elif name == "no .shx":
            shp.with_suffix(".shx").unlink()
        elif name == "junk .prj":
            shp.with_suffix(".prj").write_text("not a projection")
        elif name == "no .prj":
            shp.with_suffix(".prj").unlink()
        elif name == "wrong .cpg":
            shp.with_suffix(".cpg").write_text("UTF-8")
        else:
            shp.write_bytes(shp.read_bytes()[:150])
        return [shp]
    if name == "missing file":
        return [tmp_path / "nowhere.shp"]
    if name == "old .xls":
        (tmp_path / "a.xls").write_bytes(b"\xd0\xcf\x11\xe0" + b"\x00" * 100)
        return [tmp_path / "a.xls"]
    if name == "damaged .xlsx":
        (tmp_path / "a.xlsx").write_bytes(b"PK\x03\x04 not really")
        return [tmp_path / "a.xlsx"]
    if name == "formulas without values":
        return [
            _xlsx(
                tmp_path / "f.xlsx",
                [["编号", "类型", "建筑面积", "wkt"], ["A", "门房", "=10*2", _square()]],
            ),
            "--crs",
            "EPSG:4326",
        ]
    if name == "data on the second sheet":
        return [
            _xlsx(
                tmp_path / "s.xlsx",
                [["说明"], ["本表为汇总"]],
                {"空间": [["编号", "类型", "wkt"], ["A", "门房", _square()]]},
            )
        ]
    if name == "no such sheet":
        return [
            _xlsx(tmp_path / "t.xlsx", [["编号", "类型", "wkt"], ["A", "门房", _square()]]),
            "--layer",
            "别的",
        ]
    if name == "csv without geometry":
        return [_csv(tmp_path / "n.csv", [{"编号": "A", "类型": "门房"}])]
    if name == "csv without a CRS":
        return [_csv(tmp_path / "c.csv", [GOOD])]
    if name == "csv in an unknown encoding":
        (tmp_path / "u.csv").write_bytes("编号,类型\n".encode() + bytes(range(0x80, 0xFF)))
        return [tmp_path / "u.csv", "--crs", "EPSG:4326"]
    if name == "ragged csv":
        (tmp_path / "r.csv").write_text(
            '编号,类型,wkt\nA,门房,"x",1,2,3\nB\n"unclosed', encoding="utf-8"
        )
        return [tmp_path / "r.csv", "--crs", "EPSG:4326"]
    if name == "geojson with an unknown crs":
        doc = {
            "type": "FeatureCollection",
            "crs": {"type": "name", "properties": {"name": "EPSG:999999"}},
            "features": [],
        }
        (tmp_path / "g.geojson").write_text(json.dumps(doc))
        return [tmp_path / "g.geojson"]
    if name == "geojson with no features":
        (tmp_path / "z.geojson").write_text('{"type": "FeatureCollection", "features": []}')
        return [tmp_path / "z.geojson"]
    if name == "not json":
        (tmp_path / "j.geojson").write_text("{ this is not")
        return [tmp_path / "j.geojson"]
    if name == "geopackage with two layers":
        return [ROOT / "sample_data" / "jinsong_north.gpkg"]
    if name == "zip without a shapefile":
        with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
            z.writestr("readme.txt", "nothing here")
        return [tmp_path / "a.zip"]
    if name == "unknown --crs":
        return [_csv(tmp_path / "k.csv", [GOOD]), "--crs", "EPSG:99999999"]
    if name == "unknown --encoding":
        return [_shapefile(tmp_path), "--encoding", "klingon"]
    if name == "bad --map":
        return [_csv(tmp_path / "m.csv", [GOOD]), "--crs", "EPSG:4326", "--map", "nothing"]
    if name == "--map to no field":
        return [_csv(tmp_path / "m.csv", [GOOD]), "--crs", "EPSG:4326", "--map", "类型=colour"]
    if name == "--map of no column":
        return [
            _csv(tmp_path / "m.csv", [GOOD]),
            "--crs",
            "EPSG:4326",
            "--map",
            "面积=floor_area_m2",
        ]
    if name == "no kind column":
        return [_csv(tmp_path / "k.csv", [{"编号": "A", "wkt": _square()}]), "--crs", "EPSG:4326"]
    if name == "report with a bad suffix":
        return [
            _csv(tmp_path / "p.csv", [GOOD]),
            "--crs",
            "EPSG:4326",
            "--report",
            tmp_path / "r.txt",
        ]
    if name == "report in a missing folder":
        return [
            _csv(tmp_path / "p.csv", [GOOD]),
            "--crs",
            "EPSG:4326",
            "--report",
            tmp_path / "no" / "r.csv",
        ]
    if name == "missing profile":
        return [_csv(tmp_path / "p.csv", [GOOD]), "--profile", tmp_path / "none.json"]
    if name == "community name too long":
        return [_csv(tmp_path / "p.csv", [GOOD]), "--crs", "EPSG:4326", "--community", "社" * 201]
    raise AssertionError(name)


#: (case, a fragment of the message)
FILE_CASES = [
    ("empty file", "is empty (0 bytes)"),
    ("no .dbf", ".dbf"),
    ("no .shx", ".shx"),
    ("junk .prj", "does not describe a coordinate system"),
    ("no .prj", "has no .prj file"),
    ("wrong .cpg", ".cpg says"),
    ("truncated", "jinsong_north_spaces.shp"),
    ("missing file", "nowhere.shp"),
    ("old .xls", "save it as .xlsx"),
    ("damaged .xlsx", "cannot be read as a spreadsheet"),
    ("formulas without values", "formulas whose values were never saved (first: C2 =10*2)"),
    ("data on the second sheet", "sheet '空间' has: import it with --layer 空间"),
    ("no such sheet", "has no sheet '别的'"),
    ("csv without geometry", "has no geometry"),
    ("csv without a CRS", "has no coordinate reference system"),
    ("csv in an unknown encoding", "encoding"),
    ("ragged csv", "cannot be read as CSV"),
    ("geojson with an unknown crs", "which is not a known CRS"),
    ("geojson with no features", "holds no features"),
    ("not json", "j.geojson"),
    ("geopackage with two layers", "--layer NAME, or import them all with --all-layers"),
    ("zip without a shapefile", "a.zip: readme.txt has no geometry"),
    ("unknown --crs", "--crs 'EPSG:99999999' is not a coordinate reference system"),
    ("unknown --encoding", "klingon"),
    ("bad --map", "--map nothing must be COLUMN=FIELD"),
    ("--map to no field", "'colour' is not a field"),
    ("--map of no column", "the file has no column '面积'"),
    ("no kind column", "no column gives the kind of space"),
    ("report with a bad suffix", "give a .json or .csv file name"),
    ("report in a missing folder", "is missing or not writable"),
    ("missing profile", "none.json"),
    ("community name too long", "community is 201 characters long"),
]


@pytest.mark.parametrize(("case", "message"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_a_bad_file_is_refused_whole_with_a_message(engine, db_url, tmp_path, case, message):
    args = _file_case(case, tmp_path)
    if "--community" not in args:
        args += ["--community", "测试社区"]
    code, output = _import(db_url, *args)
    assert code == 1, output
    assert "Error:" in output and "Traceback" not in output
    assert message in output.replace("\n", " "), output
    assert count(engine, ImportBatch) == 0 and count(engine, Space) == 0


#: (case, command line, a fragment of the message)
OPTION_CASES = [
    ("gap not a number", ["bundles", "--max-gap", "nan"], "--max-gap nan must be 0 m or more"),
    ("negative gap", ["bundles", "--max-gap", "-1"], "--max-gap -1 must be 0 m or more"),
    ("unknown kind", ["bundles", "--kind", "仓库"], "--kind '仓库' is not a kind"),
    (
        "radius too large",
        ["capacity", "--near", "116.4655,39.8795", "--radius", "1e309"],
        "--radius inf",
    ),
    (
        "near without radius",
        ["capacity", "--near", "116.4655,39.8795"],
        "--near and --radius go together",
    ),
    (
        "near not a point",
        ["capacity", "--near", "here", "--radius", "50"],
        "--near 'here' must be LON,LAT",
    ),
    ("near lat first", ["capacity", "--near", "39.88,116.46", "--radius", "50"], ""),
    ("unknown grouping", ["capacity", "--by", "colour"], "--by 'colour': group by one or more of"),
    ("unknown language", ["map", "{tmp}/m.html", "--lang", "fr"], "--lang 'fr': use zh or en"),
    ("unknown mode", ["map", "{tmp}/m.html", "--mode", "3d"], "--mode '3d'"),
    ("unknown tiles", ["map", "{tmp}/m.html", "--tiles", "google"], "--tiles 'google'"),
    ("unknown period", ["revenue", "--period", "week"], "--period 'week' is not a period"),
    (
        "format against suffix",
        ["gaps", "--output", "{tmp}/y.csv", "--format", "xlsx"],
        "its suffix says csv",
    ),
    ("unknown format", ["gaps", "--output", "{tmp}/y.docx"], "Cannot write 'y.docx'"),
    ("format without output", ["gaps", "--format", "csv"], "--format needs --output"),
    ("output is a folder", ["spaces", "--output", "{tmp}"], ""),
    (
        "negative warning period",
        ["gaps", "--expiring-months", "-3"],
        "--expiring-months -3 must be 0 or more",
    ),
    (
        "unknown community",
        ["spaces", "--community", "劲松"],
        "--community '劲松' is not in the store",
    ),
    ("unknown batch", ["rejects", "--batch", "99"], "--batch 99 is not an import batch"),
    ("missing scenario", ["revenue", "--scenario", "{tmp}/none.toml"], "none.toml"),
    ("need of no area", ["capacity", "--need-area", "0"], "--need-area 0"),
]


@pytest.mark.parametrize(
    ("case", "args", "message"), OPTION_CASES, ids=[c[0] for c in OPTION_CASES]
)
def test_a_bad_option_is_refused_naming_the_flag(sample, db_url, tmp_path, case, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    result = runner.invoke(app, [*args, "--db", db_url])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Error:" in result.output and message in result.output.replace("\n", " "), result.output


def test_the_corpus_has_sixty_cases_or_more():
    assert len(ROW_CASES) + len(FILE_CASES) + len(OPTION_CASES) >= 60


def test_a_store_that_is_not_a_database(tmp_path):
    fake = tmp_path / "passwd"
    fake.write_text("root:x:0:0:root:/root:/bin/bash\n")
    result = runner.invoke(app, ["info", "--db", str(fake)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "(file is not a database). Give the path of an inventory store" in result.output


def test_a_read_only_store(tmp_path, spatialite_template):
    import os

    path = tmp_path / "ro.sqlite"
    shutil.copyfile(spatialite_template, path)
    os.chmod(path, 0o444)
    os.chmod(tmp_path, 0o555)
    try:
        csv = Path(os.environ.get("TMPDIR", "/tmp")) / f"ro-{os.getpid()}.csv"
        _csv(csv, [GOOD])
        result = runner.invoke(
            app, ["import", str(csv), "--crs", "EPSG:4326", "--community", "X", "--db", str(path)]
        )
    finally:
        os.chmod(tmp_path, 0o755)
        os.chmod(path, 0o644)
    if os.geteuid() == 0:
        # root writes read-only files anyway: the import simply works
        assert result.exit_code in (0, 1) and "Traceback" not in result.output
    else:
        assert result.exit_code == 1 and "Error:" in result.output
