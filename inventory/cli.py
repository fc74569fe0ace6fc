"""The ``inventory`` command line: parses arguments, calls one library function, prints.

No logic lives here. Each command opens the store, calls the one library function that
does its job and prints or writes what it returns. The library names its parameters;
:data:`FLAGS` maps them to this command line's flags, in one place. Heavy libraries
(geopandas, folium, scipy) load inside the commands that use them, so ``--help`` is fast.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from inventory import __version__, i18n
from inventory.defaults import CAPACITY_GROUPS, DEFAULT_MAX_GAP_M, DEMO_DB
from inventory.errors import InventoryError

app = typer.Typer(
    name="inventory",
    help="Spatial inventory of stock spaces (存量空间) in old residential communities.\n\n"
    "The store is PostGIS when INVENTORY_DATABASE_URL is set, otherwise the SpatiaLite "
    "file ./inventory.sqlite (or the file given by --db).",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
#: The language of tables, frames and messages (--lang, else INVENTORY_LANG); None shows
#: the codes as columns and values, with English frames.
LANG: str | None = None

T = TypeVar("T")

#: Library parameter → command-line flag, for the library's messages.
FLAGS = {
    "all_layers": "--all-layers",
    "batch": "--batch",
    "by": "--by",
    "communities": "--communities",
    "community": "--community",
    "crs": "--crs",
    "encoding": "--encoding",
    "expiring_months": "--expiring-months",
    "field_map": "--map",
    "fmt": "--format",
    "kind": "--kind",
    "kinds": "--kind",
    "lang": "--lang",
    "color_by": "--color-by",
    "tiles_key": "--tiles-key",
    "base": "--base",
    "city_measure": "--city-measure",
    "classes": "--classes",
    "layer": "--layer",
    "max_gap_m": "--max-gap",
    "min_area_m2": "--min-area",
    "mode": "--mode",
    "near": "--near",
    "need_area_m2": "--need-area",
    "period": "--period",
    "policy": "--policy",
    "radius_m": "--radius",
    "role": "--limit",
    "scenario": "--scenario",
    "share": "--share",
    "end": "--until",
    "start": "--start",
    "holder": "--holder",
    "right": "--right",
    "source_kind": "--attach",
    "allowed_uses": "--uses",
    "file": "--file",
    "rights": "--proves",
    "certificate_status": "--certificate",
    "status": "--status",
    "holder_type": "--holder-type",
    "source": "--source",
    "ref": "REF",
    "tiles": "--tiles",
    "header_row": "--header-row",
    "reason": "--reason",
}
_PARAMETER = re.compile(r"`(\w+)(?:=([^`]*))?`")
#: Titles (catalogue keys) of the tables shown after a command's main one.
LAYER_TITLES = {"gap_totals": "per_community", "bundle_members": "bundle_members"}
#: How a written layer's rows are counted (catalogue keys), where "rows (layer)" says less.
NOUNS = {"spaces": "written_spaces", "rejects": "written_rejects"}
#: Rows a table shows on the terminal; ``--output FILE`` writes them all.
TERMINAL_ROWS = 100


def as_flags(message: str) -> str:
    """Return a library message with its parameters (```max_gap_m=-5```) as flags (--max-gap -5)."""

    def flag(m: re.Match) -> str:
        name, value = m.group(1), m.group(2)
        if name not in FLAGS:
            return m.group(0)
        return FLAGS[name] if value in (None, "True") else f"{FLAGS[name]} {value}"

    return _PARAMETER.sub(flag, message)


def _safe(value: object) -> str:
    """Text from the data as the terminal may show it: control characters (ESC…) made visible."""
    text = str(value)
    return re.sub(
        r"[\x00-\x08\x0b-\x1f\x7f-\x9f]",
        lambda m: chr(0x2400 + ord(m.group())) if ord(m.group()) < 32 else "\ufffd",
        text,
    )


def _t(key: str, **values) -> str:
    """Return the command line's sentence ``key`` in the chosen language."""
    return i18n.phrase(key, LANG, **values)


def _header(column: str, given: dict[str, str] | None = None) -> str:
    """Return a table's header of ``column``: its word in the language, else as given."""
    if LANG is not None:
        for table in (i18n.COLUMNS, i18n.FIGURES):
            if column in table:
                return i18n.word(table, column, LANG)
    return (given or {}).get(column, column)


def _say(message: str, style: str | None = None) -> None:
    """Print one line of ours (never markup from the data)."""
    console.print(Text(_safe(message), style=style or ""), soft_wrap=True)


# ---- options declared once ------------------------------------------------------------

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Store to use: a SpatiaLite file path or a postgresql+psycopg:// URL. "
        "Default: $INVENTORY_DATABASE_URL, else ./inventory.sqlite.",
        show_default=False,
    ),
]
FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format", help="csv, json, geojson, gpkg or xlsx (default: from --output's suffix)."
    ),
]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        help="Write to this file instead of showing a table; - writes csv or json to stdout."
    ),
]
CommunityOption = Annotated[str | None, typer.Option(help="Only this community.")]
KindOption = Annotated[
    list[str] | None,
    typer.Option(help="Only these kinds (repeatable; code or Chinese name: 锅炉房, boiler_room)."),
]
PolicyOption = Annotated[
    str | None,
    typer.Option(
        help="Title-gap rules: default, beijing-2021 (京规自发〔2021〕120号), or a policy file "
        "(TOML; see inventory/policies)."
    ),
]
MaxGapOption = Annotated[
    float, typer.Option(help="Largest gap (m) between two spaces of one bundle.")
]


