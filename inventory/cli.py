"""The ``inventory`` command line. Parses arguments, calls one library function, prints.

No logic lives here: each command delegates to the module that does its job.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from inventory import capacity as capacity_job
from inventory import demo as demo_job
from inventory import export as export_job
from inventory import listing, maps, outputs, revenue, store
from inventory.bundles import DEFAULT_MAX_GAP_M, bundles_in_store, find_bundles
from inventory.codes import KIND
from inventory.db import connect
from inventory.errors import InventoryError
from inventory.gaps import title_gaps_in_store
from inventory.importer import ImportReport, import_file, write_reports

app = typer.Typer(
    name="inventory",
    help="Spatial inventory of stock spaces (存量空间) in old residential communities.\n\n"
    "The store is PostGIS when INVENTORY_DATABASE_URL is set, otherwise the SpatiaLite "
    "file ./inventory.sqlite (or the file given by --db).",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")

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
    Path | None, typer.Option(help="Write to this file instead of showing a table.")
]
CommunityOption = Annotated[str | None, typer.Option(help="Only this community.")]


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the library's errors into one red line and exit code 1."""
    try:
        yield
    except InventoryError as exc:
        err_console.print(f"[bold red]Error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


@contextmanager
def _store(db: str | None) -> Iterator:
    """Open the store named by --db (or the configured one) for one command."""
    engine = connect(db)
    try:
        yield engine
    finally:
        engine.dispose()


def _call(fn: Callable[[], T]) -> T:
    with _user_errors():
        return fn()


@app.command()
def init(db: DbOption = None) -> None:
    """Create the store's schema, or upgrade it to this version. Safe to run again.

    Example:
        inventory init
        inventory init --db /data/jinsong.sqlite

    """

    def run() -> str:
        engine = connect(db, create=True)
        try:
            return store.init(engine), store.info(engine)
        finally:
            engine.dispose()

    revision, info = _call(run)
    console.print(
        f"Store ready: {info.backend} at {info.location} (schema revision {revision}, "
        f"{info.spatial_version})."
    )


@app.command()
def info(db: DbOption = None) -> None:
    """Show the backend, where the store is (never its password), schema version and counts.

    Example:
        inventory info
        INVENTORY_DATABASE_URL=postgresql+psycopg://me@dbhost/inventory inventory info

    """

    def run() -> store.StoreInfo:
        with _store(db) as engine:
            return store.info(engine)

    _print_info(_call(run))


def _print_info(result: store.StoreInfo) -> None:
    summary = Table.grid(padding=(0, 2))
    summary.add_row("Backend", f"{result.backend} ({result.spatial_version})")
    summary.add_row("Location", result.location)
    status = (
        "not initialised — run `inventory init`"
        if result.schema_revision is None
        else (
            f"{result.schema_revision} (up to date)"
            if result.schema_revision == result.head_revision
            else f"{result.schema_revision} (this version needs {result.head_revision}: "
            "run `inventory init`)"
        )
    )
    summary.add_row("Schema", status)
    summary.add_row(
        "Contents",
        f"{result.communities} communities, {result.spaces} spaces, "
        f"{result.batches} import batches, {result.rejected} rejected features",
    )
    console.print(summary)
    if result.spaces_by_community_kind:
        shown, caption = _shown(
            result.spaces_by_community_kind,
            get_all="inventory capacity --by community,kind --output FILE writes them all",
        )
        table = Table(title="Spaces by community and kind", caption=caption, caption_justify="left")
        table.add_column("Community")
        table.add_column("Kind")
        table.add_column("Spaces", justify="right")
        table.add_column("Usable area m²", justify="right")
        table.add_column("Parking spaces", justify="right")
        for community, kind, count, area, parking in shown:
            label = f"{KIND.label(kind, 'zh')} {KIND.label(kind, 'en')}"
            table.add_row(
                community, label, str(count), f"{area:,.0f}", f"{parking:,}" if parking else ""
            )
        console.print(table)


def _print_report(report: ImportReport, max_issues: int = 25) -> None:
    where = report.source + (f" (layer {report.layer})" if report.layer else "")
    title = f"{'Dry run — nothing written: ' if report.dry_run else ''}{where} → {report.target}"
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "Features",
        f"read {report.read} = loaded {report.loaded} + updated {report.updated} + "
        f"unchanged {report.unchanged} + rejected {report.rejected}",
    )
    table.add_row("Encoding", f"{report.encoding} ({report.encoding_note})")
    table.add_row("CRS", report.crs)
    table.add_row(
        "Fields mapped", ", ".join(f"{s}→{t}" for s, t in report.fields.items()) or "none"
    )
    if report.unmapped:
        table.add_row("Kept as extra attributes", ", ".join(report.unmapped))
    if report.communities_created:
        table.add_row("New communities", ", ".join(report.communities_created))
    if report.batch_id is not None:
        table.add_row("Batch", str(report.batch_id))
    console.print(table)
    if report.issues:
        issues = Table(title="Rejected, repaired and flagged features", title_justify="left")
        for col in ("Row", "Survey ref", "Status", "Reasons"):
            issues.add_column(col)
        for issue in report.issues[:max_issues]:
            style = {"rejected": "red", "repaired": "yellow"}.get(issue.status, "cyan")
            issues.add_row(
                str(issue.row),
                issue.survey_ref or "",
                f"[{style}]{issue.status}[/]",
                "; ".join(issue.reasons),
            )
        console.print(issues)
        if len(report.issues) > max_issues:
            console.print(f"… and {len(report.issues) - max_issues} more: use --report FILE.")


