"""Exports open where analysts take them, and nothing in the data runs there."""

from __future__ import annotations

import openpyxl
import pandas as pd
import pytest

from inventory import outputs

FORMULAS = ['=HYPERLINK("http://x","click")', "+1+1", "-2+3", "@SUM(A1)", "=1+1"]


def test_xlsx_text_is_never_a_formula(tmp_path):
    frame = pd.DataFrame({"note": FORMULAS, "n": range(len(FORMULAS))})
    path = outputs.write(frame, tmp_path / "x.xlsx")
    sheet = openpyxl.load_workbook(path).active
    cells = [row[0] for row in sheet.iter_rows(min_row=2)]
    assert [c.value for c in cells] == FORMULAS  # the text as typed, nothing added
    assert {c.data_type for c in cells} == {"s"}  # stored as text, not as formulas
    assert [r[1].value for r in sheet.iter_rows(min_row=2)] == list(range(len(FORMULAS)))


def test_csv_formulas_are_neutralised(tmp_path):
    frame = pd.DataFrame({"note": [*FORMULAS, "plain", "a=b"], "n": [-1.5] * 7})
    path = outputs.write(frame, tmp_path / "x.csv")
    back = pd.read_csv(path, encoding="utf-8-sig")
    assert back["note"].tolist() == [*("'" + f for f in FORMULAS), "plain", "a=b"]
    assert back["n"].tolist() == [-1.5] * 7  # numbers stay numbers


@pytest.mark.parametrize(
    "cells",
    [
        ["plain"] * 1000 + ["=1+1"],  # only the last cell, far down
        ["=1+1", *["plain"] * 10],  # only the first
        [None, "ok", None, "@SUM(A1)"],  # gaps in the column
        ["ok", 3, "-2+3"],  # text and numbers in one column
        ["a\x00=b", "+1"],  # NUL inside a text
        ["a\x00=b", "fine"],  # NUL before "=": a cell that is no formula
    ],
)
def test_csv_formulas_are_found_in_any_cell(tmp_path, cells):
    path = outputs.write(pd.DataFrame({"note": cells}), tmp_path / "x.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfnote\n")  # Excel's BOM, then plain UTF-8
    back = pd.read_csv(path, encoding="utf-8-sig", keep_default_na=False, dtype=str)["note"]
    expected = ["" if c is None else f"'{c}" if str(c)[:1] in "=+-@" else str(c) for c in cells]
    assert back.tolist() == expected


def test_control_characters_do_not_break_a_workbook(tmp_path):
    frame = pd.DataFrame({"name": ["bell\x07", "esc\x1b[31mred", "nul\x00"]})
    path = outputs.write(frame, tmp_path / "c.xlsx")
    values = [r[0].value for r in openpyxl.load_workbook(path).active.iter_rows(min_row=2)]
    assert values == ["bell\u2407", "esc\u241b[31mred", "nul\u2400"]


def test_layers_go_to_one_styled_workbook(tmp_path):
    layers = {
        "spaces": pd.DataFrame({"survey_ref": ["JS-001", "JS-002"], "名称": ["原锅炉房", "门房"]}),
        "totals": pd.DataFrame({"community": ["劲松北社区"], "usable_area_m2": [1698.0]}),
    }
    written = outputs.write_layers(tmp_path / "all.xlsx", None, layers)
    assert [(name, path.name, rows) for name, path, rows in written] == [
        ("spaces", "all.xlsx", 2),
        ("totals", "all.xlsx", 1),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.xlsx"]
    book = openpyxl.load_workbook(tmp_path / "all.xlsx")
    assert book.sheetnames == ["spaces", "totals"]
    sheet = book["spaces"]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:B3"
    assert sheet["A1"].font.bold
    assert sheet.column_dimensions["B"].width >= 10  # 原锅炉房: four wide characters


@pytest.mark.parametrize("name", ["a/b", "x" * 40])
def test_sheet_names_excel_accepts(tmp_path, name):
    path = outputs.write_layers(tmp_path / "s.xlsx", None, {name: pd.DataFrame({"a": [1]})})[0][1]
    (sheet,) = openpyxl.load_workbook(path).sheetnames
    assert len(sheet) <= 31 and "/" not in sheet


def test_times_with_a_zone_go_to_excel_as_utc(tmp_path):
    from datetime import datetime, timedelta, timezone

    from inventory.outputs import write_workbook

    beijing = timezone(timedelta(hours=8))
    frame = pd.DataFrame({"when": [pd.Timestamp(datetime(2026, 12, 2, 14, 0, tzinfo=beijing))]})
    write_workbook(tmp_path / "t.xlsx", {"history": frame})
    back = pd.read_excel(tmp_path / "t.xlsx")
    assert back.loc[0, "when"] == pd.Timestamp("2026-12-02 06:00")


def test_lists_and_dicts_go_to_csv_as_json_text(tmp_path):
    cells = [["重叠 JS-009", 'a "quoted" flag'], None, {"备注": "二轮", "n": 2}, "plain", []]
    path = outputs.write(pd.DataFrame({"flags": cells, "n": range(5)}), tmp_path / "x.csv")
    back = pd.read_csv(path, encoding="utf-8-sig", keep_default_na=False, dtype=str)
    assert back["flags"].tolist() == [
        '["重叠 JS-009", "a \\"quoted\\" flag"]',  # Chinese as text, not \\u escapes
        "",
        '{"备注": "二轮", "n": 2}',
        "plain",
        "[]",
    ]
    assert back["n"].tolist() == ["0", "1", "2", "3", "4"]
