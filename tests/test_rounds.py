"""Survey rounds: a second delivery of the Jinsong sample (a phone map's KML with new
references, a workbook with a title row and units in its headers, rejects fixed and
imported back) goes in with its duplicates flagged, its rejects resolved, and history,
batches and diff saying what changed; retired spaces leave the analyses."""

from __future__ import annotations

import zipfile

import openpyxl
import pyogrio
import pytest
from typer.testing import CliRunner

from inventory import listing, rounds, store
from inventory.capacity import capacity_in_store
from inventory.cli import app
from inventory.errors import InputError
from inventory.gaps import title_gaps_in_store
from inventory.importer import import_file
from inventory.importer.sources import description_fields
from inventory.samples import ROUND2_KML, ROUND2_XLSX, write_second_round
from tests.util import frame, room

COMMUNITY = "劲松北社区"
ALIASES = {"kind": {"仓库": "service_room"}}


@pytest.fixture(scope="module")
def round2(tmp_path_factory):
    out = tmp_path_factory.mktemp("round2")
    write_second_round(out)
    return out


def _kml(engine, round2, **options):
    (report,) = import_file(engine, round2 / ROUND2_KML, community=COMMUNITY, **options)
    return report


def _xlsx(engine, path, **options):
    (report,) = import_file(engine, path, community=COMMUNITY, crs="EPSG:4326", **options)
    return report


def test_the_same_rooms_under_new_references_are_flagged_as_duplicates(engine, sample, round2):
    report = _kml(engine, round2)
    # the map app's fields came out of each placemark's description table
    assert report.fields["编号"] == "survey_ref" and report.fields["类型"] == "kind"
    assert report.fields["建筑面积（㎡）"] == "floor_area_m2"  # the unit in the header
    assert report.loaded == 5 and report.rejected == 0
    pairs = {new: old for new, old, _ in report.duplicates}
    assert pairs == {f"R2-0{i}": f"JS-00{i}" for i in range(1, 6)}
    assert all("outlines overlap" in how for *_, how in report.duplicates)
    rows, _ = title_gaps_in_store(engine)
    flags = rows.set_index("survey_ref")["quality_flags"]
    assert any("probable duplicate of JS-003 in the store" in f for f in flags["R2-03"])
    # a room elsewhere is no duplicate of anything
    lone = frame([{"编号": "X-1", "类型": "门房", "geometry": room(2000, 2000)}])
    path = round2.parent / "lone.gpkg"
    pyogrio.write_dataframe(lone, path)
    (alone,) = import_file(engine, path, community=COMMUNITY)
    assert alone.loaded == 1 and alone.duplicates == []


def test_a_kmz_from_a_phone_map_reads_as_its_kml(engine, sample, round2, tmp_path):
    kmz = tmp_path / "劲松北二轮.kmz"
    with zipfile.ZipFile(kmz, "w") as archive:  # as Google Earth and 奥维 write it
        archive.write(round2 / ROUND2_KML, "doc.kml")
        archive.writestr("files/icon.png", b"\x89PNG\r\n")
    (report,) = import_file(engine, kmz, community=COMMUNITY, match_geometry=True)
    assert report.updated == 5 and report.rejected == 0
    assert report.fields["编号"] == "survey_ref"
    broken = tmp_path / "broken.kmz"
    broken.write_bytes(b"<kml>not zipped</kml>")
    with pytest.raises(InputError, match="not a readable KMZ"):
        import_file(engine, broken, community=COMMUNITY)


def test_a_resurvey_without_stable_references_updates_by_location(engine, sample, round2):
    before = len(listing.spaces(engine))
    report = _kml(engine, round2, match_geometry=True)
    assert report.loaded == 0 and report.updated == 5 and report.duplicates == []
    assert sorted(old for _, old, _ in report.matched) == [f"JS-00{i}" for i in range(1, 6)]
    after = listing.spaces(engine)
    assert len(after) == before and not after["survey_ref"].str.startswith("R2-").any()
    changes = rounds.history(engine, "JS-003")
    assert "geometry" in set(changes["field"])
    # tenure the map app does not carry is kept: the file has no owner column
    assert after.set_index("survey_ref").loc["JS-003", "owner_name"] is not None