@app.command("import")
def import_(
    files: Annotated[
        list[Path],
        typer.Argument(help="Shapefile (.shp or .zip), GeoPackage, GeoJSON, KML, CSV or XLSX."),
    ],
    layer: Annotated[
        str | None, typer.Option(help="Layer to import from a file with several.")
    ] = None,
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

    """
    engine = _call(lambda: connect(db))
    reports: list[ImportReport] = []
    failed = False
    try:
        with Progress(transient=True, console=console) as bar:
            tasks: dict[str, int] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if total < 5000:
                    return
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done)

            for path in files:
                try:
                    with _user_errors():
                        got = import_file(
                            engine,
                            path,
                            layer=layer,
                            all_layers=all_layers,
                            communities=communities,
                            crs=crs,
                            encoding=encoding,
                            community=community,
                            field_map=map_,
                            profile=profile,
                            save_profile_to=save_profile,
                            dry_run=dry_run,
                            progress=progress,
                        )
                except typer.Exit:
                    failed = True
                    continue
                reports += got
                failed |= any(r.imported == 0 for r in got)
    finally:
        engine.dispose()
    for r in reports:
        _print_report(r)
    if report and reports:
        _call(lambda: write_reports(reports, report))
        console.print(f"Report written to {report}")
    if failed:
        raise typer.Exit(1)


@app.command()
def spaces(
    community: CommunityOption = None,
    kind: Annotated[
        str | None, typer.Option(help="Only this kind (code or Chinese name: 锅炉房, boiler_room).")
    ] = None,
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

    def run():
        if output is None and format_ is not None:
            raise typer.BadParameter("--format needs --output FILE")
        filters = {"community": community, "kind": kind, "batch": batch}
        with _store(db) as engine:
            if output is not None:
                frame = listing.spaces(engine, **filters)
                return frame, len(frame), outputs.write(frame, output, format_, layer="spaces")
            # the terminal shows the first rows: load only those
            frame = listing.spaces(engine, **filters, limit=TERMINAL_ROWS)
            return frame, listing.count_spaces(engine, **filters), None

    frame, total, written = _call(run)
    if written:
        console.print(f"{total} spaces written to {written}")
        return
    shown, caption = _shown(frame, total)
    table = Table(title=f"{total} spaces", caption=caption, caption_justify="left")
    for col in (
        "Survey ref",
        "Community",
        "Kind",
        "Floor m²",
        "Usable m²",
        "Parking",
        "Owner",
        "Land",
        "Certificate",
        "Flags",
    ):
        table.add_column(col, justify="right" if "m²" in col or col == "Parking" else "left")
    for row in shown.itertuples():
        table.add_row(
            row.survey_ref,
            row.community,
            f"{row.kind_zh} {row.kind}",
            _num(row.floor_area_m2),
            _num(row.usable_area_m2),
            _num(row.parking_spaces),
            row.owner_name or "",
            row.land_type or "",
            row.certificate_status or "",
            "; ".join(row.quality_flags or []),
        )
    console.print(table)


def _num(value) -> str:
    return "" if value is None or value != value else f"{value:,.0f}"


@app.command()
def rejects(
    batch: Annotated[int | None, typer.Option(help="Only this import batch.")] = None,
    format_: Annotated[
        str | None,
        typer.Option("--format", help="csv, json or xlsx (default: from --output's suffix)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write to this file instead of showing a table.")
    ] = None,
    db: DbOption = None,
) -> None:
    """Show the quarantine: features that could not be imported, with why and their raw data.

    Example:
        inventory rejects
        inventory rejects --batch 3 --output rejects.xlsx

    """

    def run():
        with _store(db) as engine:
            if output is not None:
                frame = listing.rejects(engine, batch=batch)
                return frame, len(frame), outputs.write(frame, output, format_, layer="rejects")
            # the terminal shows the first rows: load only those
            frame = listing.rejects(engine, batch=batch, limit=TERMINAL_ROWS)
            return frame, listing.count_rejects(engine, batch=batch), None

    frame, total, written = _call(run)
    if written:
        console.print(f"{total} rejected features written to {written}")
        return
    shown, caption = _shown(frame, total)
    table = Table(title=f"{total} rejected features", caption=caption, caption_justify="left")
    for col in ("Batch", "File", "Row", "Survey ref", "Reasons"):
        table.add_column(col)
    for row in shown.itertuples():
        table.add_row(
            str(row.batch_id),
            Path(row.source_file).name,
            str(row.source_row),
            row.survey_ref or "",
            "; ".join(row.reasons),
        )
    console.print(table)


#: Rows a table shows on the terminal; ``--output FILE`` writes them all.
TERMINAL_ROWS = 100


def _shown(
    rows, total: int | None = None, get_all: str = "--output FILE writes them all"
) -> tuple[object, str | None]:
    """Return the rows (a frame or a list) to show on the terminal, and a caption if cut.

    ``total``: how many rows there are, when ``rows`` holds only the first.
    """
    total = len(rows) if total is None else total
    if total <= TERMINAL_ROWS:
        return rows, None
    return rows[:TERMINAL_ROWS], f"The first {TERMINAL_ROWS} of {total:,} rows; {get_all}."


def _table(frame, title: str, columns: list[str]) -> Table:
    shown, caption = _shown(frame)
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for col in columns:
        table.add_column(col, justify="right" if frame[col].dtype.kind in "if" else "left")
    for row in shown[columns].itertuples(index=False):
        table.add_row(*[_cell(v) for v in row])
    return table


def _cell(value) -> str:
    from pandas import isna  # loaded by then: cells come from frames

    if isinstance(value, list):
        return ", ".join(map(str, value))
    if value is None or isna(value):
        return ""
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def _write_layers(path: Path, fmt: str | None, layers: dict) -> None:
    for name, target, rows in outputs.write_layers(path, fmt, layers):
        console.print(f"{rows} rows ({name}) written to {target}")


def _load_spaces(db: str | None, community: str | None = None, bounds=None):
    with _store(db) as engine:
        return listing.spaces(engine, community=community, bounds=bounds)


@app.command()
def gaps(
    community: CommunityOption = None,
    expiring_months: Annotated[
        int, typer.Option(help="Warn of operating rights ending within this many months.")
    ] = 12,
    format_: FormatOption = None,
    output: OutputOption = None,
    db: DbOption = None,
) -> None:
    """Title gaps: every space whose tenure is not clean, the kind of gap and its severity.

    Severity (rules in inventory/gaps.py): blocking (allocated land, dispute, unknown
    owner, expired operating right), transitional (missing/partial certificate, several
    owners), minor (operating right ending soon). Also lists data-quality flags, and
    totals per community.

    Example:
        inventory gaps
        inventory gaps --community 劲松北社区 --output gaps.xlsx

    """

    def run():
        with _store(db) as engine:
            return title_gaps_in_store(engine, community=community, expiring_months=expiring_months)

    rows, totals = _call(run)
    if output:
        _call(lambda: _write_layers(output, format_, {"gaps": rows, "gap_totals": totals}))
        return
    console.print(
        _table(
            rows,
            f"{len(rows)} spaces with title gaps or data-quality flags",
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
    )
    console.print(_table(totals, "Per community", list(totals.columns)))


@app.command()
def bundles(
    max_gap: Annotated[
        float, typer.Option(help="Largest gap (m) between two spaces of one bundle.")
    ] = DEFAULT_MAX_GAP_M,
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

    def run():
        with _store(db) as engine:
            return bundles_in_store(
                engine,
                max_gap,
                community=community,
                kinds=kind,
                min_area_m2=min_area,
                exclude_blocking=exclude_blocking,
                across_communities=across_communities,
            )

    found, members = _call(run)
    if output:
        _call(lambda: _write_layers(output, format_, {"bundles": found, "bundle_members": members}))
        return
    console.print(
        _table(
            found,
            f"{len(found)} bundles within {max_gap:g} m",
            [
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
            ],
        )
    )


@app.command()
def capacity(
    by: Annotated[
        str, typer.Option(help=f"Group by, comma-separated: {', '.join(capacity_job.GROUPS)}.")
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

    def run():
        point = capacity_job.parse_point(near) if near else None
        groups = [b.strip() for b in by.split(",") if b.strip()]
        if within is None and need_area is None:
            with _store(db) as engine:
                return "capacity", capacity_job.capacity_in_store(
                    engine,
                    groups,
                    near=point,
                    radius_m=radius,
                    community=community,
                    max_gap_m=max_gap,
                )
        # the spatial index narrows the load to the box around the point; exact below
        bounds = capacity_job.near_bounds(*point, radius) if point and radius else None
        spaces = capacity_job.filter_spaces(
            _load_spaces(db, bounds=bounds),
            near=point,
            radius_m=radius,
            within=within,
            community=community,
        )
        if need_area is not None:
            return "hosts", capacity_job.hosts(
                spaces, need_area, near=point, radius_m=radius, kinds=kind, max_gap_m=max_gap
            )
        return "capacity", capacity_job.capacity(spaces, groups, max_gap)

    name, frame = _call(run)
    if output:
        _call(lambda: _write_layers(output, format_, {name: frame}))
        return
    if name == "hosts":
        console.print(
            _table(
                frame,
                f"{len(frame)} places can host {need_area:g} m², best first",
                [
                    "host",
                    "id",
                    "community",
                    "members",
                    "usable_area_m2",
                    "title",
                    "distance_m",
                    "spare_m2",
                ],
            )
        )
    else:
        console.print(_table(frame, "Capacity", list(frame.columns)))


@app.command("revenue")
def revenue_(
    scenario: Annotated[
        str, typer.Option(help="Scenario file (TOML), or the name of a shipped one: jinsong_north.")
    ] = "jinsong_north",
    community: CommunityOption = None,
    format_: Annotated[
        str | None,
        typer.Option("--format", help="csv, json or xlsx (default: from --output's suffix)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Write the summary, the cash flows (by --period) and the allocation to this file (three files, or sheets of one xlsx)."
        ),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG of cumulative cash flow per variant.")
    ] = None,
    period: Annotated[
        str,
        typer.Option(
            help="Cash flow table and export by year or by month (each year spread over its "
            "months; payback to the month is in the summary either way)."
        ),
    ] = "year",
    db: DbOption = None,
) -> None:
    """Revenue estimate of a concession: does it balance, and what hangs on title gaps.

    Runs the scenario as surveyed, with clean-title spaces only, and with every gap
    resolved: mature revenue by stream (万元), costs, payback year, NPV, IRR.

    Example:
        inventory revenue
        inventory revenue --scenario my_scenario.toml --community 劲松北社区 --plot cash.png
        inventory revenue --period month --output cash_flow.xlsx

    """

    def run():
        with _store(db) as engine:
            result = revenue.estimate_in_store(engine, scenario, community)
        flows = result.cash_flows(period)
        if plot:
            revenue.plot(result, plot)
        if output:
            _write_layers(
                output,
                format_,
                {
                    "summary": result.summary(),
                    f"{period}ly": flows,
                    "allocation": result.variants["as surveyed"].allocation,
                },
            )
        return result, flows

    result, flows = _call(run)
    _print_revenue(result)
    columns = [
        period,
        "rent",
        "parking",
        "property_fee",
        "services",
        "subsidy",
        "operating_cost",
        "capex",
        "net",
        "cumulative",
    ]
    surveyed = flows[flows["variant"] == "as surveyed"]
    console.print(_table(surveyed, f"{period.title()}ly cash flow as surveyed, 万元", columns))
    if plot:
        console.print(f"Plot written to {plot}")


@app.command("map")
def map_(
    out: Annotated[Path, typer.Argument(help="HTML file to write.")] = Path("maps/inventory.html"),
    lang: Annotated[str, typer.Option(help="Labels and legend: zh or en.")] = "zh",
    community: CommunityOption = None,
    kind: Annotated[list[str] | None, typer.Option(help="Only these kinds (repeatable).")] = None,
    title: Annotated[str | None, typer.Option(help="Title shown on the map.")] = None,
    tiles: Annotated[
        str,
        typer.Option(
            help="Basemap: none (offline, default) or osm (needs internet to show tiles)."
        ),
    ] = "none",
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
    db: DbOption = None,
) -> None:
    """Write a self-contained HTML map for meetings: opens offline, in any browser.

    Spaces by kind (layers), coloured by title status, blocking gaps outlined, bundles
    and community boundaries, popups with the numbers; Chinese or English.

    Example:
        inventory map maps/jinsong.html --community 劲松北社区
        inventory map maps/jinsong_en.html --lang en --tiles osm
        inventory map maps/city.html --mode city
        inventory map maps/jinsong_rent.html --scenario jinsong_north

    """

    def run():
        with _store(db) as engine:
            spaces = listing.spaces(engine, community=community)
            if kind:
                codes = [KIND.match(k) or k for k in kind]
                spaces = spaces[spaces["kind"].isin(codes)]
            boundaries = maps.communities_frame(engine, [community] if community else None)
            estimate = revenue.estimate_in_store(engine, scenario, community) if scenario else None
        found, members = find_bundles(spaces, max_gap) if len(spaces) else (None, None)
        m = maps.build_map(
            spaces,
            communities=boundaries,
            bundles=found,
            members=members,
            lang=lang,
            title=title,
            tiles=tiles,
            mode=mode,
            revenue=maps.revenue_by_space(estimate) if estimate else None,
        )
        return maps.save(m, out), len(spaces)

    path, n = _call(run)
    console.print(
        f"Map of {n} spaces written to {path} ({path.stat().st_size / 1024:,.0f} KB); it opens offline."
    )


def _print_revenue(result: revenue.RevenueResult) -> None:
    summary = result.summary()
    # one column per variant, one row per figure: fits an 80-column terminal
    table = Table(title=f"{result.scenario.name} — mature year, 万元", title_justify="left")
    table.add_column("")
    for name in summary["variant"]:
        table.add_column(str(name), justify="right")
    for col in summary.columns.drop("variant"):
        table.add_row(col, *[_cell(v) for v in summary[col]])
    console.print(table)
    console.print(
        f"Spaces with title gaps bring {result.at_risk_rent_share:.0%} of the rent "
        f"({result.at_risk_revenue_share:.0%} of all revenue) in the surveyed case."
    )
    for v in result.variants.values():
        if not v.metrics.irr_unique:
            console.print(
                f"[yellow]{v.name}: cash flows change sign {v.metrics.sign_changes} times; "
                "the IRR may not be unique.[/]"
            )


@app.command()
def export(
    out: Annotated[
        Path,
        typer.Argument(
            help="File to write: .gpkg (all layers in one), .geojson, .csv or .xlsx (one file per layer)."
        ),
    ],
    community: CommunityOption = None,
    max_gap: Annotated[
        float, typer.Option(help="Bundle gap (m) for the bundles layer.")
    ] = DEFAULT_MAX_GAP_M,
    db: DbOption = None,
) -> None:
    """Export spaces, title gaps, bundles and communities for QGIS and Excel.

    Example:
        inventory export jinsong.gpkg
        inventory export jinsong.xlsx --community 劲松北社区

    """

    def run():
        with _store(db) as engine:
            return export_job.export(engine, out, community=community, max_gap_m=max_gap)

    for name, target, rows in _call(run):
        console.print(f"{rows} rows ({name}) written to {target}")


@app.command()
def demo(
    db: Annotated[
        Path, typer.Option("--db", help="SpatiaLite file for the demo (replaced).")
    ] = demo_job.DEMO_DB,
    out_dir: Annotated[Path, typer.Option(help="Folder for the exports.")] = Path("maps"),
) -> None:
    """Run the main job on the embedded store: import the sample survey, analyse it, export.

    Uses the Jinsong North sample (GBK shapefiles, Chinese field names, Gauss-Krüger
    coordinates) and its own store file, so your ./inventory.sqlite is never touched.

    Example:
        inventory demo

    """
    result = _call(lambda: demo_job.run(db, out_dir))
    console.rule("1. Store")
    console.print(f"Fresh SpatiaLite store {result.db} at schema revision {result.revision}.")
    console.rule("2. Import the sample survey")
    for r in result.imports:
        _print_report(r)
    console.rule("3. What the store holds")
    _print_info(result.info)
    console.rule("4. Title gaps")
    console.print(
        _table(
            result.gaps,
            f"{len(result.gaps)} spaces with title gaps",
            ["survey_ref", "kind", "usable_area_m2", "gap_severity", "gaps"],
        )
    )
    console.print(_table(result.gap_totals, "Per community", list(result.gap_totals.columns)))
    console.rule(f"5. Bundles within {DEFAULT_MAX_GAP_M:g} m")
    console.print(
        _table(
            result.bundles,
            f"{len(result.bundles)} bundles",
            [
                "bundle_id",
                "members",
                "usable_area_m2",
                "smallest_m2",
                "largest_m2",
                "clean",
                "transitional",
                "blocking",
            ],
        )
    )
    console.rule("6. Capacity")
    console.print(_table(result.capacity, "By kind and tenure", list(result.capacity.columns)))
    console.print(
        _table(
            result.hosts,
            "Who can host a 150 m² canteen within 300 m of the centre, best first",
            ["host", "id", "usable_area_m2", "title", "distance_m", "spare_m2"],
        )
    )
    console.rule("7. Revenue (Jinsong scenario)")
    _print_revenue(result.revenue)
    console.rule("8. Exports")
    for path in result.exports:
        console.print(f"{path}  ({path.stat().st_size / 1024:,.0f} KB)")


@app.command("sample-data")
def sample_data(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the files into.")] = Path(
        "sample_data"
    ),
) -> None:
    """Write the Jinsong North sample survey (shapefiles in GBK + a GeoPackage).

    Example:
        inventory sample-data /tmp/jinsong

    """
    from inventory.samples import write_jinsong_north

    for path in _call(lambda: write_jinsong_north(out_dir)):
        console.print(str(path))


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
