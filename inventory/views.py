"""Views of a PostGIS store for QGIS users: ``inventory views``.

QGIS (Layer ▸ Add PostGIS layers) lists each view with a geometry as a layer:

- ``v_space``: the live spaces with outlines (MultiPolygon), with their community,
  district and street office, the Chinese labels of their codes (``*_zh``), their title
  status (the worst gap under the policy, read against today's date each time the view
  is read), the gaps' codes and Chinese names, and their bundle;
- ``v_space_point``: the same for spaces surveyed as points (parking), MultiPoint;
- ``v_gap``: the spaces of ``v_space`` with a title gap;
- ``v_bundle``: the bundles (MultiPolygon hulls) with members, kinds, areas and the count
  per title status; ``v_bundle_member``: which space is in which bundle (no geometry).

The bundles are those ``inventory bundles`` finds with the same gap (the same clustering
SQL), computed when the view is read. The views are ``security_invoker``: a role limited
to a district (``inventory roles --limit``) sees only its area through them too. The
policy and the bundle gap are fixed when the views are made; run ``inventory views``
again to change them. The embedded SpatiaLite store has no views (export a GeoPackage).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Engine, Select, Text, case, cast, func, literal, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.types import UserDefinedType

from inventory import i18n
from inventory.backends import backend
from inventory.bundles import candidates_sql, kind_codes, labels_by_community_sql
from inventory.codes import CERTIFICATE_STATUS, CONDITION, KIND, LAND_TYPE, OWNER_TYPE, VACANCY
from inventory.defaults import DEFAULT_MAX_GAP_M
from inventory.errors import InputError
from inventory.gaps import SEVERITIES, gap_conditions_sql, load_policy, permit_end_sql, severity_sql
from inventory.models import STORAGE_SRID, Community, Space
from inventory.store import require_schema

#: The views, in the order they are made (each may read the ones before).
VIEWS = ("v_bundle_member", "v_bundle", "v_space", "v_space_point", "v_gap")
_POLYGONAL = ("ST_Polygon", "ST_MultiPolygon")
_PUNTAL = ("ST_Point", "ST_MultiPoint")


@dataclass
class ViewSummary:
    """A view as made: its name, its geometry type (None: a table) and its rows now."""

    name: str
    geometry: str | None
    rows: int


def create_views(
    engine: Engine,
    *,
    max_gap_m: float = DEFAULT_MAX_GAP_M,
    policy: str | None = None,
    expiring_months: int = 12,
) -> list[ViewSummary]:
    """Make (or remake) the views of :data:`VIEWS` in one transaction; return them.

    Raises:
        ConfigurationError: the store is not PostGIS.
        InputError: ``max_gap_m`` is negative, or the policy is unknown.
        SchemaError: the store has no schema yet.

    """
    require_schema(engine)
    if max_gap_m < 0:
        raise InputError(f"`max_gap_m={max_gap_m}` must be 0 or more (metres between spaces).")
    db = backend(engine)
    regime = load_policy(policy)
    queries = _queries(db, max_gap_m, regime, expiring_months)
    kept = json.dumps(
        {"max_gap_m": max_gap_m, "policy": policy, "expiring_months": expiring_months},
        ensure_ascii=False,
    )
    with engine.begin() as conn:
        for name in reversed(VIEWS):
            db.drop_view(conn, name)
        for name in VIEWS:
            sql = str(
                queries[name].compile(
                    dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
                )
            )
            db.create_view(conn, name, sql, kept if name == "v_space" else None)
        if db.has_roles:
            from inventory.roles import grant_read

            grant_read(conn, list(VIEWS))
    return list_views(engine)


def made_with(conn) -> dict | None:
    """Return the parameters the views were made with (None: the store has none).

    A schema upgrade drops the views (they hold the columns it may change) and makes
    them again with these (:func:`inventory.store.init`).
    """
    kept = backend(conn).view_comment(conn, "v_space")
    return json.loads(kept) if kept else None


def drop_views(engine: Engine) -> list[str]:
    """Drop the views of :data:`VIEWS` (those that exist); return their names."""
    db = backend(engine)
    found = [v.name for v in list_views(engine)]
    with engine.begin() as conn:
        for name in reversed(VIEWS):
            db.drop_view(conn, name)
    return found


def list_views(engine: Engine) -> list[ViewSummary]:
    """Return the inventory's views the store has, with their geometry type and rows."""
    if not backend(engine).has_roles:  # only PostGIS keeps them
        return []
    out = []
    with engine.connect() as conn:
        for name in VIEWS:
            if not conn.scalar(text("SELECT to_regclass(:v) IS NOT NULL"), {"v": name}):
                continue
            geometry = conn.scalar(
                text("SELECT type FROM geometry_columns WHERE f_table_name = :v"), {"v": name}
            )
            rows = conn.scalar(text(f'SELECT count(*) FROM "{name}"'))  # a name of VIEWS
            out.append(ViewSummary(name, geometry, int(rows)))
    return out


