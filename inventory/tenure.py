"""Tenure as records: parties, their rights on spaces (and on rights), the sources proving them.

Modelled on LADM (ISO 19152): a *party* (person, work unit, government body, state
enterprise, residents' committee, operator) holds a *right* on a space — ownership with a
share, use right, operating right, lease, transitional permit, change-of-use approval —
proved by *sources* (certificates, contracts, permit letters, minutes, with the file
itself). A right may rest on another (``parent``): owner → street office lease → operator
sublet.

The survey's flat columns (one owner, one operating right, a certificate number) keep
working: :func:`sync_survey_rights` turns them into records of origin "survey" — for the
whole store when it is upgraded to the schema with records, and for every space an
import loads or updates, in the import's transaction — while rights entered with
:func:`record_right` are of origin "record" and stay. Every change made here is written to ``tenure_event`` with who, when,
why and on what source.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, Engine, Select, delete, func, insert, select, update

from inventory.backends import backend, write_transaction
from inventory.codes import PARTY_TYPE, RIGHT_KIND, RIGHT_STATUS, SOURCE_KIND
from inventory.errors import InputError
from inventory.listing import frame_of
from inventory.models import (
    Community,
    Party,
    RightSource,
    Space,
    TenureEvent,
    TenureRight,
    TenureSource,
)
from inventory.store import require_schema
from inventory.store import space_id as _space

#: Characters that join several owners in one surveyed name: "劲松一建公司/劲松房管所".
_SEVERAL = re.compile(r"[/／、;；,，&]|和|及")
#: The survey's owner types as party types.
_PARTY_OF_OWNER = {
    "government": "government",
    "state_enterprise": "state_enterprise",
    "work_unit": "work_unit",
    "private": "person",
    "collective": "collective",
    "unknown": "unknown",
}
#: A file attached to a source is kept in the store up to this size.
MAX_FILE_BYTES = 50 * 1024 * 1024


def survey_owners(owner_name: str | None) -> list[str]:
    """Return the owners a surveyed owner name holds ("A/B" → ["A", "B"])."""
    if not owner_name or not str(owner_name).strip():
        return []
    return [n.strip() for n in _SEVERAL.split(str(owner_name)) if n.strip()]


def _party_id(conn: Connection, name: str, party_type: str, parties=Party.__table__) -> int:
    found = conn.execute(select(parties.c.id).where(parties.c.name == name)).scalar()
    if found is not None:
        return found
    return conn.execute(
        insert(parties).values(name=name, party_type=party_type).returning(parties.c.id)
    ).scalar_one()


#: Values per IN list of a look-up (a server takes 65,535 parameters at most).
LOOKUP_CHUNK = 5000


def _ids_by(conn: Connection, column, key, values, *where) -> dict:
    """Map ``values`` of ``column`` to ``key`` (chunked IN lists: any number of values).

    ``where``: further conditions on the rows.
    """
    out, values = {}, list(values)
    for i in range(0, len(values), LOOKUP_CHUNK):
        chunk = values[i : i + LOOKUP_CHUNK]
        stmt = select(column, key).where(column.in_(chunk), *where)
        out.update(dict(conn.execute(stmt).all()))
    return out


#: The survey's columns :func:`sync_survey_rights` builds the records from, after the id.
SURVEY_TENURE_COLUMNS = (
    "owner_name",
    "owner_type",
    "operating_right_holder",
    "operating_right_start",
    "operating_right_end",
    "tenure_source_ref",
)


def sync_survey_rights(
    conn: Connection,
    space_ids=None,
    tables: dict | None = None,
    *,
    fresh: bool = False,
    surveyed: list[tuple] | None = None,
) -> int:
    """Turn the survey's flat tenure columns of ``space_ids`` into records (None: every space).

    ``space_ids`` is a list, or an SQL selection of ids (an import batch's spaces). One
    ownership right per owner (share 1 for one owner; no share for several, so the shares
    show as not adding up until recorded — recorded owners supersede these), the
    operating right with its holder and term (granted by the first owner), and the
    certificate number as a source. Rights of origin "survey" of those spaces are replaced
    (kept as ended where a recorded right rests on them); recorded ones stay. Written in
    bulk: a few statements per call, whatever the number of spaces. ``tables`` lets a
    migration pass its own table definitions. ``fresh``: the spaces were just written and
    hold no rights yet, so there is nothing to replace (an import's new spaces: no
    delete, whose plan on a table just loaded and not yet analysed could scan the whole
    table for every right). ``surveyed``, with ``fresh``: the rows of those spaces as
    just written, ``(id, *SURVEY_TENURE_COLUMNS)``, so they are not read back. Returns
    the number of rights written.
    """
    t = tables or {
        "space": Space.__table__,
        "party": Party.__table__,
        "right": TenureRight.__table__,
        "source": TenureSource.__table__,
        "link": RightSource.__table__,
    }
    s, r, parties, src = t["space"], t["right"], t["party"], t["source"]
    if surveyed is not None and not fresh:
        raise ValueError("sync_survey_rights(): `surveyed` is for fresh spaces only")
    stmt = select(s.c.id, *(s.c[c] for c in SURVEY_TENURE_COLUMNS))
    old = r.c.origin == "survey"
    if isinstance(space_ids, list | tuple | set) and not space_ids:
        return 0
    if space_ids is not None and surveyed is None:
        # (with the rows in hand there is nothing to select or replace: an IN list of a
        # part's 100,000 ids would be checked by SQLAlchemy value by value for nothing)
        chosen = space_ids if not isinstance(space_ids, list | tuple | set) else list(space_ids)
        stmt = stmt.where(s.c.id.in_(chosen))
        old = old & r.c.space_id.in_(chosen)
    if not fresh:
        if "parent_id" in r.c:  # a recorded lease resting on a surveyed right keeps it, ended
            parents = select(r.c.parent_id).where(r.c.parent_id.is_not(None)).scalar_subquery()
            conn.execute(update(r).where(old, r.c.id.in_(parents)).values(status="ended"))
            old = old & r.c.id.not_in(parents)
        conn.execute(delete(r).where(old))
    rows = conn.execute(stmt).all() if surveyed is None else surveyed
    if not rows:
        return 0
    recorded = (
        set()
        if fresh
        else set(
            conn.execute(
                select(r.c.space_id).where(r.c.origin == "record", r.c.kind == "ownership")
            ).scalars()
        )
    )
    wanted: dict[str, str] = {}  # party name → type, for the parties not yet recorded
    plans = []
    split: dict = {}  # owner names repeat across a survey: each is split once
    for sid, owner, owner_type, holder, start, end, ref in rows:
        # owners recorded one by one (with their shares) supersede the survey's owner column
        if sid in recorded:
            owners = []
        elif owner in split:
            owners = split[owner]
        else:
            owners = split[owner] = survey_owners(owner)
        kind = _PARTY_OF_OWNER.get(owner_type or "unknown", "unknown")
        for name in owners:
            wanted.setdefault(name, kind)
        operator = str(holder).strip() if holder and str(holder).strip() else None
        if operator:
            wanted.setdefault(operator, "operator")
        plans.append((sid, owners, operator, start, end, ref))
    ids = _ids_by(conn, parties.c.name, parties.c.id, wanted)
    new = [{"name": n, "party_type": k} for n, k in wanted.items() if n not in ids]
    if new:
        conn.execute(insert(parties), new)
        ids.update(_ids_by(conn, parties.c.name, parties.c.id, [p["name"] for p in new]))
    # the rights as columns: a million spaces' rights without a dict each
    right = {c: [] for c in ("space_id", "kind", "holder_id", "granted_by_id", "share")}
    right |= {"start_date": [], "end_date": []}
    certified = {}
    for sid, owners, operator, start, end, ref in plans:
        for name in owners:
            right["space_id"].append(sid)
            right["kind"].append("ownership")
            right["holder_id"].append(ids[name])
            right["granted_by_id"].append(None)
            right["share"].append(1.0 if len(owners) == 1 else None)
            right["start_date"].append(None)
            right["end_date"].append(None)
        if operator:
            right["space_id"].append(sid)
            right["kind"].append("operating_right")
            right["holder_id"].append(ids[operator])
            right["granted_by_id"].append(ids[owners[0]] if owners else None)
            right["share"].append(None)
            right["start_date"].append(start)
            right["end_date"].append(end)
        if ref and owners:
            certified[sid] = ref
    rights = right["space_id"]
    db = backend(conn)
    # the rights' ids in hand: the certificates are linked to them without reading back
    right_ids = db.reserve_ids(conn, r, len(rights))
    if rights:  # COPY on PostGIS: a million spaces' rights in seconds
        n = len(rights)  # the columns as they are: no frame made and taken apart again
        db.bulk_insert(
            conn, r, {"id": right_ids, **right, "status": ["active"] * n, "origin": ["survey"] * n}
        )
    if certified:
        # any number of them: IN lists in chunks (a server takes 65,535 values at most)
        numbers = sorted(set(certified.values()))
        certificate = src.c.kind == "certificate"
        if len(numbers) > LOOKUP_CHUNK:
            # an earlier part's certificates, written in this transaction, are in the
            # statistics: looked up through the index, not by a scan per batch (7 s each)
            db.refresh_statistics(conn, src)
        known = _ids_by(conn, src.c.number, src.c.id, numbers, certificate)
        missing = [n for n in numbers if n not in known]
        if missing:
            new_ids = db.reserve_ids(conn, src, len(missing))
            sources = pd.DataFrame(
                {"id": new_ids, "kind": "certificate", "number": missing}, dtype=object
            )
            db.bulk_insert(conn, src, sources)
            known.update(zip(missing, new_ids, strict=True))
        # each ownership just written rests on its space's certificate
        links = [
            (rid, known[certified[sid]])
            for rid, sid, kind in zip(right_ids, rights, right["kind"], strict=True)
            if kind == "ownership" and sid in certified
        ]
        if links:
            frame = pd.DataFrame(links, columns=["right_id", "source_id"], dtype=object)
            db.bulk_insert(conn, t["link"], frame)
    return len(rights)


# ---- recording without re-import -----------------------------------------------------------------


@dataclass
class Recorded:
    """What a recording call wrote: the right and/or source ids, and the event."""

    space: str
    right_id: int | None = None
    source_id: int | None = None
    event_id: int | None = None


def _event(conn, space_id, action, detail, why, by, right_id=None, source_id=None) -> int:
    return conn.execute(
        insert(TenureEvent)
        .values(
            space_id=space_id,
            right_id=right_id,
            source_id=source_id,
            action=action,
            detail=detail,
            why=why,
            changed_by=by or backend(conn).session_user(conn),
        )
        .returning(TenureEvent.id)
    ).scalar_one()


def _code(codes, value, param: str) -> str:
    found = codes.match(value) if value is not None else None
    if found is None:
        raise InputError(
            f"`{param}={value!r}` is not a {codes.name}; {codes.name}s: {', '.join(codes.codes)}."
        )
    return found


def record_right(
    engine: Engine,
    ref: str,
    right: str,
    holder: str,
    *,
    community: str | None = None,
    why: str | None = None,
    by: str | None = None,
    **details,
) -> Recorded:
    """Record a right on space ``ref``, held by the party ``holder``.

    Kinds: ownership (with ``share``), use right, operating right, lease, transitional
    permit (``allowed_uses``, ``end``), change-of-use approval (``status``: none, applied,
    approved, refused; ``decided_on``). The holder (and ``granted_by``) are found by name,
    or created with ``holder_type``. ``parent`` is the right this one rests on (a lease on
    a lease, a sublet); ``source`` a recorded source proving it. Other details: ``start``,
    ``end``, ``rent_yuan_year``, ``conditions``.

    Raises:
        InputError: an unknown space, kind, party type or status; a share not in (0, 1] or
            shares of the space's owners over 1; a right ending before it starts; a right
            outlasting its parent; a permit with no allowed uses; an unknown parent or
            source. Nothing is written then.

    """
    require_schema(engine)
    with write_transaction(engine) as conn:
        space_id = _space(conn, ref, community)
        sync_survey_rights(conn, [space_id])
        right_id, event = _record(conn, space_id, ref, right, holder, why=why, by=by, **details)
    return Recorded(ref, right_id=right_id, source_id=details.get("source"), event_id=event)


def _record(
    conn: Connection,
    space_id: int,
    ref: str,
    right: str,
    holder: str,
    *,
    holder_type: str = "unknown",
    granted_by: str | None = None,
    parent: int | None = None,
    share: float | None = None,
    start: date | None = None,
    end: date | None = None,
    rent_yuan_year: float | None = None,
    allowed_uses: list[str] | None = None,
    conditions: str | None = None,
    status: str = "active",
    decided_on: date | None = None,
    source: int | None = None,
    why: str | None = None,
    by: str | None = None,
) -> tuple[int, int]:
    """Check and write one right on ``space_id``; return (right id, event id)."""
    kind = _code(RIGHT_KIND, right, "right")
    status = _code(RIGHT_STATUS, status, "status")
    holder_type = _code(PARTY_TYPE, holder_type, "holder_type")
    if not holder or not str(holder).strip():
        raise InputError("`holder=''`: name the party that holds the right.")
    if share is not None and not 0 < share <= 1:
        raise InputError(f"`share={share}` must be more than 0 and at most 1 (a fraction).")
    if share is not None and kind != "ownership":
        raise InputError(f"`share={share}`: only ownership has shares (this is {kind}).")
    if start and end and end < start:
        raise InputError(f"`end={end}` is before `start={start}`; check the two dates.")
    if kind == "transitional_permit" and not allowed_uses:
        raise InputError(
            "`allowed_uses=[]`: a transitional permit names the uses it allows "
            "(e.g. 养老, 社区食堂)."
        )
    if share is not None:
        held = conn.scalar(
            select(func.coalesce(func.sum(TenureRight.share), 0.0)).where(
                TenureRight.space_id == space_id,
                TenureRight.kind == "ownership",
                TenureRight.status == "active",
                TenureRight.origin == "record",
            )
        )
        if held + share > 1 + 1e-9:
            raise InputError(
                f"`share={share}`: {ref}'s owners already hold {held:g}; shares of one "
                "space add up to 1 at most. End or correct a share first."
            )
    if parent is not None:
        row = conn.execute(
            select(TenureRight.space_id, TenureRight.start_date, TenureRight.end_date).where(
                TenureRight.id == parent
            )
        ).first()
        if row is None or row[0] != space_id:
            raise InputError(f"`parent={parent}` is not a right on {ref}.")
        if row[2] is not None and (end is None or end > row[2]):
            raise InputError(
                f"`end={end}`: the right rests on right {parent}, which ends {row[2]}; a "
                "lease cannot outlast the right it is granted from."
            )
    if (
        source is not None
        and conn.scalar(select(TenureSource.id).where(TenureSource.id == source)) is None
    ):
        raise InputError(f"`source={source}` is not a recorded source; attach it first.")
    holder_id = _party_id(conn, str(holder).strip(), holder_type)
    granted_id = _party_id(conn, granted_by.strip(), "unknown") if granted_by else None
    right_id = conn.execute(
        insert(TenureRight)
        .values(
            space_id=space_id,
            kind=kind,
            holder_id=holder_id,
            granted_by_id=granted_id,
            parent_id=parent,
            share=share,
            start_date=start,
            end_date=end,
            rent_yuan_year=rent_yuan_year,
            allowed_uses=allowed_uses,
            conditions=conditions,
            status=status,
            decided_on=decided_on,
            origin="record",
        )
        .returning(TenureRight.id)
    ).scalar_one()
    if source is not None:
        conn.execute(insert(RightSource).values(right_id=right_id, source_id=source))
    detail = f"{kind} held by {holder}" + (f", share {share:g}" if share else "")
    if end:
        detail += f", until {end}"
    event = _event(conn, space_id, "right_recorded", detail, why, by, right_id, source)
    return right_id, event


def attach_source(
    engine: Engine,
    ref: str,
    source_kind: str,
    *,
    number: str | None = None,
    issued_on: date | None = None,
    issuer: str | None = None,
    file: str | Path | None = None,
    rights: list[int] | None = None,
    community: str | None = None,
    why: str | None = None,
    by: str | None = None,
) -> Recorded:
    """Record a source (certificate, contract, permit letter, minutes) for space ``ref``.

    Its file is stored in the store (with its SHA-256 and size), and it is linked to the
    ``rights`` it proves.

    Raises:
        InputError: an unknown kind or space, a file that cannot be read or is over 50 MB,
            a right that is not on the space.

    """
    kind = _code(SOURCE_KIND, source_kind, "source_kind")
    content = None
    name = None
    if file is not None:
        path = Path(file)
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise InputError(
                    f"`file={str(path)!r}` is {size / 1e6:,.0f} MB; the store keeps files up to "
                    f"{MAX_FILE_BYTES / 1e6:.0f} MB. Scan it at a lower resolution."
                )
            content = path.read_bytes()
        except IsADirectoryError:
            raise InputError(
                f"`file={str(path)!r}` is a folder; give the document's file."
            ) from None
        except OSError as exc:
            raise InputError(
                f"`file={str(path)!r}` cannot be read ({exc.strerror or exc}); check the path."
            ) from None
        name = path.name
    require_schema(engine)
    with write_transaction(engine) as conn:
        space_id = _space(conn, ref, community)
        for right in rights or []:
            if conn.scalar(select(TenureRight.space_id).where(TenureRight.id == right)) != space_id:
                raise InputError(f"`rights={right}` is not a right on {ref}.")
        source_id = conn.execute(
            insert(TenureSource)
            .values(
                kind=kind,
                number=number,
                issued_on=issued_on,
                issuer=issuer,
                file_name=name,
                file_sha256=hashlib.sha256(content).hexdigest() if content is not None else None,
                file_size=len(content) if content is not None else None,
                content=content,
            )
            .returning(TenureSource.id)
        ).scalar_one()
        for right in rights or []:
            conn.execute(insert(RightSource).values(right_id=right, source_id=source_id))
        detail = f"{kind} {number or ''}".strip() + (f" ({name})" if name else "")
        event = _event(conn, space_id, "source_attached", detail, why, by, source_id=source_id)
    return Recorded(ref, source_id=source_id, event_id=event)


def set_status(
    engine: Engine,
    ref: str,
    *,
    certificate_status: str | None = None,
    disputed: bool | None = None,
    note: str | None = None,
    community: str | None = None,
    source: int | None = None,
    why: str | None = None,
    by: str | None = None,
) -> Recorded:
    """Change a space's certificate status, or open (``disputed=True``) or settle a dispute.

    The space's own columns change (so the title-gap rules see it at once) and the change
    is written to the tenure history with the old and new value.

    Raises:
        InputError: an unknown space or certificate status, or nothing to change.

    """
    from inventory.codes import CERTIFICATE_STATUS

    if certificate_status is None and disputed is None:
        raise InputError("Nothing to change: give `certificate_status` or `disputed`.")
    values: dict = {}
    if certificate_status is not None:
        values["certificate_status"] = _code(
            CERTIFICATE_STATUS, certificate_status, "certificate_status"
        )
    if disputed is not None:
        values["disputed"] = disputed
        values["dispute_note"] = note
    require_schema(engine)
    with write_transaction(engine) as conn:
        space_id = _space(conn, ref, community)
        old = conn.execute(
            select(Space.certificate_status, Space.disputed).where(Space.id == space_id)
        ).one()
        conn.execute(update(Space).where(Space.id == space_id).values(**values))
        if disputed is not None:
            action = "dispute_opened" if disputed else "dispute_settled"
            detail = f"disputed {old[1]} → {disputed}" + (f": {note}" if note else "")
        else:
            action = "certificate_changed"
            detail = f"certificate {old[0]} → {values['certificate_status']}"
        event = _event(conn, space_id, action, detail, why, by, source_id=source)
    return Recorded(ref, source_id=source, event_id=event)


# ---- seeing it -----------------------------------------------------------------------------------


def _rights_query():
    """Every right with its space, holder, grantor, chain and terms (filter and order it)."""
    from sqlalchemy.orm import aliased

    holder, grantor = aliased(Party), aliased(Party)
    return (
        select(
            TenureRight.id.label("right_id"),
            Space.survey_ref,
            Community.name.label("community"),
            TenureRight.kind,
            holder.name.label("holder"),
            holder.party_type.label("holder_type"),
            grantor.name.label("granted_by"),
            TenureRight.parent_id,
            TenureRight.share,
            TenureRight.start_date,
            TenureRight.end_date,
            TenureRight.rent_yuan_year,
            TenureRight.allowed_uses,
            TenureRight.conditions,
            TenureRight.status,
            TenureRight.decided_on,
            TenureRight.origin,
        )
        .join(Space, Space.id == TenureRight.space_id)
        .join(Community, Community.id == Space.community_id)
        .join(holder, holder.id == TenureRight.holder_id)
        .outerjoin(grantor, grantor.id == TenureRight.granted_by_id)
    )


#: What a source shows (its file's name, size and hash; the file itself: :func:`source_file`).
_SOURCE_COLUMNS = (
    TenureSource.id.label("source_id"),
    TenureSource.kind,
    TenureSource.number,
    TenureSource.issued_on,
    TenureSource.issuer,
    TenureSource.file_name,
    TenureSource.file_size,
    TenureSource.file_sha256,
)


def _frame(conn: Connection, stmt) -> pd.DataFrame:
    return frame_of(conn.execute(stmt))


def _links(*where) -> Select:
    """Return the (right_id, source_id) links of the rights on the spaces ``where`` selects."""
    return (
        select(RightSource.right_id, RightSource.source_id)
        .join(TenureRight, TenureRight.id == RightSource.right_id)
        .join(Space, Space.id == TenureRight.space_id)
        .join(Community, Community.id == Space.community_id)
        .where(*where)
    )


def _with_sources(
    conn: Connection, rights: pd.DataFrame, links: Select
) -> tuple[pd.DataFrame, set[int]]:
    """Add to ``rights`` the ids of the sources proving each; return it and those ids.

    ``links`` (:func:`_links`) selects the same spaces as ``rights``, read in one query.
    """
    by_right: dict[int, list[int]] = {}
    for right, source in conn.execute(links):
        by_right.setdefault(right, []).append(source)
    rights = rights.assign(
        sources=[", ".join(map(str, by_right.get(i, []))) for i in rights["right_id"]]
    )
    return rights, {s for sources in by_right.values() for s in sources}


def tenure_of(engine: Engine, ref: str, community: str | None = None) -> dict[str, pd.DataFrame]:
    """Return a space's tenure as frames: ``rights``, ``sources`` and ``history``.

    Rights with their holders, shares, terms, chains (``parent_id``) and sources; the
    history joins tenure events and the survey's field changes. Ownership shares that do not add up to 1 are flagged in ``rights`` (``shares_flag``).

    Raises:
        InputError: no such space (or the reference is in several communities).

    """
    from inventory.models import SpaceHistory

    require_schema(engine)
    with engine.connect() as conn:
        space_id = _space(conn, ref, community)
        rights = _frame(
            conn, _rights_query().where(TenureRight.space_id == space_id).order_by(TenureRight.id)
        )
        rights, proving = _with_sources(conn, rights, _links(TenureRight.space_id == space_id))
        events = conn.execute(
            select(TenureEvent.source_id).where(
                TenureEvent.space_id == space_id, TenureEvent.source_id.is_not(None)
            )
        ).scalars()
        source_ids = sorted(proving | set(events))
        sources = _frame(conn, select(*_SOURCE_COLUMNS).where(TenureSource.id.in_(source_ids)))
        rows = conn.execute(
            select(
                TenureEvent.changed_at.label("when"),
                TenureEvent.changed_by.label("who"),
                TenureEvent.action.label("what"),
                TenureEvent.detail,
                TenureEvent.why,
                TenureEvent.source_id,
            ).where(TenureEvent.space_id == space_id)
        )
        events = pd.DataFrame(rows.all(), columns=list(rows.keys()))
        rows = conn.execute(
            select(
                SpaceHistory.changed_at.label("when"),
                SpaceHistory.changed_by.label("who"),
                SpaceHistory.field,
                SpaceHistory.old_value,
                SpaceHistory.new_value,
                SpaceHistory.batch_id,
            ).where(SpaceHistory.space_id == space_id)
        )
        fields = pd.DataFrame(rows.all(), columns=list(rows.keys()))
    owners = rights[(rights["kind"] == "ownership") & (rights["status"] == "active")]
    total = float(owners["share"].fillna(0).sum()) if len(owners) else 0.0
    flag = None
    if len(owners) and (owners["share"].isna().any() or abs(total - 1) > 1e-6):
        flag = (
            f"ownership shares add up to {total:g}"
            + (" (some not recorded)" if owners["share"].isna().any() else "")
            + "; record each owner's share"
        )
    rights["shares_flag"] = [flag if k == "ownership" else None for k in rights["kind"]]
    fields = fields.assign(
        what="field_changed",
        detail=fields["field"]
        + ": "
        + fields["old_value"].astype(str)
        + " → "
        + fields["new_value"].astype(str),
    )
    history = pd.concat([events, fields[["when", "who", "what", "detail"]]], ignore_index=True)
    if len(history):
        history = history.sort_values("when", kind="stable").reset_index(drop=True)
    return {"rights": rights, "sources": sources, "history": history}


def source_file(engine: Engine, source_id: int) -> tuple[str, bytes]:
    """Return (file name, content) of a source's attached file.

    Raises:
        InputError: no such source, or it has no file.

    """
    with engine.connect() as conn:
        row = conn.execute(
            select(TenureSource.file_name, TenureSource.content).where(TenureSource.id == source_id)
        ).first()
    if row is None or row[1] is None:
        raise InputError(f"`source={source_id}` has no attached file.")
    return row[0], bytes(row[1])


# ---- a table of rights -------------------------------------------------------------------------

#: Columns of a rights table (CSV or XLSX, one right per row), with their zh/en headers.
RIGHT_FIELDS: dict[str, tuple[str, ...]] = {
    "survey_ref": ("survey_ref", "编号", "空间编号", "ref"),
    "community": ("community", "社区", "社区名称", "小区"),
    "right": ("right", "right_kind", "权利类型", "权利"),
    "holder": ("holder", "权利人", "持有人", "主体", "当事人"),
    "holder_type": ("holder_type", "主体类型", "权利人类型"),
    "share": ("share", "份额", "产权份额", "占比"),
    "granted_by": ("granted_by", "授权方", "出租方", "许可机关", "出让方"),
    "start": ("start", "起始日期", "开始日期", "起始"),
    "end": ("end", "终止日期", "到期日期", "终止", "有效期至"),
    "rent_yuan_year": ("rent_yuan_year", "年租金", "租金"),
    "allowed_uses": ("allowed_uses", "许可用途", "允许用途"),
    "conditions": ("conditions", "条件", "许可条件"),
    "status": ("status", "状态"),
    "source_kind": ("source_kind", "证件类型", "文件类型"),
    "source_number": ("source_number", "证件编号", "文号", "合同编号"),
    "issuer": ("issuer", "发证机关", "签发单位"),
    "issued_on": ("issued_on", "发证日期", "签发日期"),
    "why": ("why", "说明", "备注"),
}
_USES_SPLIT = re.compile(r"[、,，;；/]")


@dataclass
class RightsReport:
    """What a rights table brought: every row recorded or quarantined with its reason."""

    source: str
    read: int = 0
    loaded: int = 0
    rejected: int = 0
    ignored_columns: list[str] | None = None
    issues: list[tuple[int, str | None, str]] | None = None  # (row as the user sees it, ref, why)
    batch_id: int | None = None

    def issues_frame(self) -> pd.DataFrame:
        """Return the quarantined rows: row (as in the file), survey_ref, reason."""
        return pd.DataFrame(self.issues or [], columns=["row", "survey_ref", "reason"])


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".xlsx", ".xlsm"):
            return pd.read_excel(path, dtype=str, engine="openpyxl")
        if suffix == ".csv":
            for encoding in ("utf-8-sig", "gb18030"):
                try:
                    return pd.read_csv(
                        path, dtype=str, encoding=encoding, sep=None, engine="python"
                    )
                except UnicodeDecodeError:
                    continue
    except FileNotFoundError:
        raise InputError(f"{path}: no such file.") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} cannot be read as a table ({exc}).") from None
    raise InputError(f"{path}: a rights table is a .csv or .xlsx file (one right per row).")


def _map_columns(columns) -> tuple[dict[str, str], list[str]]:
    from inventory.codes import normalise

    aliases = {normalise(a): field for field, names in RIGHT_FIELDS.items() for a in names}
    mapping, ignored = {}, []
    for column in columns:
        field = aliases.get(normalise(column))
        if field and field not in mapping:
            mapping[field] = column
        else:
            ignored.append(str(column))
    return mapping, ignored


def _row_values(row: dict) -> dict:
    """Parse one row's texts into record_right's arguments (InputError names the column)."""

    def number(key):
        text = row.get(key)
        if text is None:
            return None
        try:
            return float(str(text).replace(",", ""))
        except ValueError:
            raise InputError(f"{key} {text!r} is not a number") from None

    def day(key):
        text = row.get(key)
        if text is None:
            return None
        try:
            return pd.Timestamp(str(text).strip()).date()
        except ValueError:
            raise InputError(f"{key} {text!r} is not a date (2024-06-30)") from None

    uses = row.get("allowed_uses")
    return {
        "holder_type": row.get("holder_type") or "unknown",
        "granted_by": row.get("granted_by"),
        "share": number("share"),
        "start": day("start"),
        "end": day("end"),
        "rent_yuan_year": number("rent_yuan_year"),
        "allowed_uses": [u.strip() for u in _USES_SPLIT.split(uses) if u.strip()] if uses else None,
        "conditions": row.get("conditions"),
        "status": row.get("status") or "active",
        "why": row.get("why"),
        "issued_on": day("issued_on"),
    }


def import_rights(
    engine: Engine,
    path: str | Path,
    *,
    community: str | None = None,
    imported_by: str | None = None,
) -> RightsReport:
    """Record the rights of a table (CSV or XLSX, zh/en headers), one right per row.

    Rows name the space by survey reference (and community, when the reference is used in
    several, or pass ``community``), the right, its holder and the rest of
    :func:`record_right`; a source (证件类型, 证件编号, 发证机关, 发证日期) is recorded and
    linked when given. A row that cannot be recorded is quarantined with its reason (in
    ``rejected_feature``, under the table's import batch) and nothing of it is written;
    the others are recorded, all in one transaction.

    Raises:
        InputError: the file cannot be read, or it has no survey reference, right or
            holder column.

    """
    p = Path(path)
    table = _read_table(p)
    mapping, ignored = _map_columns(table.columns)
    missing = [f for f in ("survey_ref", "right", "holder") if f not in mapping]
    if missing:
        heads = " / ".join(RIGHT_FIELDS[missing[0]][:3])
        raise InputError(
            f"{p.name} has no {missing[0]} column ({heads}); its columns are "
            f"{', '.join(map(str, table.columns))}."
        )
    require_schema(engine)
    report = RightsReport(str(p), read=len(table), ignored_columns=ignored, issues=[])
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    from inventory.models import ImportBatch, RejectedFeature

    with write_transaction(engine) as conn:
        by = imported_by or backend(conn).session_user(conn)
        batch_id = conn.execute(
            insert(ImportBatch)
            .values(
                source_file=str(p),
                layer="rights",
                checksum_sha256=digest,
                imported_by=by,
                field_mapping=mapping,
            )
            .returning(ImportBatch.id)
        ).scalar_one()
        for i, raw in enumerate(table.to_dict("records")):
            row = {
                f: (str(raw[c]).strip() if pd.notna(raw[c]) and str(raw[c]).strip() else None)
                for f, c in mapping.items()
            }
            shown = i + 2  # the header is row 1, as a spreadsheet shows it
            try:
                with conn.begin_nested():
                    values = _row_values(row)
                    issued_on = values.pop("issued_on")
                    space_id = _space(
                        conn, row["survey_ref"] or "", row.get("community") or community
                    )
                    sync_survey_rights(conn, [space_id])
                    source = None
                    if row.get("source_kind") or row.get("source_number"):
                        kind = _code(SOURCE_KIND, row.get("source_kind") or "other", "source_kind")
                        source = conn.execute(
                            insert(TenureSource)
                            .values(
                                kind=kind,
                                number=row.get("source_number"),
                                issuer=row.get("issuer"),
                                issued_on=issued_on,
                            )
                            .returning(TenureSource.id)
                        ).scalar_one()
                    _record(
                        conn,
                        space_id,
                        row["survey_ref"],
                        row["right"] or "",
                        row["holder"] or "",
                        source=source,
                        by=by,
                        **values,
                    )
                report.loaded += 1
            except InputError as exc:
                report.rejected += 1
                reason = as_words(str(exc))
                report.issues.append((shown, row.get("survey_ref"), reason))
                conn.execute(
                    insert(RejectedFeature).values(
                        batch_id=batch_id,
                        source_row=shown,
                        survey_ref=row.get("survey_ref"),
                        raw_attributes={
                            str(k): (None if pd.isna(v) else str(v)) for k, v in raw.items()
                        },
                        reasons=[reason],
                    )
                )
        conn.execute(
            update(ImportBatch)
            .where(ImportBatch.id == batch_id)
            .values(
                read_count=report.read,
                loaded_count=report.loaded,
                rejected_count=report.rejected,
                finished_at=func.now(),
            )
        )
    report.batch_id = batch_id
    return report


def as_words(message: str) -> str:
    """Return a library message in a table row's words: ```share=1.5``` reads as share 1.5."""
    return re.sub(r"`(\w+)=([^`]*)`", r"\1 \2", message).replace("`", "")


def records(
    engine: Engine, community: str | None = None, *, district: str | None = None
) -> dict[str, pd.DataFrame]:
    """Return the tenure records of the store (of one ``community``): parties, rights, sources.

    ``district``: those of the communities in that district.

    Rights carry their space (survey reference, community), holder, grantor, chain
    (``parent_id``), terms and the ids of their sources; sources their file's name, size
    and hash (not the file: :func:`source_file` gives it). For export to GeoPackage and XLSX.
    """
    require_schema(engine)
    stmt = _rights_query().order_by(Community.name, Space.survey_ref, TenureRight.id)
    chosen = None
    if community:
        chosen = Community.name == community
    elif district:
        chosen = Community.district == district
    if chosen is not None:
        stmt = stmt.where(chosen)
    links = _links(chosen) if chosen is not None else _links()
    with engine.connect() as conn:
        rights, used = _with_sources(conn, _frame(conn, stmt), links)
        sources = _frame(conn, select(*_SOURCE_COLUMNS).order_by(TenureSource.id))
        parties = _frame(
            conn,
            select(Party.id.label("party_id"), Party.name, Party.party_type).order_by(Party.id),
        )
    if chosen is not None:
        sources = sources[sources["source_id"].isin(used)]
        names = set(rights["holder"]) | set(rights["granted_by"].dropna())
        parties = parties[parties["name"].isin(names)]
    return {"parties": parties, "rights": rights, "sources": sources.reset_index(drop=True)}
