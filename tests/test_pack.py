"""The planner's meeting pack: one A4 document, HTML that opens anywhere and a PDF whose
pages are rendered to images and looked at."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pypdfium2 as pdfium
import pytest
from typer.testing import CliRunner

from inventory.cli import app
from inventory.errors import InputError
from inventory.pack import meeting_pack
from tests.test_maps import CHROMIUM_FLAGS, _chromium

COMMUNITY = "劲松北社区"


def test_the_html_pack_holds_every_section_and_opens_in_a_browser(engine, sample, tmp_path):
    made = meeting_pack(engine, COMMUNITY, tmp_path / "pack.html")
    assert made.spaces == len(sample) and made.gaps == 6 and made.bundles == 2
    assert "劲松北社区 活化经营 Jinsong North activation" in made.scenarios
    page = made.path.read_text(encoding="utf-8")
    for heading in (
        "空间分布与产权状况",
        "可用空间",
        "产权问题",
        "空间组团",
        "更新模式比较",
        "数据来源",
    ):
        assert heading in page
    assert "jinsong_north_spaces.shp" in page and "调查日期: 2019-03-15" in page
    assert "JS-013" in page and "产权障碍" in page and "净现值（万元）" in page
    assert not re.search(r"(src|href)=\"https?://", page)  # nothing from the network
    chromium = _chromium()
    probe = page.replace(
        "</body>",
        "<script>window.addEventListener('load', function () { var o = document.createElement('pre');"
        " o.id = 'probe'; o.textContent = Array.prototype.map.call(document.images,"
        " function (i) { return i.naturalWidth; }).join(','); document.body.appendChild(o); });"
        "</script></body>",
    )
    (tmp_path / "probe.html").write_text(probe, encoding="utf-8")
    dom = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            (tmp_path / "probe.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    widths = re.search(r'<pre id="probe">([\d,]+)</pre>', dom).group(1).split(",")
    assert len(widths) == 2 and all(int(w) > 500 for w in widths)  # map and cash flow


def test_the_pdf_pack_renders_pages_with_content(engine, db_url, sample, tmp_path):
    _chromium()
    result = CliRunner().invoke(
        app,
        [
            "report",
            COMMUNITY,
            "-o",
            str(tmp_path / "pack.pdf"),
            "--db",
            db_url,
            "--lang",
            "en",
            "--scenario",
            "jinsong_north",
            "--scenario",
            "jinsong_master_lease",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2 renewal models compared" in result.output
    pdf = pdfium.PdfDocument(tmp_path / "pack.pdf")
    assert len(pdf) >= 2
    text = "".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    assert "Stock spaces: meeting pack" in text and "Renewal models compared" in text
    assert "Blocking gap" in text and "JS-013" in text
    for i in range(len(pdf)):
        pixels = np.asarray(pdf[i].render(scale=0.5).to_pil().convert("L"))
        inked = (pixels < 200).mean()
        assert 0.01 < inked < 0.6, (i, inked)  # text and tables on it, not a blank page
    first = np.asarray(pdf[0].render(scale=0.5).to_pil().convert("RGB")).reshape(-1, 3)
    red = ((first[:, 0] > 170) & (first[:, 1] < 80) & (first[:, 2] < 80)).sum()
    assert red > 20  # the map's blocking spaces are drawn in their colour


def test_a_pack_is_html_or_pdf_of_a_known_community(engine, sample, tmp_path):
    with pytest.raises(InputError, match=r"\.html or \.pdf"):
        meeting_pack(engine, COMMUNITY, tmp_path / "pack.docx")
    with pytest.raises(InputError, match="劲松南"):
        meeting_pack(engine, "劲松南", tmp_path / "pack.html")