def _version(show: bool) -> None:
    if show:
        print(f"inventory {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
    lang: Annotated[
        str | None,
        typer.Option(
            "--lang",
            help="Language of tables, messages and outputs: zh or en (default: "
            "INVENTORY_LANG; without either, tables show codes under English frames).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Spatial inventory of stock spaces (存量空间) in old residential communities."""
    console.quiet = quiet
    global LANG
    LANG = _call(lambda: i18n.language(lang))
    # the library's notices (a writer waiting for another) go to stderr as one line
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("inventory")
    if not logger.handlers:
        logger.addHandler(handler)
    logger.setLevel(logging.ERROR if quiet else logging.WARNING)


# ---- running library calls ------------------------------------------------------------


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the library's errors, and the system's, into one red line and exit code 1."""
    try:
        yield
    except InventoryError as exc:
        _fail(as_flags(str(exc)))
    except OSError as exc:
        where = f" {exc.filename!s}" if exc.filename else ""
        _fail(f"{exc.strerror or exc}:{where}. Check the path, its permissions and free space.")
    except Exception as exc:
        from sqlalchemy.exc import DBAPIError

        if not isinstance(exc, DBAPIError):
            raise
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        _fail(
            f"The store refused the request ({reason}). Nothing was changed; check that the "
            "store is writable and that this role may do it, then try again."
        )


def _error(message: str) -> None:
    """Print one error line on stderr (the command goes on)."""
    err_console.print(Text("Error: ", style="bold red") + Text(_safe(message)), soft_wrap=True)


def _fail(message: str) -> None:
    """Print one error line on stderr and end the command with exit code 1."""
    _error(message)
    raise typer.Exit(1)


def _call(fn: Callable[[], T]) -> T:
    with _user_errors():
        return fn()


def _in_store(db: str | None, job: Callable, *, create: bool = False) -> T:
    """Open the store named by --db, run ``job(engine)``, close it; errors as messages."""

    def run():
        from inventory.db import connect

        engine = connect(db, create=create)
        try:
            return job(engine)
        finally:
            engine.dispose()

    return _call(run)


# ---- printing -------------------------------------------------------------------------

#: Columns that are never folded or left out: identifiers and the figures.
_KEEP = {
    "survey_ref",
    "bundle_id",
    "id",
    "host",
    "variant",
    "year",
    "month",
    "started_at",
    "changed_at",
}


def _cell(value) -> str:
    from pandas import isna  # loaded by then: cells come from frames

    if isinstance(value, list | tuple):
        return ", ".join(map(_safe, value))
    if value is None or (not isinstance(value, str) and isna(value)):
        return ""
    if LANG is not None and type(value).__name__ in ("bool", "bool_"):
        return _t("yes" if value else "no")
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return _safe(value)


def _shown(rows, total: int | None = None, get_all: str | None = None):
    """Return the rows to show on the terminal, and a caption if they were cut."""
    total = len(rows) if total is None else total
    if total <= TERMINAL_ROWS:
        return rows, None
    caption = _t("first_rows", shown=TERMINAL_ROWS, total=total, get_all=get_all or _t("get_all"))
    return rows[:TERMINAL_ROWS], caption


def _table(
    frame,
    title: str,
    columns: list[str] | None = None,
    *,
    total: int | None = None,
    headers: dict[str, str] | None = None,
    get_all: str | None = None,
) -> Table:
    """Return a terminal table of ``frame``'s ``columns`` that never cuts a value.

    Identifiers and numbers keep their whole width; other text folds onto more lines.
    When even that does not fit the terminal, text columns are left out from the right
    and the caption names them. With a language, headers and code values are its words.
    """
    columns = list(frame.columns if columns is None else columns)
    shown, caption = _shown(frame, total, get_all)
    shown = i18n.labelled(shown[columns], LANG)
    cells = {c: [_cell(v) for v in shown[c]] for c in columns}
    label = {c: _header(c, headers) for c in columns}
    numeric = {c: frame[c].dtype.kind in "iuf" for c in columns}
    kept = {c for c in columns if numeric[c] or c in _KEEP}
    widths = {c: max([cell_len(label[c]), *map(cell_len, cells[c])]) for c in columns}
    room = max(console.width, 40)
    dropped: list[str] = []
    while True:
        need = sum(widths[c] if c in kept else min(widths[c], 12) for c in columns)
        need += 3 * len(columns) + 1
        droppable = [c for c in columns if c not in kept]
        if need <= room or not droppable:
            break
        dropped.insert(0, droppable[-1])
        columns.remove(droppable[-1])
    if dropped:
        note = _t("left_out", columns=", ".join(label[c] for c in dropped))
        caption = f"{caption} {note}" if caption else note
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for c in columns:
        if c in kept:
            table.add_column(
                label[c],
                justify="right" if numeric[c] else "left",
                no_wrap=True,
                min_width=widths[c],
            )
        else:
            table.add_column(label[c], overflow="fold")
    for i in range(len(shown)):
        table.add_row(*[Text(cells[c][i]) for c in columns])
    return table


def _emit(layers: dict, output: Path | None, fmt: str | None, title: str, columns=None) -> None:
    """Write the result layers to ``output`` (- for stdout), or show the first as a table."""
    if output is None:
        if fmt is not None:
            _fail("--format needs --output FILE (or --output - for stdout).")
        name, frame = next(iter(layers.items()))
        console.print(_table(frame, title.format(n=len(frame)), columns))
        for other, frame in list(layers.items())[1:]:
            title = _t(LAYER_TITLES[other]) if other in LAYER_TITLES else other
            console.print(_table(frame, title))
        return
    from inventory import outputs

    if str(output) == "-":
        name, frame = next(iter(layers.items()))
        _call(lambda: sys.stdout.write(outputs.to_text(frame, fmt or "csv")))
        if len(layers) > 1:
            err_console.print(Text(_t("stdout_first", layer=name)))
        return
    for name, target, rows in _call(lambda: outputs.write_layers(output, fmt, layers)):
        _say(_t(NOUNS.get(name, "written"), rows=rows, layer=name, target=target))


# ---- commands -------------------------------------------------------------------------


@app.command()
def init(db: DbOption = None) -> None:
    """Create the store's schema, or upgrade it to this version. Safe to run again.

    Example:
        inventory init
        inventory init --db /data/jinsong.sqlite

    """
    from inventory import store

    found = _in_store(db, store.init_and_describe, create=True)
    _say(
        _t(
            "store_ready",
            backend=found.backend,
            location=found.location,
            revision=found.schema_revision,
            spatial=found.spatial_version,
        )
    )


@app.command()
def info(db: DbOption = None) -> None:
    """Show the backend, where the store is (never its password), schema version and counts.

    Example:
        inventory info
        INVENTORY_DATABASE_URL=postgresql+psycopg://me@dbhost/inventory inventory info

    """
    from inventory import store

    _print_info(_in_store(db, store.info))


def _print_info(result) -> None:
    from inventory.codes import KIND

    summary = Table.grid(padding=(0, 2))
    summary.add_row(_t("backend"), Text(f"{result.backend} ({result.spatial_version})"))
    summary.add_row(_t("location"), Text(_safe(result.location)))
    revision, head = result.schema_revision, result.head_revision
    if revision is None:
        status = _t("schema_none")
    elif revision == head:
        status = _t("schema_current", revision=revision)
    else:
        status = _t("schema_old", revision=revision, head=head)
    summary.add_row(_t("schema"), Text(status))
    contents = _t("contents_counts", communities=result.communities, spaces=result.spaces)
    if result.retired:
        contents += _t("contents_retired", retired=result.retired)
    contents += _t("contents_rest", batches=result.batches, rejected=result.rejected)
    if result.rejects_resolved:
        contents += _t("contents_open", resolved=result.rejects_resolved)
    summary.add_row(_t("contents"), Text(contents))
    console.print(summary)
    if result.spaces_by_community_kind:
        import pandas as pd

        frame = pd.DataFrame(
            result.spaces_by_community_kind,
            columns=["community", "kind", "spaces", "usable_area_m2", "parking_spaces"],
        )
        if LANG is None:  # with a language, the table shows the kind's word
            frame["kind"] = frame["kind"].map(
                lambda k: f"{KIND.label(k, 'zh')} {KIND.label(k, 'en')}"
            )
        frame["usable_area_m2"] = frame["usable_area_m2"].round(0)
        frame["parking_spaces"] = frame["parking_spaces"].replace(0, None)
        console.print(
            _table(
                frame,
                _t("by_community_kind"),
                headers={
                    "community": "Community",
                    "kind": "Kind",
                    "spaces": "Spaces",
                    "usable_area_m2": "Usable area m²",
                    "parking_spaces": "Parking spaces",
                },
                get_all=_t("by_community_kind_all"),
            )
        )


#: Names a list shows before it says how many more there are.
LIST_SHOWN = 10


def _summary(items: list[str], shown: int = LIST_SHOWN) -> str:
    """Return the first ``shown`` items joined, and how many more (--report FILE has them all)."""
    more = len(items) - shown
    return "; ".join(items[:shown]) + (_t("more", more=more) if more > 0 else "")


def _note(text: str) -> str:
    """Return the importer's note in the language, where the catalogue has it."""
    if LANG is not None:
        for note in i18n.NOTES:
            if text.endswith(note):
                return text[: len(text) - len(note)] + i18n.word(i18n.NOTES, note, LANG)
    return text


def _print_report(report, max_issues: int = 25) -> None:
    where = report.source + (_t("in_layer", layer=report.layer) if report.layer else "")
    title = f"{_t('dry_run') if report.dry_run else ''}{where} → {report.target}"
    table = Table(title=Text(_safe(title)), show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [
        (
            _t("features"),
            _t(
                "features_counts",
                read=report.read,
                loaded=report.loaded,
                updated=report.updated,
                unchanged=report.unchanged,
                rejected=report.rejected,
            ),
        ),
        (_t("encoding"), as_flags(f"{report.encoding} ({_note(report.encoding_note)})")),
        (_t("crs"), as_flags(_note(report.crs))),
        (
            _t("fields_mapped"),
            ", ".join(f"{s}→{t}" for s, t in report.fields.items()) or _t("none"),
        ),
    ]
    if report.unmapped:
        rows.append((_t("extra_attributes"), ", ".join(report.unmapped)))
    if report.communities_created:
        rows.append((_t("new_communities"), _summary(report.communities_created)))
    if report.changes:
        by_space: dict[str, list[str]] = {}
        for c in report.changes:
            by_space.setdefault(c.survey_ref, []).append(
                c.field if c.field == "geometry" else f"{c.field} {c.old} → {c.new}"
            )
        rows.append(
            (_t("updated_fields"), _summary([f"{r}: {', '.join(f)}" for r, f in by_space.items()]))
        )
    if report.duplicates:
        rows.append(
            (
                _t("duplicates"),
                _summary([f"{new} = {old} ({how})" for new, old, how in report.duplicates])
                + _t("duplicates_note"),
            )
        )
    if report.matched:
        rows.append(
            (
                _t("matched"),
                _summary([f"{new} → {old} ({how})" for new, old, how in report.matched]),
            )
        )
    if report.rejects_resolved:
        rows.append((_t("rejects_resolved"), _t("rejects_resolved_n", n=report.rejects_resolved)))
    if report.retired_delivered:
        rows.append(
            (
                _t("retired_delivered"),
                _summary(report.retired_delivered) + _t("retired_note"),
            )
        )
    if report.batch_id is not None:
        rows.append((_t("batch"), str(report.batch_id)))
    for name, value in rows:
        table.add_row(name, Text(_safe(value)))
    console.print(table)
    if report.issues:
        issues = Table(title=_t("issues"), title_justify="left")
        issues.add_column(_t("row"), no_wrap=True)
        issues.add_column(_t("survey_ref"), no_wrap=True)
        issues.add_column(_t("status"), no_wrap=True)
        issues.add_column(_t("reasons"), overflow="fold")
        for issue in report.issues[:max_issues]:
            style = {"rejected": "red", "repaired": "yellow"}.get(issue.status, "cyan")
            issues.add_row(
                str(issue.row),
                Text(_safe(issue.survey_ref or "")),
                Text(i18n.word(i18n.VALUES, issue.status, LANG), style=style),
                Text(_safe(as_flags("; ".join(issue.reasons)))),
            )
        console.print(issues)
        if len(report.issues) > max_issues:
            _say(_t("issues_more", n=len(report.issues) - max_issues))


@app.command("import")
def import_(
    files: Annotated[
        list[Path],
        typer.Argument(help="Shapefile (.shp or .zip), GeoPackage, GeoJSON, KML, CSV or XLSX."),
    ],
    layer: Annotated[
        str | None,
        typer.Option(
            "--layer",
            "--sheet",
            help="Layer (or workbook sheet) to import from a file with several.",
        ),
    ] = None,
    header_row: Annotated[
        int | None,
        typer.Option(
            help="Row (as Excel numbers it) of a table's column names; a title row above them "
            "is found without it."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Give a field one value on every feature: --set kind=门房 (repeatable)."
        ),
    ] = None,
    match_geometry: Annotated[
        bool,
        typer.Option(
            "--match-geometry",
            help="A re-survey without stable references: a space whose outline matches a "
            "stored one updates it (keeping its reference) instead of being loaded as new.",
        ),
    ] = False,
    all_layers: Annotated[
        bool,
        typer.Option(
            "--all-layers",
            help="Import every layer; layers named community/社区 are taken as boundaries.",
        ),
    ] = False,
    communities: Annotated[
        bool, typer.Option("--communities", help="The file holds community boundaries, not spaces.")
    ] = False,
    crs: Annotated[
        str | None,
        typer.Option(
            help="CRS of the coordinates when the file has none or a wrong one: EPSG:4548, EPSG:4490, gcj02, bd09..."
        ),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(
            help="Text encoding of the attributes (gbk, utf-8...) when detection is wrong."
        ),
    ] = None,
    community: Annotated[
        str | None, typer.Option(help="Put every space in this community (created if new).")
    ] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map", help="Map a column to a field: --map 面积=floor_area_m2 (repeatable)."
        ),
    ] = None,
    profile: Annotated[
        Path | None, typer.Option(help="Apply a saved mapping profile (JSON).")
    ] = None,
    save_profile: Annotated[
        Path | None, typer.Option(help="Save the mapping used as a profile (JSON) to reuse.")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Write a report: .json (everything) or .csv (one line per rejected/repaired/flagged feature)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and count, write nothing.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Import surveyors' files. Every feature is loaded, updated, unchanged or quarantined.

    A file is imported whole or not at all; importing it again changes nothing, and a
    changed survey updates its spaces by survey reference (编号), keeping history.
    Exit code 1 when a file cannot be read or nothing in it could be imported.

    Example:
        inventory import sample_data/jinsong_north_community.shp --communities
        inventory import sample_data/jinsong_north_spaces.shp --report report.csv
        inventory import rooms.csv --crs gcj02 --community 劲松北社区 --map 房间面积=floor_area_m2
        inventory import 第二轮.xlsx --sheet 门房 --header-row 3 --set kind=门房
        inventory import round2.kml --community 劲松北社区 --match-geometry

    """
    from rich.progress import Progress

    from inventory.importer import import_files

    with Progress(transient=True, console=console) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if total < 5000:
                return
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        run = _in_store(
            db,
            lambda engine: import_files(
                engine,
                files,
                report_to=report,
                save_profile_to=save_profile,
                layer=layer,
                all_layers=all_layers,
                communities=communities,
                crs=crs,
                encoding=encoding,
                community=community,
                field_map=map_,
                profile=profile,
                dry_run=dry_run,
                constants=set_,
                match_geometry=match_geometry,
                header_row=header_row,
                progress=progress,
            ),
        )
    for _path, exc in run.failed:
        _error(as_flags(str(exc)))
    for r in run.reports:
        _print_report(r)
    if run.report_file:
        _say(_t("report_written", path=run.report_file))
    if not run.ok:
        raise typer.Exit(1)


_SPACE_HEADERS = {
    "survey_ref": "Survey ref",
    "community": "Community",
    "kind": "Kind",
    "floor_area_m2": "Floor m²",
    "usable_area_m2": "Usable m²",
    "parking_spaces": "Parking",
    "owner_name": "Owner",
    "land_type": "Land",
    "certificate_status": "Certificate",
    "quality_flags": "Flags",
}


@app.command()
def spaces(
    community: CommunityOption = None,
    kind: KindOption = None,
    batch: Annotated[
        int | None, typer.Option(help="Only spaces last written by this import batch.")
    ] = None,
    format_: FormatOption = None,
    output: OutputOption = None,
    db: DbOption = None,
) -> None:
    """List spaces with their areas, tenure and community; export them for QGIS or Excel.

    Example:
        inventory spaces --kind 锅炉房
        inventory spaces --community 劲松北社区 --output spaces.gpkg
        inventory spaces --batch 2 --format csv --output batch2.csv

    """
    from inventory import listing

    # the terminal shows the first rows: only those are read
    limit = None if output is not None else TERMINAL_ROWS
    frame, total = _in_store(
        db,
        lambda e: listing.spaces_and_count(
            e, community=community, kinds=kind, batch=batch, limit=limit
        ),
    )
    if output is not None:
        _emit({"spaces": frame}, output, format_, "")
        return
    shown = frame if LANG else frame.assign(kind=frame["kind_zh"] + " " + frame["kind"])
    for col in ("floor_area_m2", "usable_area_m2", "parking_spaces"):
        shown[col] = shown[col].astype(float).round(0)
    console.print(
        _table(
            shown,
            _t("n_spaces", n=total),
            list(_SPACE_HEADERS),
            total=total,
            headers=_SPACE_HEADERS,
        )
    )


@app.command()
def rejects(
    batch: Annotated[int | None, typer.Option(help="Only this import batch.")] = None,
    resolved: Annotated[
        bool,
        typer.Option("--resolved", help="List the resolved rejects too (fixed by a later batch)."),
    ] = False,
    format_: FormatOption = None,
    output: OutputOption = None,
    db: DbOption = None,
) -> None:
    """Show the quarantine: features that could not be imported, with why and their raw data.

    --output fix.gpkg|csv|xlsx writes the open rejects of one batch as the surveyor
    delivered them — the file's own columns, the geometry in its CRS and a
    rejected_because column — to fix in QGIS or Excel and import back; each reject whose
    survey reference then loads is resolved. --format json writes the quarantine as stored.

    Example:
        inventory rejects
        inventory rejects --batch 3 --output fix.xlsx
        inventory import fix.xlsx --crs EPSG:4548

    """
    from inventory import listing, outputs

    chosen = (
        outputs.format_for(output, format_) if output is not None and str(output) != "-" else None
    )
    if chosen is not None and chosen != "json":
        frame, hint = _in_store(db, lambda e: listing.rejects_to_fix(e, batch=batch))
        written = _call(lambda: outputs.write(frame, output, chosen, layer="rejects"))
        keeps_crs = chosen in ("gpkg", "geojson")
        crs = "" if keeps_crs or not hint else f" {hint}"
        _say(
            f"{len(frame)} rejected features written to {written} with the file's own columns "
            f"and geometry ({frame.crs.to_string() if frame.crs else 'no CRS'}); fix them, then "
            f"import the file back: inventory import {written.name}{crs} (and --community, "
            "--map or --profile as for the first import)."
        )
        return
    limit = None if output is not None else TERMINAL_ROWS
    frame, total = _in_store(
        db, lambda e: listing.rejects_and_count(e, batch=batch, limit=limit, resolved=resolved)
    )
    if output is not None:
        _emit({"rejects": frame}, output, format_, "")
        return
    shown = frame.assign(
        source_file=frame["source_file"].map(lambda p: Path(p).name),
        reasons=frame["reasons"].map(lambda r: as_flags("; ".join(r))),
        resolved_batch_id=frame["resolved_batch_id"].map(
            lambda b: "" if b is None or b != b else f"by batch {int(b)}"  # NaN: not resolved
        ),
    )
    headers = {
        "batch_id": "Batch",
        "source_file": "File",
        "source_row": "Row",
        "survey_ref": "Survey ref",
        "reasons": "Reasons",
    }
    if resolved:
        headers["resolved_batch_id"] = "Resolved"
    what = "rejected features" if resolved else "open rejected features"
    console.print(_table(shown, f"{total} {what}", list(headers), total=total, headers=headers))


@app.command()
def batches(
    format_: FormatOption = None,
    output: OutputOption = None,
    db: DbOption = None,
) -> None:
    """List the import batches (survey rounds): file, who, when, counts and open rejects.

    Example:
        inventory batches
        inventory batches --output batches.xlsx

    """
    from inventory import rounds

    frame = _in_store(db, rounds.batches)
    if output is not None:
        _emit({"batches": frame}, output, format_, "")
        return
    shown = frame.assign(started_at=frame["started_at"].map(_when))
    headers = {
        "batch_id": "Batch",
        "started_at": "When (UTC)",
        "file": "File",
        "read": "Read",
        "loaded": "Loaded",
        "updated": "Updated",
        "unchanged": "Unchanged",
        "rejected": "Rejected",
        "rejects_open": "Open rejects",
        "imported_by": "By",
        "layer": "Layer",
    }
    console.print(_table(shown, f"{len(frame)} import batches", list(headers), headers=headers))


def _when(value) -> str:
    """Return a timestamp as the terminal shows it: to the minute, in UTC."""
    import pandas as pd

    if value is None or pd.isna(value):
        return ""
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


@app.command()
def history(
    ref: Annotated[str | None, typer.Argument(help="A space's survey reference (编号).")] = None,
    community: CommunityOption = None,
    batch: Annotated[
        int | None, typer.Option(help="Only the changes of this import batch.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only changes from this day on (YYYY-MM-DD).")
    ] = None,
    format_: FormatOption = None,
    output: OutputOption = None,
    db: DbOption = None,
) -> None:
    """Show what changed: each field's old → new value, when, by which batch or person.

    Example:
        inventory history JS-013
        inventory history --batch 5
        inventory history --community 劲松北社区 --since 2025-01-01 --output changes.xlsx

    """
    from inventory import rounds

    day = _date(since, "--since")
    frame = _in_store(
        db, lambda e: rounds.history(e, ref, community=community, batch=batch, since=day)
    )
    if output is not None:
        _emit({"history": frame}, output, format_, "")
        return
    shown = frame.assign(changed_at=frame["changed_at"].map(_when))
    headers = {
        "survey_ref": "Survey ref",
        "field": "Field",
        "old_value": "Old",
        "new_value": "New",
        "changed_at": "When",
        "batch_id": "Batch",
        "changed_by": "By",
    }
    title = f"{len(frame)} changes" + (f" of {ref}" if ref else "")
    console.print(_table(shown, title, list(headers), headers=headers))


@app.command()
def diff(
    batch: Annotated[
        list[str],
        typer.Option(
            help="The two survey rounds, earlier first: --batch 2 --batch 5; a round of "
            "several files as --batch 5,6,7."
        ),
    ],
    format_: FormatOption = None,
    output: OutputOption = None,
    db: DbOption = None,
) -> None:
    """Compare two survey rounds: the spaces added, removed and changed (old → new).

    Example:
        inventory diff --batch 2 --batch 5
        inventory diff --batch 2 --batch 5 --output round2.xlsx

    """
    from inventory import rounds

    if len(batch) != 2:
        _fail(f"Give two rounds, earlier first: --batch A --batch B ({len(batch)} given).")
    try:
        first, second = ([int(n) for n in text.split(",") if n.strip()] for text in batch)
    except ValueError:
        _fail(f"--batch {' --batch '.join(batch)}: give batch numbers, e.g. --batch 2 --batch 5,6.")
    result = _in_store(db, lambda e: rounds.diff(e, first, second))
    if output is not None:
        _emit(result.tables(), output, format_, "")
        return
    a, b = (",".join(map(str, r)) for r in (result.a, result.b))
    console.print(
        _table(result.added, f"{len(result.added)} added in batch {b}", headers=_DIFF_HEADERS)
    )
    console.print(
        _table(
            result.removed,
            f"{len(result.removed)} delivered by batch {a}, not by batch {b}",
            headers=_DIFF_HEADERS,
        )
    )
    console.print(
        _table(result.changed, f"{len(result.changed)} fields changed", headers=_DIFF_HEADERS)
    )


_DIFF_HEADERS = {
    "survey_ref": "Survey ref",
    "community": "Community",
    "kind": "Kind",
    "field": "Field",
    "old_value": "Old",
    "new_value": "New",
}


@app.command()
def retire(
    ref: Annotated[str, typer.Argument(help="The survey reference (编号) of the space.")],
    reason: Annotated[
        str | None, typer.Option(help="Why: demolished (已拆除), merged, surveyed in error…")
    ] = None,
    community: Annotated[
        str | None, typer.Option(help="Its community, when several have this reference.")
    ] = None,
    undo: Annotated[bool, typer.Option("--undo", help="Bring a retired space back.")] = False,
    db: DbOption = None,
) -> None:
    """Retire a space (demolished, merged, surveyed in error): kept with its history, out of analyses.

    Example:
        inventory retire JS-006 --reason 已拆除
        inventory retire JS-006 --undo

    """
    from inventory import rounds

    done = _in_store(db, lambda e: rounds.retire(e, ref, reason, community=community, undo=undo))
    if done.retired:
        _say(
            f"{done.survey_ref} ({done.community}) retired: {done.reason}. It keeps its history "
            "and tenure and leaves every analysis; inventory retire "
            f"{done.survey_ref} --undo brings it back."
        )
    else:
        _say(f"{done.survey_ref} ({done.community}) is back in the analyses.")


@app.command()
def gaps(
    community: CommunityOption = None,
    expiring_months: Annotated[
        int, typer.Option(help="Warn of operating rights ending within this many months.")
    ] = 12,
    policy: PolicyOption = None,
    format_: FormatOption = None,
    output: OutputOption = None,
    db: DbOption = None,
) -> None:
    """Title gaps: every space whose tenure is not clean, the kind of gap and its severity.

    Severity (default rules, inventory/policies/default.toml): blocking (allocated land,
    dispute, unknown owner, expired operating right), transitional (missing/partial
    certificate, several owners), minor (operating right ending soon). --policy
    beijing-2021: allocated-land boiler rooms, coal yards, bike sheds, gatehouses and
    community rooms become transitional for community services. Also lists data-quality
    flags, and totals per community.

    Example:
        inventory gaps
        inventory gaps --community 劲松北社区 --output gaps.xlsx
        inventory gaps --policy beijing-2021

    """
    from inventory.gaps import title_gaps_in_store

    rows, totals = _in_store(
        db,
        lambda e: title_gaps_in_store(
            e, community=community, expiring_months=expiring_months, policy=policy
        ),
    )
    _emit(
        {"gaps": rows, "gap_totals": totals},
        output,
        format_,
        _t("gaps_or_flags"),
        [
            "survey_ref",
            "community",
            "kind",
            "usable_area_m2",
            "gap_severity",
            "gap_detail",
            "quality_flags",
        ],
    )


BUNDLE_COLUMNS = [
    "bundle_id",
    "communities",
    "members",
    "member_count",
    "usable_area_m2",
    "smallest_m2",
    "largest_m2",
    "clean",
    "transitional",
    "blocking",
]


@app.command()
def bundles(
    max_gap: MaxGapOption = DEFAULT_MAX_GAP_M,
    kind: Annotated[
        list[str] | None,
        typer.Option(help="Kinds that may join (repeatable); default all but parking."),
    ] = None,
    min_area: Annotated[
        float | None, typer.Option(help="Leave out spaces under this usable area (m²).")
    ] = None,
    exclude_blocking: Annotated[
        bool, typer.Option("--exclude-blocking", help="Leave out spaces with a blocking title gap.")
    ] = False,
    across_communities: Annotated[
        bool,
        typer.Option(
            "--across-communities", help="Pool spaces of neighbouring communities (片区统筹)."
        ),
    ] = False,
    community: CommunityOption = None,
    format_: FormatOption = None,
    output: OutputOption = None,
    db: DbOption = None,
) -> None:
    """Bundles (聚少成多): groups of spaces close enough to be run as one unit.

    Example:
        inventory bundles
        inventory bundles --max-gap 60 --exclude-blocking --output bundles.gpkg

    """
    from inventory.bundles import bundles_in_store

    found, members = _in_store(
        db,
        lambda e: bundles_in_store(
            e,
            max_gap,
            community=community,
            kinds=kind,
            min_area_m2=min_area,
            exclude_blocking=exclude_blocking,
            across_communities=across_communities,
        ),
    )
    layers = {"bundles": found, "bundle_members": members}
    if output is None:
        layers = {"bundles": found}  # the members are in each bundle's row
    _emit(layers, output, format_, _t("bundles_within", gap=max_gap), BUNDLE_COLUMNS)


@app.command()
def capacity(
    by: Annotated[
        str, typer.Option(help=f"Group by, comma-separated: {', '.join(CAPACITY_GROUPS)}.")
    ] = "community,kind",
    near: Annotated[str | None, typer.Option(help="LON,LAT (WGS84) of a point of need.")] = None,
    radius: Annotated[float | None, typer.Option(help="Metres around --near.")] = None,
    within: Annotated[
        Path | None, typer.Option(help="Only spaces inside the polygons of this file.")
    ] = None,
    community: CommunityOption = None,
    need_area: Annotated[
        float | None,
        typer.Option(
            help="List the spaces and bundles that can host a need of this many m², best first."
        ),
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option(help="With --need-area: only these kinds (repeatable).")
    ] = None,
    max_gap: Annotated[
        float, typer.Option(help="Bundle gap (m) for --by bundle and --need-area.")
    ] = DEFAULT_MAX_GAP_M,
    format_: FormatOption = None,
    output: OutputOption = None,
    db: DbOption = None,
) -> None:
    """Capacity: usable area, counts and parking spaces by area, kind and tenure; need matching.

    Example:
        inventory capacity --by kind,tenure_status
        inventory capacity --near 116.4655,39.8795 --radius 500 --by kind
        inventory capacity --need-area 150 --near 116.4655,39.8795 --radius 300

    """
    from inventory.capacity import answer_in_store

    name, frame = _in_store(
        db,
        lambda e: answer_in_store(
            e,
            by,
            near=near,
            radius_m=radius,
            within=within,
            community=community,
            need_area_m2=need_area,
            kinds=kind,
            max_gap_m=max_gap,
        ),
    )
    if name == "hosts":
        columns = [
            "host",
            "id",
            "community",
            "members",
            "usable_area_m2",
            "title",
            "distance_m",
            "spare_m2",
        ]
        title = _t("hosts_for", need=need_area)
        _emit({name: frame}, output, format_, title, columns)
    else:
        _emit({name: frame}, output, format_, _t("capacity"))


@app.command("revenue")
def revenue_(
    scenarios: Annotated[
        list[str] | None,
        typer.Argument(
            help="Scenario files (TOML) or shipped names; several with --compare.",
            show_default=False,
        ),
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(help="Scenario file (TOML), or the name of a shipped one: jinsong_north."),
    ] = None,
    compare: Annotated[
        bool, typer.Option("--compare", help="Compare the scenarios side by side.")
    ] = False,
    community: Annotated[
        str | None,
        typer.Option(help="Run on this community instead of the scenario's own (or package)."),
    ] = None,
    format_: Annotated[
        str | None,
        typer.Option("--format", help="csv, json or xlsx (default: from --output's suffix)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Write every table (summary, stages, streams, communities, cash flows, "
            "allocation; or the comparison) to this file: sheets of one xlsx, or files."
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(help="Write a PNG of cumulative cash flow per variant (or per scenario)."),
    ] = None,
    period: Annotated[
        str,
        typer.Option(
            help="Cash flow table and export by year or by month (each year spread over its "
            "months; payback to the month is in the summary either way)."
        ),
    ] = "year",
    policy: PolicyOption = None,
    db: DbOption = None,
) -> None:
    """Revenue of a renewal model: both stages, each stream, each community, and the gaps.

    Runs the scenario as surveyed, with clean-title spaces only, and with every gap
    resolved: the renovation stage (Ro, Co, So), the mature year of operation by stream
    (Rk, Ck, Sk), payback, NPV, IRR (万元). With --compare, the scenarios side by side.
    Shipped scenarios: jinsong_north, jinsong_north_3100, jinsong_north_phased,
    jinsong_north_beijing_2021, jinsong_master_lease, zhegong, guangming, heyuan, hongyupo.

    Example:
        inventory revenue
        inventory revenue my_scenario.toml --community 劲松北社区 --plot cash.png
        inventory revenue --period month --output cash_flow.xlsx
        inventory revenue --compare jinsong_north jinsong_north_phased jinsong_master_lease

    """
    from inventory import revenue

    names = [*([scenario] if scenario else []), *(scenarios or [])] or ["jinsong_north"]
    if compare:
        if len(names) < 2:
            _fail("--compare needs two scenarios or more, e.g. `revenue --compare a.toml b.toml`.")
        _compare(names, community, output, format_, plot, db, policy)
        return
    if len(names) > 1:
        _fail(f"{len(names)} scenarios given ({', '.join(names)}); add --compare to compare them.")
    result = _in_store(
        db, lambda e: revenue.estimate_in_store(e, names[0], community, policy=policy)
    )
    tables = _call(lambda: result.tables(period))
    if plot:
        _say(_t("plot_written", path=_call(lambda: revenue.plot(result, plot, lang=LANG))))
    _print_revenue(result)
    streams = [st.name for st in result.scenario.streams]
    columns = [period, *streams, "subsidy", "operating_cost", "renovation_net", "net", "cumulative"]
    flows = tables[f"{period}ly"]
    surveyed = flows[flows["variant"] == "as surveyed"]
    unit = _wan()
    console.print(
        _table(surveyed, _t("cash_flow", period=_t(f"period_{period}"), unit=unit), columns)
    )
    if output is not None:
        _emit(tables, output, format_, "")


def _compare(names, community, output, format_, plot, db, policy) -> None:
    from inventory import revenue

    table, results = _in_store(
        db, lambda e: revenue.compare_in_store(e, names, community, policy=policy)
    )
    if plot:
        _say(_t("plot_written", path=_call(lambda: revenue.plot_compare(results, plot, lang=LANG))))
    # one column per scenario, one row per figure: fits a terminal
    unit = _wan()
    view = Table(title=_t("compared", unit=unit), title_justify="left")
    view.add_column("", no_wrap=True)
    for i in range(len(table)):
        view.add_column(str(i + 1), justify="right", overflow="fold")
    shown = i18n.labelled(table, LANG)
    for col in table.columns:
        view.add_row(i18n.word(i18n.FIGURES, col, LANG), *[_cell(v) for v in shown[col]])
    console.print(view)
    if output is not None:
        _emit(revenue.comparison_tables(results), output, format_, "")


def _wan() -> str:
    """Return the unit of the revenue tables: 万元, or its words in the chosen language."""
    return _t("wan") if LANG else "万元"


def _value(code: str) -> str:
    """Return a code the command line shows (a case, a stream, a party) in the language."""
    return i18n.word(i18n.VALUES, code, LANG)


def _print_revenue(result) -> None:
    summary, s = result.summary(), result.scenario
    # one column per variant, one row per figure: fits an 80-column terminal
    unit = _wan()
    name, model = (i18n.one_language(t, LANG) for t in (s.name, s.model_label))
    title = f"{name} — {model} — {unit}"
    table = Table(title=_safe(title), title_justify="left")
    rows = [i18n.word(i18n.FIGURES, c, LANG) for c in summary.columns.drop("variant")]
    table.add_column("", no_wrap=True, min_width=max(map(cell_len, rows)))
    for variant in summary["variant"]:
        table.add_column(_value(variant), justify="right", overflow="fold")
    for col, label in zip(summary.columns.drop("variant"), rows, strict=True):
        table.add_row(label, *[_cell(v) for v in summary[col]])
    console.print(table)
    m = result.surveyed.metrics
    console.print(
        _table(
            result.stages(),
            _t("stages", year=m.mature_year, unit=unit),
            ["stage", "line", "item", "party", "year", "amount_wan"],
        )
    )
    pnl = result.streams()
    console.print(
        _table(
            pnl,
            _t("pnl", year=m.mature_year, unit=unit),
            ["stream", "revenue_wan", "cost_wan", "result_wan"],
        )
    )
    for row in pnl.itertuples():
        if row.result_wan < 0:
            share = row.loss_share_of_other_revenue_pct
            area = row.break_even_managed_area_m2
            _say(
                _t(
                    "stream_short",
                    stream=_value(row.stream),
                    loss=-row.result_wan,
                    yuan=-row.result_wan * 10_000,
                    unit=unit,
                )
                + (_t("stream_share", share=share) if share else "")
                + (_t("stream_break_even", area=area) if area else "")
                + _t("full_stop")
            )
    if result.inventory is not None and len(result.inventory.communities) > 1:
        console.print(_table(result.communities(), _t("package_communities", unit=unit)))
        _say(_t("coverage", **result.coverage()))
    pays = result.who_pays()
    if pays:
        total = sum(pays.values()) or 1.0
        shares = _t("list_sep").join(f"{_value(p)} {v / total:.0%}" for p, v in pays.items())
        _say(_t("who_pays", shares=shares))
    if result.at_risk_rent_share or result.blocked:
        _say(_t("at_risk", rent=result.at_risk_rent_share, revenue=result.at_risk_revenue_share))
    risk = result.at_risk()
    if len(risk):
        console.print(
            _table(
                risk,
                _t("at_risk_table", unit=unit),
                ["survey_ref", "gap_severity", "rent_wan", "rent_resolved_wan", "gap_detail"],
            )
        )
    if result.blocked:
        refs = _t("list_sep").join(result.blocked)
        rent = result.foregone_rent_wan
        _say(_t("blocked", refs=refs, rent=rent, yuan=rent * 10_000, unit=unit))
    for v in result.variants.values():
        if not v.metrics.irr_unique:
            _say(
                _t("irr_not_unique", variant=_value(v.name), n=v.metrics.sign_changes),
                style="yellow",
            )


@app.command("map")
def map_(
    out: Annotated[Path, typer.Argument(help="HTML file to write.")] = Path("maps/inventory.html"),
    lang: Annotated[
        str | None,
        typer.Option(
            help="Labels and legend: zh or en (default: inventory --lang or INVENTORY_LANG, else zh)."
        ),
    ] = None,
    community: CommunityOption = None,
    district: Annotated[
        str | None, typer.Option(help="Only the communities of this district (区).")
    ] = None,
    kind: KindOption = None,
    title: Annotated[str | None, typer.Option(help="Title shown on the map.")] = None,
    tiles: Annotated[
        str,
        typer.Option(
            help="Online basemap: none (offline, default), osm, tianditu, tianditu-satellite "
            "(with --tiles-key), gaode, gaode-satellite (GCJ-02: the data are shifted onto "
            "them), esri-satellite, or an xyzservices name."
        ),
    ] = "none",
    tiles_key: Annotated[
        str | None,
        typer.Option(envvar="TIANDITU_KEY", help="Tianditu key (天地图 tk) for --tiles tianditu."),
    ] = None,
    base: Annotated[
        list[Path] | None,
        typer.Option(
            help="Your own layer drawn under the spaces, offline (roads.gpkg, buildings.shp); "
            "repeat for more."
        ),
    ] = None,
    max_gap: Annotated[
        float, typer.Option(help="Bundle gap (m) for the bundles layer.")
    ] = DEFAULT_MAX_GAP_M,
    mode: Annotated[
        str,
        typer.Option(
            help="full: every space drawn (a community); city: community totals when zoomed "
            "out, the spaces in view from zoom 16 (100k spaces in a few MB); auto: city above "
            "3,000 spaces."
        ),
    ] = "auto",
    scenario: Annotated[
        str | None,
        typer.Option(
            help="Add each space's use and estimated rent (as surveyed, and with gaps "
            "resolved) from this revenue scenario (file, or a shipped name: jinsong_north)."
        ),
    ] = None,
    color_by: Annotated[
        str,
        typer.Option(
            "--color-by",
            help="Fill by status (title status), kind, vacancy, bundle or use (needs "
            "--scenario); unless status, the title status is the outline.",
        ),
    ] = "status",
    city_measure: Annotated[
        str,
        typer.Option(
            help="City map circles classed by blocking_share, usable_per_household or "
            "revenue (needs --scenario)."
        ),
    ] = "blocking_share",
    classes: Annotated[
        str, typer.Option(help="City map classes: quantiles or natural_breaks.")
    ] = "quantiles",
    policy: PolicyOption = None,
    db: DbOption = None,
) -> None:
    """Write a self-contained HTML map for meetings: opens offline, in any browser.

    Spaces by kind (layers), coloured by title status, blocking gaps outlined, bundles
    and community boundaries, popups with the numbers; Chinese or English.

    Example:
        inventory map maps/jinsong.html --community 劲松北社区
        inventory map maps/jinsong_en.html --lang en --tiles osm
        inventory map maps/city.html --mode city
        inventory map maps/chaoyang.html --district 朝阳区
        inventory map maps/jinsong_rent.html --scenario jinsong_north
        inventory map maps/jinsong_kinds.html --color-by kind --base roads.gpkg
        inventory map maps/jinsong_tdt.html --tiles tianditu --tiles-key YOUR_KEY
        inventory map maps/city.html --mode city --city-measure usable_per_household --classes natural_breaks

    """
    from inventory.maps import map_from_store

    path, n = _in_store(
        db,
        lambda e: map_from_store(
            e,
            out,
            lang=lang or LANG or "zh",
            community=community,
            district=district,
            kinds=kind,
            title=title,
            tiles=tiles,
            max_gap_m=max_gap,
            mode=mode,
            scenario=scenario,
            policy=policy,
            color_by=color_by,
            city_measure=city_measure,
            classes=classes,
            tiles_key=tiles_key,
            base=base,
        ),
    )
    kb = path.stat().st_size / 1024
    _say(_t("map_written", n=n, path=path, kb=kb) + _t("offline" if tiles == "none" else "online"))


@app.command("import-rights")
def import_rights_(
    path: Annotated[Path, typer.Argument(help="Rights table: .csv or .xlsx, one right per row.")],
    community: Annotated[
        str | None,
        typer.Option(help="Community of the survey references, when a row does not say."),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write the quarantined rows with their reasons here.")
    ] = None,
    db: DbOption = None,
) -> None:
    """Import a table of parties and rights by survey reference (zh or en headers).

    Columns: 编号 survey_ref, 权利类型 right, 权利人 holder (required); 主体类型, 份额,
    授权方, 起始日期, 终止日期, 年租金, 许可用途, 许可条件, 状态, and a source: 证件类型,
    证件编号, 发证机关, 发证日期. A row that cannot be recorded is quarantined with its
    reason; the others are recorded, in one transaction.

    Example:
        inventory import-rights sample_data/jinsong_north_rights.csv
        inventory import-rights rights.xlsx --community 劲松北社区 --report rejected.csv

    """
    from inventory.tenure import import_rights

    result = _in_store(db, lambda e: import_rights(e, path, community=community))
    _print_rights(result)
    if report is not None:
        _emit({"rejected": result.issues_frame()}, report, None, "")
    if result.rejected:
        raise typer.Exit(2)


def _print_rights(result) -> None:
    if result is None:
        return
    _say(
        _t(
            "rights_read",
            source=result.source,
            read=result.read,
            loaded=result.loaded,
            rejected=result.rejected,
            batch=result.batch_id,
        )
    )
    if result.ignored_columns:
        _say(_t("columns_unused", columns=", ".join(result.ignored_columns)))
    if result.issues:
        console.print(_table(result.issues_frame(), _t("quarantined_rows")))


def _date(value: str | None, flag: str):
    from datetime import date

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"{flag} {value!r} is not a date; write it as 2024-06-30.")


@app.command()
def tenure(
    ref: Annotated[str, typer.Argument(help="Survey reference of the space (编号).")],
    community: CommunityOption = None,
    right: Annotated[
        str | None,
        typer.Option(
            help="Record a right: ownership, use_right, operating_right, lease, "
            "transitional_permit or change_of_use (or 所有权, 经营权, 租赁, 临时许可…)."
        ),
    ] = None,
    holder: Annotated[
        str | None, typer.Option(help="Who holds the right (a party's name).")
    ] = None,
    holder_type: Annotated[
        str,
        typer.Option(
            help="The holder's type if new: person, work_unit, government, state_enterprise, "
            "residents_committee, operator, collective, unknown."
        ),
    ] = "unknown",
    granted_by: Annotated[str | None, typer.Option(help="Who granted it (lessor, issuer).")] = None,
    parent: Annotated[
        int | None, typer.Option(help="The right this one rests on (a lease on a lease).")
    ] = None,
    share: Annotated[float | None, typer.Option(help="Ownership share, e.g. 0.5.")] = None,
    start: Annotated[str | None, typer.Option(help="From (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option(help="Until (YYYY-MM-DD).")] = None,
    rent: Annotated[float | None, typer.Option(help="Rent, 元 a year (a lease).")] = None,
    uses: Annotated[
        list[str] | None, typer.Option(help="Uses a permit allows (repeatable): 养老, 社区食堂…")
    ] = None,
    conditions: Annotated[str | None, typer.Option(help="A permit's conditions.")] = None,
    status: Annotated[
        str,
        typer.Option(help="active, ended; for a change of use: none, applied, approved, refused."),
    ] = "active",
    attach: Annotated[
        str | None,
        typer.Option(
            help="Record a source: certificate, contract, permit_letter, minutes or other."
        ),
    ] = None,
    number: Annotated[str | None, typer.Option(help="The source's number (证号, 文号).")] = None,
    issued: Annotated[str | None, typer.Option(help="The source's date (YYYY-MM-DD).")] = None,
    issuer: Annotated[str | None, typer.Option(help="Who issued the source.")] = None,
    file: Annotated[Path | None, typer.Option(help="The source's file, kept in the store.")] = None,
    proves: Annotated[
        list[int] | None, typer.Option(help="Rights the source proves (repeatable).")
    ] = None,
    source: Annotated[
        int | None, typer.Option(help="A recorded source the change rests on.")
    ] = None,
    certificate: Annotated[
        str | None, typer.Option(help="Change the certificate status: complete, partial…")
    ] = None,
    dispute: Annotated[
        str | None, typer.Option(help="Open a dispute, with what it is about.")
    ] = None,
    settle: Annotated[bool, typer.Option("--settle", help="Settle the space's dispute.")] = False,
    why: Annotated[
        str | None, typer.Option(help="Why the change is made (kept in history).")
    ] = None,
    output: OutputOption = None,
    format_: FormatOption = None,
    db: DbOption = None,
) -> None:
    """Show or change a space's tenure: parties, shares, rights and chains, permits, sources.

    With no change option, shows it. --right records a right (--holder, --share, --until,
    --uses for a permit, --parent for a lease on a lease); --attach records a source with
    its file; --certificate, --dispute and --settle change the space's status. Every change
    is kept in the tenure history with who, when, --why and --source.

    Example:
        inventory tenure JS-011
        inventory tenure JS-011 --right ownership --holder 劲松一建公司 --share 0.6 --why "协议"
        inventory tenure JS-013 --right transitional_permit --holder 劲松街道办事处 --uses 养老 --until 2027-12-31
        inventory tenure JS-013 --attach permit_letter --number "劲街〔2024〕12号" --file permit.pdf --proves 7
        inventory tenure JS-011 --settle --why "两单位达成协议"

    """
    from inventory import tenure as t

    def change(engine):
        if right:
            t.record_right(
                engine,
                ref,
                right,
                holder or "",
                holder_type=holder_type,
                community=community,
                granted_by=granted_by,
                parent=parent,
                share=share,
                start=_date(start, "--start"),
                end=_date(until, "--until"),
                rent_yuan_year=rent,
                allowed_uses=uses,
                conditions=conditions,
                status=status,
                source=source,
                why=why,
            )
        if attach:
            t.attach_source(
                engine,
                ref,
                attach,
                number=number,
                issued_on=_date(issued, "--issued"),
                issuer=issuer,
                file=file,
                rights=proves,
                community=community,
                why=why,
            )
        if certificate or dispute or settle:
            if dispute and settle:
                _fail("--dispute and --settle together: open a dispute or settle it, not both.")
            t.set_status(
                engine,
                ref,
                certificate_status=certificate,
                disputed=True if dispute else (False if settle else None),
                note=dispute,
                community=community,
                source=source,
                why=why,
            )
        return t.tenure_of(engine, ref, community)

    layers = _in_store(db, change)
    if output is not None:
        _emit(layers, output, format_, "")
        return
    console.print(
        _table(
            layers["rights"],
            f"{ref}: rights",
            ["right_id", "kind", "holder", "share", "end_date", "parent_id", "status", "sources"],
        )
    )
    flags = layers["rights"]["shares_flag"].dropna().unique()
    for flag in flags:
        _say(f"{ref}: {flag}.", style="yellow")
    if len(layers["sources"]):
        console.print(
            _table(
                layers["sources"], f"{ref}: sources", ["source_id", "kind", "number", "file_name"]
            )
        )
    if len(layers["history"]):
        console.print(
            _table(layers["history"], f"{ref}: history", ["when", "who", "what", "detail"])
        )


@app.command()
def export(
    out: Annotated[
        Path,
        typer.Argument(
            help="File to write: .gpkg (layers of one file), .xlsx (sheets of one workbook), "
            ".geojson or .csv (one file per layer)."
        ),
    ],
    community: CommunityOption = None,
    max_gap: Annotated[
        float, typer.Option(help="Bundle gap (m) for the bundles layer.")
    ] = DEFAULT_MAX_GAP_M,
    lang: Annotated[
        str | None,
        typer.Option(
            help="Headers and sheet names of .xlsx/.csv, field names QGIS shows: zh or en "
            "(default: INVENTORY_LANG, else the column names)."
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Export spaces, title gaps, bundles, communities and tenure records for QGIS and Excel.

    A GeoPackage opens in QGIS as typed layers of one geometry type each (room outlines
    in spaces, parking points in spaces_points), coloured by title status.

    Example:
        inventory export jinsong.gpkg
        inventory export jinsong.xlsx --community 劲松北社区 --lang zh

    """
    from inventory.export import export as export_all

    written = _in_store(
        db, lambda e: export_all(e, out, community=community, max_gap_m=max_gap, lang=lang or LANG)
    )
    for name, target, rows in written:
        _say(_t("written", rows=rows, layer=name, target=target))


@app.command()
def report(
    community: Annotated[str, typer.Argument(help="The community the pack is about.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="pack.html, or pack.pdf (printed by Chromium).")
    ],
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            help="A renewal model to compare (a file or a shipped name; repeat for more). "
            "Default: the shipped scenarios of the community."
        ),
    ] = None,
    lang: Annotated[
        str | None,
        typer.Option(
            help="Language of the pack: zh or en (default: inventory --lang or INVENTORY_LANG, else zh)."
        ),
    ] = None,
    max_gap: Annotated[
        float, typer.Option(help="Bundle gap (m) for the bundles.")
    ] = DEFAULT_MAX_GAP_M,
    policy: PolicyOption = None,
    db: DbOption = None,
) -> None:
    """Write a community's meeting pack: map, capacity, gaps, bundles, models, sources.

    One A4 document to print or send: HTML that opens anywhere, or PDF.

    Example:
        inventory report 劲松北社区 --output maps/jinsong_pack.html
        inventory report 劲松北社区 --output maps/jinsong_pack.pdf --lang en
        inventory report 劲松北社区 -o pack.pdf --scenario jinsong_north --scenario jinsong_master_lease

    """
    from inventory.pack import meeting_pack

    made = _in_store(
        db,
        lambda e: meeting_pack(
            e,
            community,
            output,
            scenarios=scenario or None,
            lang=lang or LANG or "zh",
            policy=policy,
            max_gap_m=max_gap,
        ),
    )
    _say(
        _t(
            "pack_written",
            community=made.community,
            path=made.path,
            kb=made.path.stat().st_size / 1024,
            spaces=made.spaces,
            gaps=made.gaps,
            bundles=made.bundles,
            models=len(made.scenarios),
        )
    )


@app.command()
def views(
    max_gap: Annotated[
        float, typer.Option(help="Bundle gap (m) of v_bundle and v_space's bundle_id.")
    ] = DEFAULT_MAX_GAP_M,
    policy: PolicyOption = None,
    drop: Annotated[bool, typer.Option("--drop", help="Drop the views instead.")] = False,
    db: DbOption = None,
) -> None:
    """Make the PostGIS store's views for QGIS: v_space, v_space_point, v_gap, v_bundle.

    Each lists in QGIS (Layer > Add PostGIS layers) as a layer of one geometry type, with
    community names, Chinese labels, the title status as of the day it is read, and the
    bundle. Run again to change the policy or the gap; roles see them as they see tables.

    Example:
        inventory views
        inventory views --policy beijing-2021 --max-gap 50
        inventory views --drop

    """
    from inventory import views as made

    if drop:
        dropped = _in_store(db, made.drop_views)
        _say(f"Dropped {len(dropped)} views" + (f": {', '.join(dropped)}." if dropped else "."))
        return
    found = _in_store(db, lambda e: made.create_views(e, max_gap_m=max_gap, policy=policy))
    table = Table(title="Views for QGIS")
    for col in ("view", "geometry", "rows"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for view in found:
        table.add_row(view.name, view.geometry or "(table)", str(view.rows))
    console.print(table)


@app.command()
def roles(
    limit: Annotated[
        str | None,
        typer.Option(help="Limit this role (a login or group) to --district / --street-office."),
    ] = None,
    district: Annotated[str | None, typer.Option(help="With --limit: only this district.")] = None,
    street_office: Annotated[
        str | None, typer.Option(help="With --limit: only this street office.")
    ] = None,
    db: DbOption = None,
) -> None:
    """Create the group roles of a shared PostGIS store, or limit one to an area.

    surveyor (import, edit), analyst (read), planner (read, export), admin (schema);
    give them with GRANT inventory_surveyor TO alice. Safe to run again. A limited role
    sees (and a surveyor writes) only the communities of its district or street office.

    Example:
        inventory roles
        inventory roles --limit alice --street-office 劲松街道

    """
    from inventory import roles as roles_job

    if limit is not None:
        _in_store(
            db,
            lambda e: roles_job.limit_role(
                e, limit, district=district, street_office=street_office
            ),
        )
        where = ", ".join(f for f in (district, street_office) if f) or "everything (no limit)"
        _say(f"{limit} now sees {where}.")
        return
    import pandas as pd

    found = _in_store(db, roles_job.create_roles)
    frame = pd.DataFrame(
        [(r.name, r.purpose, r.rights, ", ".join(r.members)) for r in found],
        columns=["role", "for", "rights on the tables", "members"],
    )
    console.print(_table(frame, "Group roles"))


@app.command()
def demo(
    db: Annotated[
        Path, typer.Option("--db", help="SpatiaLite file for the demo (replaced).")
    ] = DEMO_DB,
    out_dir: Annotated[Path, typer.Option(help="Folder for the exports.")] = Path("maps"),
) -> None:
    """Run the main job on the embedded store: import the sample survey, analyse it, export.

    Uses the Jinsong North sample (GBK shapefiles, Chinese field names, Gauss-Krüger
    coordinates) and its own store file, so your ./inventory.sqlite is never touched.

    Example:
        inventory demo

    """
    from inventory import demo as demo_job

    result = _call(lambda: demo_job.run(db, out_dir, lang=LANG))
    console.rule(_t("demo_store"))
    _say(_t("demo_fresh", db=result.db, revision=result.revision))
    console.rule(_t("demo_import"))
    for r in result.imports:
        _print_report(r)
    _print_rights(result.rights)
    console.rule(_t("demo_info"))
    _print_info(result.info)
    console.rule(_t("demo_gaps"))
    console.print(
        _table(
            result.gaps,
            _t("spaces_with_gaps", n=len(result.gaps)),
            ["survey_ref", "kind", "usable_area_m2", "gap_severity", "gaps"],
        )
    )
    console.print(_table(result.gap_totals, _t("per_community")))
    console.rule(_t("demo_bundles", gap=DEFAULT_MAX_GAP_M))
    console.print(
        _table(
            result.bundles,
            _t("bundles", n=len(result.bundles)),
            [c for c in BUNDLE_COLUMNS if c not in ("communities", "member_count")],
        )
    )
    console.rule(_t("demo_capacity"))
    console.print(_table(result.capacity, _t("capacity_by_kind_tenure")))
    console.print(
        _table(
            result.hosts,
            _t("canteen_hosts"),
            ["host", "id", "usable_area_m2", "title", "distance_m", "spare_m2"],
        )
    )
    console.rule(_t("demo_revenue"))
    _print_revenue(result.revenue)
    console.rule(_t("demo_exports"))
    for path in result.exports:
        _say(f"{path}  ({path.stat().st_size / 1024:,.0f} KB)")


@app.command("sample-data")
def sample_data(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the files into.")] = Path(
        "sample_data"
    ),
    cases: Annotated[
        bool,
        typer.Option(
            "--cases",
            help="Also write the other published cases (zhegong, guangming, heyuan, hongyupo) "
            "as GeoPackages with layers communities and spaces.",
        ),
    ] = False,
) -> None:
    """Write the Jinsong North sample survey (shapefiles in GBK + a GeoPackage).

    Example:
        inventory sample-data /tmp/jinsong
        inventory sample-data /tmp/cases --cases
        inventory import /tmp/cases/zhegong.gpkg --layer communities --communities
        inventory import /tmp/cases/zhegong.gpkg --layer spaces
        inventory revenue zhegong

    """
    from inventory.samples import write_jinsong_north, write_renewal_cases

    for path in _call(lambda: write_jinsong_north(out_dir)):
        _say(str(path))
    if cases:
        for path in _call(lambda: write_renewal_cases(out_dir)):
            _say(str(path))


def _examples_verbatim() -> None:
    """Show each command's example lines as written: click would run them into one line."""
    for command in app.registered_commands:
        doc = command.callback.__doc__
        # click leaves a paragraph that starts with a \b line as it is
        command.callback.__doc__ = doc.replace("    Example:\n", "    Example:\n\n    \b\n")


_examples_verbatim()


def main() -> None:  # pragma: no cover - console entry point
    """Run the command line."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