def _label_sql(column, codes) -> object:
    """Return the Chinese label of a code column as SQL (the code list is ours, not user text)."""
    return case({e.code: e.zh for e in codes}, value=column, else_=None)


def _queries(db, max_gap_m: float, regime, months: int) -> dict[str, Select]:
    space = Space.__table__.c
    today = func.current_date()
    severity = severity_sql(space, today, months, regime, db.months_after)
    hits = gap_conditions_sql(space, today, months, regime, db.months_after)
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    ordered = sorted(hits, key=lambda hit: rank[hit[0].severity])

    # bundles: the same candidates and clustering as bundles_in_store
    chosen = candidates_sql(kind_codes(None), severity, space.id.label("space_id")).subquery(
        "chosen"
    )
    labelled = labels_by_community_sql(chosen, max_gap_m)
    lc = labelled.c
    cluster = (lc.part, lc.label)
    grouped = select(
        labelled,
        func.count().over(partition_by=cluster).label("n"),
        func.min(lc.survey_ref.collate("C")).over(partition_by=cluster).label("first_ref"),
    ).subquery("grouped")
    kept = select(grouped).where(grouped.c.n >= 2).subquery("kept")
    k = kept.c
    number = func.dense_rank().over(order_by=(k.community.collate("C"), k.first_ref.collate("C")))
    bundle_id = func.concat(
        "B", case((number < 10000, func.lpad(cast(number, Text), 4, "0")), else_=cast(number, Text))
    )
    members = select(
        k.space_id,
        bundle_id.label("bundle_id"),
        k.community,
        k.survey_ref,
        k.kind,
        k.footprint_area_m2,
        k.floor_area_m2,
        k.area_m2,
        k.severity,
        k.geom,
    ).subquery("members")
    m = members.c
    v_bundle_member = select(m.bundle_id, m.space_id, m.survey_ref, m.community)
    count = func.count()
    v_bundle = select(
        m.bundle_id,
        func.min(m.community).label("communities"),
        func.string_agg(
            m.survey_ref, aggregate_order_by(literal(", "), m.survey_ref.collate("C"))
        ).label("members"),
        count.label("member_count"),
        func.string_agg(m.kind.distinct(), aggregate_order_by(literal(", "), m.kind)).label(
            "kinds"
        ),
        *(
            func.round(cast(func.sum(func.coalesce(col, 0.0)), postgresql.NUMERIC), 1).label(name)
            for name, col in (
                ("footprint_area_m2", m.footprint_area_m2),
                ("floor_area_m2", m.floor_area_m2),
                ("usable_area_m2", m.area_m2),
            )
        ),
        func.min(m.area_m2).label("smallest_m2"),
        func.max(m.area_m2).label("largest_m2"),
        count.filter(m.severity.is_(None)).label("clean"),
        *(count.filter(m.severity == s).label(s) for s in ("transitional", "minor", "blocking")),
        _typed(func.ST_ConvexHull(func.ST_Collect(m.geom)), "MULTIPOLYGON").label("geom"),
    ).group_by(m.bundle_id)

    status = func.coalesce(severity, "clean")
    gaps = func.concat_ws(", ", *(case((cond, rule.gap), else_=None) for rule, cond in ordered))
    gaps_zh = func.concat_ws("；", *(case((cond, rule.zh), else_=None) for rule, cond in ordered))
    bundle_member = select(m.space_id, m.bundle_id).subquery("bundle_member")

    def spaces(types: tuple[str, ...], geometry: str) -> Select:
        return (
            select(
                space.id.label("space_id"),
                space.survey_ref,
                Community.name.label("community"),
                Community.district,
                Community.street_office,
                space.kind,
                _label_sql(space.kind, KIND).label("kind_zh"),
                space.name,
                space.footprint_area_m2,
                space.floor_area_m2,
                space.floors,
                space.usable_area_m2,
                space.parking_spaces,
                space.units,
                space.vacancy,
                _label_sql(space.vacancy, VACANCY).label("vacancy_zh"),
                space.condition,
                _label_sql(space.condition, CONDITION).label("condition_zh"),
                space.current_use,
                space.owner_name,
                space.owner_type,
                _label_sql(space.owner_type, OWNER_TYPE).label("owner_type_zh"),
                space.land_type,
                _label_sql(space.land_type, LAND_TYPE).label("land_type_zh"),
                space.certificate_status,
                _label_sql(space.certificate_status, CERTIFICATE_STATUS).label(
                    "certificate_status_zh"
                ),
                status.label("title_status"),
                case({s: pair[0] for s, pair in i18n.TITLE_STATUS.items()}, value=status).label(
                    "title_status_zh"
                ),
                func.nullif(gaps, "").label("gaps"),
                func.nullif(gaps_zh, "").label("gaps_zh"),
                bundle_member.c.bundle_id,
                space.disputed,
                space.dispute_note,
                space.operating_right_holder,
                space.operating_right_start,
                space.operating_right_end,
                space.tenure_source_ref,
                permit_end_sql(space.id).label("permit_end"),
                space.surveyed_at,
                space.notes,
                space.batch_id,
                _typed(space.geom, geometry).label("geom"),
            )
            .join(Community, space.community_id == Community.id)
            .outerjoin(bundle_member, bundle_member.c.space_id == space.id)
            .where(space.retired_at.is_(None), func.ST_GeometryType(space.geom).in_(types))
        )

    v_space = spaces(_POLYGONAL, "MULTIPOLYGON")
    live = v_space.subquery("v_space")
    v_gap = select(
        *(
            live.c[name]
            for name in (
                "space_id",
                "survey_ref",
                "community",
                "kind",
                "kind_zh",
                "name",
                "usable_area_m2",
                "owner_name",
                "certificate_status",
                "certificate_status_zh",
                "title_status",
                "title_status_zh",
                "gaps",
                "gaps_zh",
                "bundle_id",
                "geom",
            )
        )
    ).where(live.c.title_status != "clean")
    return {
        "v_bundle_member": v_bundle_member,
        "v_bundle": v_bundle,
        "v_space": v_space,
        "v_space_point": spaces(_PUNTAL, "MULTIPOINT"),
        "v_gap": v_gap,
    }


def _typed(geom, geometry: str):
    """Return ``geom`` as a typed geometry column (``geometry(MultiPolygon, 4326)``).

    The type modifier is what makes PostGIS list a view's column in ``geometry_columns``
    with its type, so QGIS opens it as one layer. A hull of one point or a line (two
    points) is not an area and comes out empty.
    """
    family = 3 if geometry == "MULTIPOLYGON" else 1
    multi = func.ST_Multi(func.ST_CollectionExtract(geom, family))
    return cast(multi, _GeometryOf(geometry))


class _GeometryOf(UserDefinedType):
    """``geometry(TYPE, 4326)`` as a cast target, read back as the database gives it."""

    cache_ok = True

    def __init__(self, geometry: str):
        self.geometry = geometry

    def get_col_spec(self, **kw) -> str:
        return f"geometry({self.geometry},{STORAGE_SRID})"
