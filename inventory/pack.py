"""A meeting pack for one community: ``inventory report 劲松北社区 --output pack.html|pdf``.

One printable A4 document with a map, the capacity and title-gap tables, the bundles,
the renewal models compared with their cash flow, and where the data came from and when.
The HTML stands alone (images inlined, no network); the PDF is that page printed by
headless Chromium. Every text from the store is escaped as it is written: nothing read
from the data is ever a template or markup.
"""

from __future__ import annotations

import base64
import html
import io
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from inventory import i18n, listing
from inventory.bundles import bundles_in_store
from inventory.capacity import capacity_in_store
from inventory.codes import KIND
from inventory.defaults import DEFAULT_MAX_GAP_M
from inventory.errors import ConfigurationError, InputError
from inventory.gaps import STATUS_COLOURS, annotate, gap_label, title_gaps
from inventory.store import require_community


@dataclass
class Pack:
    """What a meeting pack holds, and where it was written."""

    community: str
    path: Path
    spaces: int
    gaps: int
    bundles: int
    scenarios: list[str] = field(default_factory=list)


def _w(key: str, lang: str) -> str:
    return i18n.word(i18n.PACK, key, lang)


def meeting_pack(
    engine: Engine,
    community: str,
    path: str | Path,
    *,
    scenarios: list[str | Path] | None = None,
    lang: str = "zh",
    policy: str | Path | None = None,
    max_gap_m: float = DEFAULT_MAX_GAP_M,
) -> Pack:
    """Write the meeting pack of ``community`` to ``path`` (.html, or .pdf through Chromium).

    ``scenarios``: the renewal models to compare (files or shipped names); default, the
    shipped scenarios of this community. Title gaps follow ``policy``.

    Raises:
        InputError: the community is unknown or has no spaces, the suffix or language is
            not one the pack is written in.
        ConfigurationError: a PDF was asked for and no Chromium is installed.

    """
    lang = i18n.language(lang) or "zh"
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".html", ".pdf"):
        raise InputError(f"{out.name}: a meeting pack is .html or .pdf; give one of those.")
    require_community(engine, community)
    spaces = annotate(listing.spaces(engine, community=community), policy=policy)
    if spaces.empty:
        raise InputError(f"{community} has no spaces in the store: import its survey first.")
    gaps, totals = title_gaps(spaces, policy=policy)
    bundles, members = bundles_in_store(engine, max_gap_m, community=community, loaded=spaces)
    capacity = capacity_in_store(engine, community=community)
    boundary = listing.communities(engine, [community])
    results = _estimates(engine, community, scenarios, policy)
    page = _page(
        community,
        lang,
        spaces=spaces,
        gaps=gaps,
        totals=totals,
        bundles=bundles,
        members=members,
        capacity=capacity,
        boundary=boundary,
        results=results,
        sources=_sources(engine, spaces),
        policy=str(policy or "default"),
        max_gap_m=max_gap_m,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".html":
        out.write_text(page, encoding="utf-8")
    else:
        with tempfile.TemporaryDirectory(prefix="inventory-pack-") as tmp:
            source = Path(tmp) / "pack.html"
            source.write_text(page, encoding="utf-8")
            print_pdf(source, out)
    return Pack(
        community,
        out,
        len(spaces),
        int(gaps["gap_severity"].notna().sum()),
        len(bundles),
        [r.scenario.name for r in results],
    )


def _estimates(engine, community: str, scenarios, policy) -> list:
    from inventory.revenue import estimate_in_store
    from inventory.scenario import load_scenario, shipped_scenarios

    if scenarios is None:
        scenarios = [
            name for name in shipped_scenarios() if load_scenario(name).community == community
        ]
    return [estimate_in_store(engine, s, community, policy=policy) for s in scenarios]


def _sources(engine, spaces: pd.DataFrame) -> pd.DataFrame:
    from inventory import rounds

    table = rounds.batches(engine)
    used = {int(b) for b in spaces["batch_id"].dropna()}
    table = table[table["batch_id"].isin(used)]
    return table[["batch_id", "file", "imported_by", "finished_at", "read", "loaded", "rejected"]]


def print_pdf(page: Path, pdf: Path) -> Path:
    """Print an HTML page to PDF (A4, as its ``@page`` rule says) with headless Chromium.

    Raises:
        ConfigurationError: no Chromium is installed, or it could not print the page.

    """
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise ConfigurationError(
            "A PDF is printed by Chromium, which is not installed: apt-get install chromium "
            "(or write the pack as .html and print it from a browser)."
        )
    with tempfile.TemporaryDirectory(prefix="inventory-chromium-") as profile:
        done = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--no-pdf-header-footer",
                f"--print-to-pdf={pdf.resolve()}",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
    if not pdf.exists() or pdf.stat().st_size == 0:
        raise ConfigurationError(
            f"Chromium could not print {page.name} ({done.stderr.strip()[-200:]}); write the "
            "pack as .html and print it from a browser."
        )
    return pdf


# ---- the page -------------------------------------------------------------------------------


def _e(value: object) -> str:
    """Return a cell's text, escaped; numbers with separators, gaps as empty."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float | np.floating):
        return f"{value:,.1f}"
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return html.escape(", ".join(map(str, value)))
    return html.escape(str(value))


def _table(frame: pd.DataFrame, columns: list[str], lang: str, css: str = "") -> str:
    head = "".join(f"<th>{html.escape(i18n.column(c, lang))}</th>" for c in columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_e(row[c])}</td>" for c in columns) + "</tr>"
        for _, row in frame.iterrows()
    )
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


CSS = """
@page { size: A4 portrait; margin: 14mm 12mm; }
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei",
  "Microsoft YaHei", sans-serif; font-size: 10pt; color: #111; margin: 0 auto; max-width: 186mm; }
h1 { font-size: 18pt; margin: 0 0 2mm; }
h2 { font-size: 13pt; margin: 7mm 0 2mm; border-bottom: 1px solid #999; break-after: avoid; }
h3 { font-size: 11pt; margin: 4mm 0 1mm; }
.meta { color: #444; margin-bottom: 4mm; }
table { border-collapse: collapse; width: 100%; margin: 1mm 0 3mm; font-size: 8.5pt; }
th, td { border: 1px solid #bbb; padding: 1mm 1.5mm; text-align: left; vertical-align: top; }
th { background: #dde6f0; }
table.figures td:first-child { min-width: 28mm; }
tr { break-inside: avoid; }
td:not(:first-child) { font-variant-numeric: tabular-nums; }
figure { margin: 0; break-inside: avoid; }
figure img { width: 100%; }
.page { break-before: page; }
"""


def _page(community: str, lang: str, **parts) -> str:
    spaces = parts["spaces"]
    days = pd.to_datetime(spaces["surveyed_at"], errors="coerce").dropna()
    surveyed = f"{days.min().date()} – {days.max().date()}" if len(days) else _w("none", lang)
    head = (
        f"<h1>{html.escape(community)} {html.escape(_w('title', lang))}</h1>"
        f'<div class="meta">{html.escape(_w("surveyed", lang))}: {html.escape(surveyed)} · '
        f"{html.escape(_w('made', lang))}: {date.today().isoformat()} · "
        f"{html.escape(_w('policy', lang))}: {html.escape(parts['policy'])}</div>"
    )
    body = [
        head,
        f"<h2>{html.escape(_w('map', lang))}</h2>",
        f'<figure><img alt="map" src="{_map_image(parts, lang)}"></figure>',
        f"<h2>{html.escape(_w('capacity', lang))}</h2>",
        _capacity(parts["capacity"], lang),
        f'<h2 class="page">{html.escape(_w("gaps", lang))}</h2>',
        _table(parts["totals"], list(parts["totals"].columns), lang),
        _gaps(parts["gaps"], lang),
        f"<h2>{html.escape(_w('bundles', lang))}</h2>",
        f'<div class="meta">{html.escape(_w("bundle_gap", lang))}: {parts["max_gap_m"]:g} m</div>',
        _bundles(parts["bundles"], lang),
        f'<h2 class="page">{html.escape(_w("revenue", lang))}</h2>',
        _revenue(parts["results"], lang),
        f"<h2>{html.escape(_w('sources', lang))}</h2>",
        _table(parts["sources"], list(parts["sources"].columns), lang),
    ]
    title = html.escape(f"{community} {_w('title', lang)}")
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>"
    )


def _capacity(frame: pd.DataFrame, lang: str) -> str:
    table = frame.copy()
    table["kind"] = [KIND.label(k, lang) for k in table["kind"]]
    keep = [c for c in table.columns if c not in ("units",) or table[c].any()]
    return _table(table, keep, lang)


def _gaps(frame: pd.DataFrame, lang: str) -> str:
    table = frame[frame["gap_severity"].notna()].copy()
    table["kind"] = [KIND.label(k, lang) for k in table["kind"]]
    table["gap_severity"] = [i18n.title_status(s, lang) for s in table["gap_severity"]]
    table["gaps"] = [", ".join(gap_label(g, lang) for g in gaps) for gaps in table["gaps"]]
    columns = ["survey_ref", "kind", "name", "usable_area_m2", "owner_name", "gap_severity", "gaps"]
    return _table(table, columns, lang)


def _bundles(frame: pd.DataFrame, lang: str) -> str:
    if frame.empty:
        return f"<p>{html.escape(_w('none', lang))}</p>"
    columns = ["bundle_id", "members", "member_count", "kinds", "usable_area_m2", "blocking"]
    return _table(frame, columns, lang)


def _revenue(results: list, lang: str) -> str:
    if not results:
        return f"<p>{html.escape(_w('no_scenario', lang))}</p>"
    from inventory.revenue import compare

    table = i18n.labelled(compare(results).drop(columns=["file"]), lang)
    figures = table.set_index("scenario").T.reset_index().rename(columns={"index": "figure"})
    figures["figure"] = [_figure_label(f, lang) for f in figures["figure"]]
    head = "".join(f"<th>{_e(c)}</th>" for c in [_w("figure", lang), *figures.columns[1:]])
    rows = "".join(
        "<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>"
        for row in figures.itertuples(index=False)
    )
    return (
        f'<table class="figures"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
        f'<figure><img alt="{html.escape(_w("cash_flow", lang))}" src="{_cash_flow(results, lang)}"></figure>'
    )


def _figure_label(name: str, lang: str) -> str:
    return i18n.word(i18n.FIGURES, name, lang)


def _cash_flow(results: list, lang: str) -> str:
    from inventory.revenue import plot, plot_compare

    with tempfile.TemporaryDirectory(prefix="inventory-plot-") as tmp:
        target = Path(tmp) / "cash_flow.png"
        (
            plot_compare(results, target, lang)
            if len(results) > 1
            else plot(results[0], target, lang)
        )
        return "data:image/png;base64," + base64.b64encode(target.read_bytes()).decode("ascii")


def _map_image(parts: dict, lang: str) -> str:
    """Draw the community's map for print: spaces by title status, labels, scale, north."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from inventory.geodesy import utm_epsg
    from inventory.revenue import cjk_font

    spaces = parts["spaces"]
    lon, lat = spaces.geometry.union_all().centroid.coords[0]
    crs = utm_epsg(lon, lat)
    local = spaces.to_crs(crs)
    font = cjk_font()
    if font:
        plt.rcParams["font.sans-serif"] = [font, "DejaVu Sans"]
    fig, ax = plt.subplots(figsize=(7.3, 5.2))
    boundary = parts["boundary"]
    if not boundary.empty:
        boundary.to_crs(crs).boundary.plot(ax=ax, color="#1565c0", linewidth=1.2, linestyle="--")
    status = local["gap_severity"].fillna("clean")
    polygons = ~local.geom_type.isin(["Point", "MultiPoint"])
    for name, colour in STATUS_COLOURS.items():
        chosen = local[(status == name) & polygons]
        if len(chosen):
            chosen.plot(ax=ax, color=colour, alpha=0.75, edgecolor="#37474f", linewidth=0.5)
        points = local[(status == name) & ~polygons]
        if len(points):
            points.plot(ax=ax, color=colour, markersize=14, edgecolor="#37474f", linewidth=0.5)
    bundles = parts["bundles"]
    if not bundles.empty:
        bundles.to_crs(crs).boundary.plot(ax=ax, color="#6a1b9a", linewidth=1, linestyle=":")
    for ref, geom in zip(local["survey_ref"], local.geometry.representative_point(), strict=True):
        ax.annotate(str(ref), (geom.x, geom.y), fontsize=5.5, ha="center", va="center")
    _scale_and_north(ax, lang)
    ax.set_axis_off()
    ax.set_aspect("equal")
    handles = [Patch(color=c, label=i18n.title_status(s, lang)) for s, c in STATUS_COLOURS.items()]
    handles += [
        Patch(facecolor="none", edgecolor="#1565c0", linestyle="--", label=_w("boundary", lang)),
        Patch(facecolor="none", edgecolor="#6a1b9a", linestyle=":", label=_w("bundle", lang)),
    ]
    ax.legend(
        handles=handles,
        loc="lower right",
        fontsize=7,
        title=_w("legend", lang),
        title_fontsize=7,
        framealpha=0.9,
    )
    url = _png(fig)
    plt.close(fig)
    return url


def _scale_and_north(ax, lang: str) -> None:
    """Draw a metric scale bar (a round length near a fifth of the width) and a north arrow."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    width = x1 - x0
    target = width / 5
    step = 10 ** np.floor(np.log10(target))
    length = max(s * step for s in (1, 2, 5) if s * step <= target)
    bx, by = x0 + width * 0.03, y0 + (y1 - y0) * 0.04
    ax.plot([bx, bx + length], [by, by], color="#111", linewidth=3, solid_capstyle="butt")
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    ax.annotate(
        label,
        (bx + length / 2, by),
        xytext=(0, 4),
        textcoords="offset points",
        ha="center",
        fontsize=7,
    )
    nx, ny = x1 - width * 0.04, y1 - (y1 - y0) * 0.12
    ax.annotate(
        _w("north", lang),
        xy=(nx, ny + (y1 - y0) * 0.08),
        xytext=(nx, ny),
        ha="center",
        fontsize=8,
        fontweight="bold",
        arrowprops={"arrowstyle": "-|>", "color": "#111"},
    )