def test_a_workbook_with_a_title_row_units_and_a_partial_delivery(engine, sample, round2):
    owners = listing.spaces(engine).set_index("survey_ref")["owner_name"]
    report = _xlsx(engine, round2 / ROUND2_XLSX)
    assert report.fields["建筑面积（㎡）"] == "floor_area_m2"
    assert (report.updated, report.rejected) == (2, 2)
    # rows as Excel numbers them: a title in row 1, the header in row 2
    rejected = {i.survey_ref: i.row for i in report.issues if i.status == "rejected"}
    assert rejected == {"JS-017": 5, "JS-018": 6}
    changes = {(c.survey_ref, c.field): (c.old, c.new) for c in report.changes}
    assert changes[("JS-009", "floor_area_m2")] == ("200.0", "230.0")
    assert changes[("JS-012", "vacancy")] == ("in_use", "idle")
    # the workbook has no tenure columns: nothing of the stored tenure changes
    assert not any(field == "owner_name" for _, field in changes)
    now = listing.spaces(engine).set_index("survey_ref")
    assert now.loc["JS-009", "owner_name"] == owners["JS-009"]
    assert now.loc["JS-009", "usable_area_m2"] == 170.0  # surveyed in round 1, not derived


@pytest.mark.parametrize("suffix", ["xlsx", "gpkg", "csv"])
def test_rejects_are_fixed_where_they_came_from_and_resolved(
    engine, sample, round2, tmp_path, suffix
):
    batch = _xlsx(engine, round2 / ROUND2_XLSX).batch_id
    assert store.info(engine).rejected == 2
    fix, hint = listing.rejects_to_fix(engine)
    assert list(fix.columns[:3]) == ["编号", "名称", "类型"] and "rejected_because" in fix
    assert fix.crs.to_epsg() == 4326 and hint == "--crs EPSG:4326"
    assert fix.geometry.notna().all()
    path = tmp_path / f"fix.{suffix}"
    runner = CliRunner()
    url = engine.url.render_as_string(hide_password=False)
    written = runner.invoke(app, ["rejects", "--output", str(path), "--db", url])
    assert written.exit_code == 0 and "import the file back" in written.output, written.output
    # the surveyor fixes the area in the file and names the storeroom in a profile
    if suffix == "gpkg":
        table = pyogrio.read_dataframe(path)
        table.loc[table["编号"] == "JS-018", "建筑面积（㎡）"] = 80
        pyogrio.write_dataframe(table, path, layer="rejects")
    elif suffix == "csv":
        text = path.read_text(encoding="utf-8-sig").replace(",-80", ",80").replace(",-80.0", ",80")
        path.write_text(text, encoding="utf-8-sig")
    else:
        book = openpyxl.load_workbook(path)
        sheet = book.active
        header = [c.value for c in sheet[1]]
        for row in sheet.iter_rows(min_row=2):
            if row[header.index("编号")].value == "JS-018":
                row[header.index("建筑面积（㎡）")].value = 80
        book.save(path)
    again = _xlsx(engine, path, value_aliases=ALIASES)
    assert (again.loaded, again.rejected, again.rejects_resolved) == (2, 0, 2)
    assert "rejected_because" not in again.unmapped  # a note of the inventory's, not survey data
    info = store.info(engine)
    assert (info.rejected, info.rejects_resolved) == (0, 2)
    assert listing.rejects(engine).empty
    resolved = listing.rejects(engine, resolved=True)
    assert set(resolved["resolved_batch_id"]) == {again.batch_id} and set(resolved["batch_id"]) == {
        batch
    }
    kinds = listing.spaces(engine).set_index("survey_ref")["kind"]
    assert kinds["JS-017"] == "service_room"
    with pytest.raises(InputError, match="No open rejects"):
        listing.rejects_to_fix(engine)


def test_batches_history_and_the_diff_of_two_rounds(engine, sample, round2, tmp_path):
    kml = _kml(engine, round2, match_geometry=True).batch_id
    xlsx = _xlsx(engine, round2 / ROUND2_XLSX, value_aliases=ALIASES).batch_id
    table = rounds.batches(engine)
    assert list(table["batch_id"]) == [1, 2, 3, kml, xlsx]
    last = table.set_index("batch_id").loc[xlsx]
    assert (last["file"], last["read"], last["updated"], last["rejected"]) == (ROUND2_XLSX, 4, 2, 1)
    assert last["rejects_open"] == 1  # JS-018's area
    story = rounds.history(engine, "JS-012")
    assert story["field"].tolist()[0] == "(loaded)"
    assert {"vacancy", "current_use"} <= set(story["field"])
    assert set(rounds.history(engine, batch=xlsx)["survey_ref"]) == {"JS-009", "JS-012", "JS-017"}
    result = rounds.diff(engine, 2, [kml, xlsx])
    assert set(result.added["survey_ref"]) == {"JS-017"}
    assert "JS-013" in set(result.removed["survey_ref"])  # not surveyed again
    changed = result.changed.set_index(["survey_ref", "field"])
    assert changed.loc[("JS-009", "floor_area_m2"), "new_value"] == "230.0"
    assert ("JS-003", "geometry") in changed.index
    with pytest.raises(InputError, match="earlier round first"):
        rounds.diff(engine, xlsx, 2)
    with pytest.raises(InputError, match="not an import batch"):
        rounds.diff(engine, 2, 99)


