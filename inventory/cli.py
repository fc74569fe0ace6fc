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
from rich.table import Table

from inventory import store
from inventory.codes import KIND
from inventory.db import connect
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


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the library's errors into one red line and exit code 1."""
    try:
        yield
    except InventoryError as exc:
        err_console.print(f"[bold red]Error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


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
        engine = connect(db)
        try:
            return store.info(engine)
        finally:
            engine.dispose()

    result = _call(run)
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
        table = Table(title="Spaces by community and kind")
        table.add_column("Community")
        table.add_column("Kind")
        table.add_column("Spaces", justify="right")
        table.add_column("Usable area m²", justify="right")
        for community, kind, count, area in result.spaces_by_community_kind:
            label = f"{KIND.label(kind, 'zh')} {KIND.label(kind, 'en')}"
            table.add_row(community, label, str(count), f"{area:,.0f}")
        console.print(table)


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


def main() -> None:  # pragma: no cover - console entry point
    """Run the command line."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
