"""The reader's language: the demo's commands in English or in Chinese, one catalogue."""

from __future__ import annotations

import os
import re
import string
import subprocess
import sys

import pandas as pd
import pytest

from inventory import i18n

CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


def _demo(tmp_path, *args, env_lang=None):
    env = {
        k: v for k, v in os.environ.items() if k not in ("INVENTORY_DATABASE_URL", "INVENTORY_LANG")
    }
    env["COLUMNS"] = "200"  # tables unwrapped, so a line holds one row
    if env_lang:
        env["INVENTORY_LANG"] = env_lang
    command = [sys.executable, "-m", "inventory.cli", *args, "demo"]
    command += ["--db", str(tmp_path / "demo.sqlite"), "--out-dir", str(tmp_path / "maps")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _frame(output: str) -> list[str]:
    """The lines of ours: without the rows naming the delivery's own columns (→)."""
    return [line for line in output.splitlines() if "→" not in line]


def test_the_demo_in_english_has_no_chinese_but_the_community_name(tmp_path):
    done = _demo(tmp_path, "--lang", "en")
    left = [line for line in _frame(done.stdout) if CJK.search(line.replace("劲松北社区", ""))]
    assert left == []
    for words in ("Features", "Survey ref", "Gap severity", "Blocking gap", "Boiler room"):
        assert words in done.stdout
    assert "Who pays the renovation: government 61%, operator 39%" in done.stdout
    assert "¥484,000 a year once resolved" in done.stdout
    assert "Glyph" not in done.stderr and "missing from" not in done.stderr
    pack = (tmp_path / "maps" / "demo_pack.html").read_text(encoding="utf-8")
    assert "Renewal models compared" in pack
    assert "Government 61%" in pack and "政府" not in pack  # the models' words, split


def test_the_demo_in_chinese_has_no_english_but_names_and_codes(tmp_path):
    done = _demo(tmp_path, env_lang="zh_CN.UTF-8")
    words = set()
    for line in _frame(done.stdout):
        if "EPSG:" in line:  # the CRS's own name
            continue
        line = re.sub(r"\S*/\S*", "", line)  # paths, store URL
        line = re.sub(r"\b(JS-\d+|B\d{4})\b", "", line)  # survey refs, bundle ids
        words |= set(re.findall(r"[A-Za-z]{3,}", line))
    # the backend's name and the sidecar file a shapefile lacks are names, not prose
    assert words <= {"SpatiaLite", "cpg"}, sorted(words)
    for phrase in ("要素", "字段对应", "产权问题", "锅炉房", "改造出资：政府 61%，运营方 39%"):
        assert phrase in done.stdout
    assert "Glyph" not in done.stderr and "missing from" not in done.stderr
    assert "更新模式比较" in (tmp_path / "maps" / "demo_pack.html").read_text(encoding="utf-8")


def test_an_unknown_language_is_refused_with_the_choices():
    from typer.testing import CliRunner

    from inventory.cli import app

    result = CliRunner().invoke(app, ["--lang", "fr", "info"])
    assert result.exit_code == 1
    assert "--lang fr is not a language here: use zh or en." in result.output
    from_env = CliRunner().invoke(app, ["info"], env={"INVENTORY_LANG": "fr_FR.UTF-8"})
    assert from_env.exit_code == 1
    assert "INVENTORY_LANG=fr_FR.UTF-8 is not a language here" in from_env.output


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize(
    "table", ["CLI", "COLUMNS", "FIGURES", "VALUES", "MAP", "PACK", "PLOT", "NOTES", "LAYERS"]
)
def test_every_entry_of_the_catalogue_has_both_languages(table):
    for key, (zh, en) in getattr(i18n, table).items():
        assert zh and en, key
        assert CJK.search(zh) or zh == en or key in ("north",), (key, zh)
        # the same values in both sentences; an amount is in 万元 in Chinese, in yuan in English
        assert _fields(zh) ^ _fields(en) <= {"loss", "rent", "unit", "yuan"}, key


def test_bilingual_labels_split_at_the_language_change():
    label = "劲松北社区 活化经营 Jinsong North activation"
    assert i18n.one_language(label, "zh") == "劲松北社区 活化经营"
    assert i18n.one_language(label, "en") == "Jinsong North activation"
    detail = "权属争议 / ownership disputed; 多个产权单位 / several owners must agree"
    assert i18n.one_language(detail, "en") == "ownership disputed; several owners must agree"
    assert i18n.one_language(detail, "zh") == "权属争议; 多个产权单位"
    both = "统租置换 Master lease and swap + 活化经营 Activation"
    assert i18n.one_language(both, "en") == "Master lease and swap + Activation"
    assert i18n.one_language(both, "zh") == "统租置换 + 活化经营"
    sale = "回购增加面积 return + buy: ~17 m² more for each flat"
    assert i18n.one_language(sale, "zh") == "回购增加面积"
    for plain in ("So = Ro − Co", "劲松北社区", "rent"):
        assert i18n.one_language(plain, "en") == plain
    assert i18n.one_language(label, None) == label


def test_code_values_become_words_and_other_values_stay():
    frame = pd.DataFrame(
        {
            "kind": ["boiler_room", "仓库"],
            "gap_severity": ["blocking", None],
            "gaps": [["allocated_land"], []],
            "stream": ["property_fee", "ad_hoc"],
            "survey_ref": ["JS-013", "X-1"],
        }
    )
    zh = i18n.labelled(frame, "zh")
    assert zh["kind"].tolist() == ["锅炉房", "仓库"]
    assert zh["gap_severity"][0] == "产权障碍" and pd.isna(zh["gap_severity"][1])
    assert zh["gaps"][0] == ["划拨用地，改变用途须审批"]
    assert zh["stream"].tolist() == ["物业费", "ad_hoc"]
    assert zh["survey_ref"].tolist() == ["JS-013", "X-1"]
    assert i18n.labelled(frame, "en")["kind"][0] == "Boiler room"
    assert i18n.labelled(frame, None) is frame