def test_round_commands(engine, sample, round2, db_url, tmp_path):
    runner = CliRunner()
    done = runner.invoke(
        app,
        [
            "import", str(round2 / ROUND2_XLSX), "--sheet", "第二轮", "--header-row", "2",
            "--crs", "EPSG:4326", "--community", COMMUNITY, "--db", db_url,
        ],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    flat = " ".join(done.output.split())
    assert "Updated fields" in flat and "floor_area_m2 200.0 → 230.0" in flat
    for args, expect in (
        (["batches", "--output", "-"], "jinsong_north_round2.xlsx"),
        (["history", "JS-009"], "floor_area_m2"),
        (["diff", "--batch", "2", "--batch", "4"], "fields changed"),
        (["rejects"], "2 open rejected features"),
        (["history", "--since", "yesterday"], "--since 'yesterday' is not a date"),
        (["diff", "--batch", "4", "--batch", "2"], "give the earlier round first"),
        (["import", str(round2 / ROUND2_XLSX), "--header-row", "40"], "--header-row 40 is beyond"),
    ):
        result = runner.invoke(app, [*args, "--db", db_url], env={"COLUMNS": "200"})
        out = " ".join(result.output.split())
        assert expect in out, (args, result.output)
        assert "Traceback" not in result.output
    out = tmp_path / "diff.xlsx"
    written = runner.invoke(
        app, ["diff", "--batch", "2", "--batch", "4", "--output", str(out), "--db", db_url]
    )
    assert written.exit_code == 0 and out.exists(), written.output


def test_a_retired_space_keeps_its_history_and_leaves_the_analyses(engine, sample, sample_dir):
    before = capacity_in_store(engine, ["community"])["spaces"].sum()
    done = rounds.retire(engine, "JS-006", "已拆除（2025年5月）")
    assert done.retired and done.community == COMMUNITY
    assert "JS-006" not in set(listing.spaces(engine)["survey_ref"])
    assert capacity_in_store(engine, ["community"])["spaces"].sum() == before - 1
    rows, totals = title_gaps_in_store(engine)
    assert "JS-006" not in set(rows["survey_ref"])  # its blocking gap no longer counts
    info = store.info(engine)
    assert info.retired == 1
    assert rounds.history(engine, "JS-006")["field"].tolist()[-1] == "retired"
    with pytest.raises(InputError, match="was retired on"):
        rounds.retire(engine, "JS-006", "again")
    with pytest.raises(InputError, match="needs a reason"):
        rounds.retire(engine, "JS-007", " ")
    # delivered again, it is updated and said to be retired, and stays out
    (report,) = import_file(engine, sample_dir / "jinsong_north_spaces.shp")
    assert report.retired_delivered == ["JS-006"]
    assert "JS-006" not in set(listing.spaces(engine)["survey_ref"])
    rounds.retire(engine, "JS-006", undo=True)
    assert "JS-006" in set(listing.spaces(engine)["survey_ref"])
    with pytest.raises(InputError, match="is not retired"):
        rounds.retire(engine, "JS-006", undo=True)


def test_retire_command(sample, db_url):
    runner = CliRunner()
    done = runner.invoke(app, ["retire", "JS-006", "--reason", "已拆除", "--db", db_url])
    assert done.exit_code == 0 and "retired: 已拆除" in done.output, done.output
    info = runner.invoke(app, ["info", "--db", db_url], env={"COLUMNS": "200"})
    assert "(and 1 retired)" in info.output
    refused = runner.invoke(app, ["retire", "JS-999", "--reason", "x", "--db", db_url])
    assert refused.exit_code == 1 and "no space has this survey reference" in refused.output


def test_set_gives_a_field_one_value_and_aliases_name_codes(engine, sample, tmp_path):
    path = tmp_path / "gatehouses.gpkg"
    pyogrio.write_dataframe(
        frame(
            [
                {"编号": f"G-{i}", "名称": "门房", "geometry": room(3000 + 20 * i, 0)}
                for i in range(2)
            ]
        ),
        path,
    )
    (report,) = import_file(
        engine, path, community=COMMUNITY, constants=["kind=门房", "surveyed_at=2025-05-20"]
    )
    assert report.loaded == 2
    got = listing.spaces(engine).set_index("survey_ref")
    assert (
        got.loc["G-0", "kind"] == "gatehouse" and str(got.loc["G-1", "surveyed_at"]) == "2025-05-20"
    )
    # a constant is checked like a column: a wrong value is a reason, not a surprise
    (bad,) = import_file(
        engine, path, community=COMMUNITY, constants={"kind": "仓库"}, dry_run=True
    )
    assert bad.rejected == 2 and "kind '仓库' is not known" in bad.issues[0].reasons[0]
    (good,) = import_file(
        engine,
        path,
        community=COMMUNITY,
        constants={"kind": "仓库"},
        value_aliases=ALIASES,
        dry_run=True,
    )
    assert good.rejected == 0
    for wrong, message in (
        (dict(constants=["kind"]), "must be FIELD=VALUE"),
        (dict(constants=["colour=red"]), "'colour' is not a field"),
        (dict(value_aliases={"kind": {"仓库": "warehouse"}}), "is not a kind"),
        (dict(value_aliases={"name": {"a": "b"}}), "only coded fields take aliases"),
    ):
        with pytest.raises(InputError, match=message):
            import_file(engine, path, community=COMMUNITY, **wrong)


def test_a_zip_from_chinese_windows_keeps_its_chinese_names(engine, sample, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    pyogrio.write_dataframe(
        frame([{"编号": "Z-1", "类型": "门房", "geometry": room(4000, 0)}]), src / "存量空间.shp"
    )

    class GbkName(zipfile.ZipInfo):  # how Windows in Chinese writes names: GBK, no UTF-8 flag
        def _encodeFilenameFlags(self):
            return self.filename.encode("gbk"), self.flag_bits & ~0x800

    archive = tmp_path / "delivery.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in sorted(src.iterdir()):
            zf.writestr(GbkName(part.name), part.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        assert "存量空间.shp" not in zf.namelist()  # what Python alone makes of it
    (report,) = import_file(engine, archive, community=COMMUNITY)
    assert report.loaded == 1 and report.layer == "存量空间"


def test_description_fields_of_map_app_placemarks():
    table = "<table><tr><td>编号</td><td>A-1</td></tr><tr><th>类型：</th><td>门房</td></tr></table>"
    assert description_fields(table) == {"编号": "A-1", "类型": "门房"}
    lines = "编号：A-2<br>类型: 锅炉房<br/>建筑面积（㎡）＝320\n备注：原锅炉房"
    assert description_fields(lines) == {
        "编号": "A-2",
        "类型": "锅炉房",
        "建筑面积（㎡）": "320",
        "备注": "原锅炉房",
    }
    assert description_fields("一段说明文字") == {} and description_fields(None) == {}


def test_an_excel_97_workbook_with_a_title_row(engine, sample, tmp_path):
    import xlwt

    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("门房")
    sheet.write(0, 0, "劲松北社区门房调查表")
    for j, name in enumerate(["编号", "类型", "建筑面积(m²)", "wkt"]):
        sheet.write(1, j, name)
    for i, (ref, area) in enumerate([("X-1", 20.0), ("X-2", -1.0)]):
        for j, value in enumerate([ref, "门房", area, room(5000 + 30 * i, 0).wkt]):
            sheet.write(2 + i, j, value)
    path = tmp_path / "old.xls"
    book.save(str(path))
    (report,) = import_file(engine, path, community=COMMUNITY, crs="EPSG:4326")
    assert (report.loaded, report.rejected) == (1, 1)
    assert report.fields["建筑面积(m²)"] == "floor_area_m2"
    rejected = [(i.survey_ref, i.row) for i in report.issues if i.status == "rejected"]
    assert rejected == [("X-2", 4)]  # its Excel row: a title, a header, then X-1
    broken = tmp_path / "broken.xls"
    broken.write_bytes(b"not a workbook")
    with pytest.raises(InputError, match="cannot be read as a spreadsheet.*save it as .xlsx"):
        import_file(engine, broken, community=COMMUNITY, crs="EPSG:4326")


def test_progress_advances_through_validating_and_writing(engine, tmp_path):
    rows = [
        {
            "编号": f"P-{i:05d}",
            "类型": "门房",
            "geometry": room(15 * (i % 150), 15 * (i // 150), 5, 5),
        }
        for i in range(12_000)
    ]
    path = tmp_path / "many.gpkg"
    pyogrio.write_dataframe(frame(rows), path)
    seen: dict[str, list[tuple[int, int]]] = {}
    import_file(
        engine,
        path,
        community=COMMUNITY,
        progress=lambda stage, done, total: seen.setdefault(stage, []).append((done, total)),
    )
    for stage in ("validate", "write"):
        steps = seen[stage]
        done = [d for d, _ in steps]
        assert done == sorted(done) and done[-1] == steps[-1][1], (stage, steps)
        assert len(set(done)) >= 3, (stage, steps)  # not 0 then all: it moves on the way
    assert len(set(seen["write"])) > 3  # one step per chunk of rows written
