"""Survey rounds: the import batches, what each delivered and changed, and retiring spaces.

Every import batch notes the spaces it delivered and what it did with each (loaded,
updated, unchanged: ``batch_space``); changed fields go to ``space_history``. So a
second survey round can be compared with the first (:func:`diff`), a space's story read
back (:func:`history`), and a space demolished or surveyed in error retired
(:func:`retire`): kept with its history and tenure, out of every analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, func, insert, select, update

from inventory.backends import write_transaction
from inventory.errors import InputError
from inventory.models import (
    BatchSpace,
    Community,
    ImportBatch,
    RejectedFeature,
    Space,
    SpaceHistory,
)
from inventory.store import require_batch, require_community, require_schema, space_id, who

BATCH_COLUMNS = [
    "batch_id",
    "file",
    "layer",
    "imported_by",
    "started_at",
    "finished_at",
    "read",
    "loaded",
    "updated",
    "unchanged",
    "rejected",
    "rejects_open",
]


def batches(engine: Engine) -> pd.DataFrame:
    """Return one row per import batch: file, who, when, its counts and its open rejects."""
    require_schema(engine)
    b = ImportBatch
    open_rejects = (
        select(func.count())
        .where(RejectedFeature.batch_id == b.id, RejectedFeature.resolved_batch_id.is_(None))
        .scalar_subquery()
    )
    stmt = select(
        b.id,
        b.source_file,
        b.layer,
        b.imported_by,
        b.started_at,
        b.finished_at,
        b.read_count,
        b.loaded_count,
        b.updated_count,
        b.unchanged_count,
        b.rejected_count,
        open_rejects,
    ).order_by(b.id)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(stmt).all(), columns=BATCH_COLUMNS)
    frame["file"] = frame["file"].map(lambda p: Path(p).name)
    return frame


HISTORY_COLUMNS = [
    "survey_ref",
    "community",
    "field",
    "old_value",
    "new_value",
    "changed_at",
    "batch_id",
    "changed_by",
]


def history(
    engine: Engine,
    ref: str | None = None,
    *,
    community: str | None = None,
    batch: int | None = None,
    since: date | None = None,
) -> pd.DataFrame:
    """Return what changed, oldest first: each field's old → new value, when, by which batch.

    ``ref`` (with ``community`` when several have it), ``batch`` and ``since`` narrow it.
    A space's first delivery shows as the field ``(loaded)`` with its file; retiring as
    the field ``retired`` with the reason.

    Raises:
        InputError: an unknown space, community or batch.

    """
    require_schema(engine)
    require_community(engine, community)
    require_batch(engine, batch)
    h = SpaceHistory
    changes = (
        select(
            Space.survey_ref,
            Community.name,
            h.field,
            h.old_value,
            h.new_value,
            h.changed_at,
            h.batch_id,
            h.changed_by,
        )
        .select_from(h)
        .join(Space, Space.id == h.space_id)
        .join(Community)
    )
    loads = (
        select(
            Space.survey_ref,
            Community.name,
            ImportBatch.source_file,
            ImportBatch.started_at,
            ImportBatch.id,
            ImportBatch.imported_by,
        )
        .select_from(BatchSpace)
        .join(Space, Space.id == BatchSpace.space_id)
        .join(Community)
        .join(ImportBatch, ImportBatch.id == BatchSpace.batch_id)
        .where(BatchSpace.action == "loaded")
    )
    with engine.connect() as conn:
        if ref is not None:
            sid = space_id(conn, ref, community)
            changes, loads = changes.where(Space.id == sid), loads.where(Space.id == sid)
        elif community:
            changes = changes.where(Community.name == community)
            loads = loads.where(Community.name == community)
        if batch is not None:
            changes, loads = (
                changes.where(h.batch_id == batch),
                loads.where(ImportBatch.id == batch),
            )
        if since is not None:
            start = datetime.combine(since, datetime.min.time(), tzinfo=UTC)
            changes = changes.where(h.changed_at >= start)
            loads = loads.where(ImportBatch.started_at >= start)
        rows = [tuple(r) for r in conn.execute(changes)]
        rows += [
            (r, c, "(loaded)", None, Path(f).name, at, bid, who)
            for r, c, f, at, bid, who in conn.execute(loads)
        ]
    frame = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    if frame.empty:
        return frame
    frame["changed_at"] = pd.to_datetime(frame["changed_at"], utc=True)
    first = frame["field"] != "(loaded)"  # a load comes before the changes of its batch
    return (
        frame.assign(_order=first)
        .sort_values(["changed_at", "_order", "survey_ref"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


@dataclass
class Diff:
    """Two survey rounds compared: the spaces added, removed and changed from ``a`` to ``b``."""

    a: list[int]
    b: list[int]
    added: pd.DataFrame  # survey_ref, community, kind
    removed: pd.DataFrame  # delivered by a, not by b, in the communities b covers
    changed: pd.DataFrame  # survey_ref, community, field, old_value, new_value

    def tables(self) -> dict[str, pd.DataFrame]:
        """Return the three tables, for an export."""
        return {"added": self.added, "removed": self.removed, "changed": self.changed}


def diff(engine: Engine, a: int | list[int], b: int | list[int]) -> Diff:
    """Compare survey round ``a`` with a later round ``b``: each a batch, or several (files).

    Added: spaces ``b`` delivered and ``a`` did not. Removed: spaces ``a`` delivered that
    ``b`` did not, among the communities ``b`` covers (a round of another community
    removes nothing). Changed: for spaces both delivered, each field changed by the
    batches after ``a`` up to ``b``, from its value after ``a`` to its value after ``b``.

    Raises:
        InputError: a batch does not exist, or ``a`` is not before ``b``.

    """
    require_schema(engine)
    a = sorted({a} if isinstance(a, int) else set(a))
    b = sorted({b} if isinstance(b, int) else set(b))
    for n in (*a, *b):
        require_batch(engine, n)
    if not a or not b or a[-1] >= b[0]:
        raise InputError(
            f"`--batch {','.join(map(str, a))} --batch {','.join(map(str, b))}`: give the "
            "earlier round first, each of its batches before the later round's (batches are "
            "numbered in the order they were imported; see `inventory batches`)."
        )
    cols = [Space.id, Space.survey_ref, Community.name.label("community"), Space.kind]

    def delivered(conn, batches: list[int]) -> pd.DataFrame:
        stmt = (
            select(*cols)
            .distinct()
            .select_from(BatchSpace)
            .join(Space, Space.id == BatchSpace.space_id)
            .join(Community)
            .where(BatchSpace.batch_id.in_(batches))
        )
        return pd.DataFrame(
            conn.execute(stmt).all(), columns=["id", "survey_ref", "community", "kind"]
        )

    with engine.connect() as conn:
        first, second = delivered(conn, a), delivered(conn, b)
        both = sorted(set(first["id"]) & set(second["id"]))
        h = SpaceHistory
        stmt = (
            select(Space.survey_ref, Community.name, h.field, h.old_value, h.new_value, h.id)
            .select_from(h)
            .join(Space, Space.id == h.space_id)
            .join(Community)
            .where(h.batch_id > a[-1], h.batch_id <= b[-1])
        )
        history_rows = []
        for start in range(0, len(both), 10_000):
            chunk = both[start : start + 10_000]
            history_rows += conn.execute(stmt.where(h.space_id.in_(chunk))).all()
    added = second[~second["id"].isin(first["id"])]
    removed = first[~first["id"].isin(second["id"]) & first["community"].isin(second["community"])]
    steps = pd.DataFrame(
        history_rows, columns=["survey_ref", "community", "field", "old_value", "new_value", "id"]
    ).sort_values("id")
    changed = (
        steps.groupby(["community", "survey_ref", "field"], sort=True)
        .agg(old_value=("old_value", "first"), new_value=("new_value", "last"))
        .reset_index()
    )
    changed = changed[
        (changed["old_value"] != changed["new_value"]) | (changed["field"] == "geometry")
    ]
    keep = ["survey_ref", "community", "kind"]
    return Diff(
        a,
        b,
        added[keep].sort_values(keep[:2]).reset_index(drop=True),
        removed[keep].sort_values(keep[:2]).reset_index(drop=True),
        changed[["survey_ref", "community", "field", "old_value", "new_value"]].reset_index(
            drop=True
        ),
    )


@dataclass
class Retired:
    """What :func:`retire` did."""

    survey_ref: str
    community: str
    retired: bool  # False: brought back
    reason: str | None


def retire(
    engine: Engine,
    ref: str,
    reason: str | None = None,
    *,
    community: str | None = None,
    undo: bool = False,
    by: str | None = None,
) -> Retired:
    """Retire the space ``ref`` (demolished, merged, surveyed in error), or bring it back.

    A retired space keeps its history, tenure and sources, and leaves every analysis
    (listings, gaps, bundles, capacity, revenue, maps); a later import of its reference
    updates it and says it is retired. The change is written to its history.

    Raises:
        InputError: no reason given, an unknown space, or nothing to do.

    """
    require_schema(engine)
    if not undo and not (reason or "").strip():
        raise InputError(
            f"Retiring {ref} needs a reason (`--reason 已拆除` / demolished): it stays in the "
            "history."
        )
    with write_transaction(engine) as conn:
        sid = space_id(conn, ref, community)
        at, was, name = conn.execute(
            select(Space.retired_at, Space.retired_reason, Community.name)
            .join(Community)
            .where(Space.id == sid)
        ).one()
        if undo and at is None:
            raise InputError(f"{ref} is not retired: nothing to bring back.")
        if not undo and at is not None:
            raise InputError(
                f"{ref} was retired on {at:%Y-%m-%d} ({was}); bring it back with --undo first "
                "to retire it again."
            )
        conn.execute(
            update(Space)
            .where(Space.id == sid)
            .values(
                retired_at=None if undo else func.now(),
                retired_reason=None if undo else reason.strip(),
            )
        )
        conn.execute(
            insert(SpaceHistory).values(
                space_id=sid,
                field="retired",
                old_value=was if undo else None,
                new_value=None if undo else reason.strip(),
                changed_by=by or who(conn),
            )
        )
    return Retired(ref, name, not undo, None if undo else reason.strip())
