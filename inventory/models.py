"""The store's schema: communities, spaces with their tenure, import batches, quarantine, history.

Modelled on LADM (ISO 19152) but kept lean: the *spatial unit* is a :class:`Space`, its
*right* and *party* are the tenure columns on the same row (one right per space is what
surveyors record), and the *source* is the survey reference, the tenure document
reference and the :class:`ImportBatch` that brought it in.

Geometries are stored in EPSG:4326 (WGS84 longitude/latitude; CGCS2000 coordinates
differ from it by centimetres and are stored as given). Areas and distances are
measured on the ellipsoid, so they are right in metres anywhere in China.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from inventory.codes import (
    CERTIFICATE_STATUS,
    CONDITION,
    KIND,
    LAND_TYPE,
    OWNER_TYPE,
    PARTY_TYPE,
    RIGHT_KIND,
    RIGHT_STATUS,
    SOURCE_KIND,
    VACANCY,
    CodeList,
)

#: The SRID every geometry is stored in.
STORAGE_SRID = 4326

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base whose metadata names every constraint."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _in_code_list(column: str, codes: CodeList, nullable: bool = True) -> CheckConstraint:
    values = ", ".join(f"'{c}'" for c in codes.codes)
    condition = f"{column} IN ({values})"
    if nullable:
        condition = f"{column} IS NULL OR {condition}"
    return CheckConstraint(condition, name=f"{column}_code")


class Community(Base):
    """A residential community (小区/社区) with its boundary."""

    __tablename__ = "community"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    district: Mapped[str | None] = mapped_column(String(100))
    street_office: Mapped[str | None] = mapped_column(String(100))
    built_year: Mapped[int | None] = mapped_column(Integer)
    households: Mapped[int | None] = mapped_column(Integer)
    residents: Mapped[int | None] = mapped_column(Integer)
    floor_area_m2: Mapped[float | None] = mapped_column(Float)
    site_area_m2: Mapped[float | None] = mapped_column(Float)
    boundary: Mapped[Any | None] = mapped_column(
        Geometry("MULTIPOLYGON", srid=STORAGE_SRID, spatial_index=True)
    )

    spaces: Mapped[list[Space]] = relationship(back_populates="community")

    __table_args__ = (
        CheckConstraint(
            "built_year IS NULL OR built_year BETWEEN 1900 AND 2100", name="built_year"
        ),
        CheckConstraint("households IS NULL OR households >= 0", name="households"),
        CheckConstraint("residents IS NULL OR residents >= 0", name="residents"),
    )


class ImportBatch(Base):
    """One run of an import: what file, how it was read, and what came of it."""

    __tablename__ = "import_batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_file: Mapped[str] = mapped_column(Text)
    layer: Mapped[str | None] = mapped_column(String(200))
    checksum_sha256: Mapped[str] = mapped_column(String(64), index=True)
    imported_by: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source_crs: Mapped[str | None] = mapped_column(String(200))
    encoding: Mapped[str | None] = mapped_column(String(50))
    field_mapping: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    read_count: Mapped[int] = mapped_column(Integer, default=0)
    loaded_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_count: Mapped[int] = mapped_column(Integer, default=0)
    unchanged_count: Mapped[int] = mapped_column(Integer, default=0)
    rejected_count: Mapped[int] = mapped_column(Integer, default=0)

    rejected: Mapped[list[RejectedFeature]] = relationship(
        back_populates="batch", foreign_keys="RejectedFeature.batch_id"
    )

    __table_args__ = (
        CheckConstraint(
            "read_count = loaded_count + updated_count + unchanged_count + rejected_count",
            name="counts_add_up",
        ),
    )


class Space(Base):
    """A stock space (存量空间) and its tenure: one row per surveyed spatial unit."""

    __tablename__ = "space"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    survey_ref: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(30), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    # MultiPolygon for rooms and land; parking may also be (Multi)Point with a space count.
    geom: Mapped[Any] = mapped_column(Geometry("GEOMETRY", srid=STORAGE_SRID, spatial_index=True))
    footprint_area_m2: Mapped[float | None] = mapped_column(Float)
    floor_area_m2: Mapped[float | None] = mapped_column(Float)
    floors: Mapped[int | None] = mapped_column(Integer)
    usable_area_m2: Mapped[float | None] = mapped_column(Float)
    parking_spaces: Mapped[int | None] = mapped_column(Integer)
    # Countable resources: flats of a dwelling, shops, charging posts, lifts, ad spots.
    units: Mapped[int | None] = mapped_column(Integer)
    condition: Mapped[str | None] = mapped_column(String(20))
    current_use: Mapped[str | None] = mapped_column(String(200))
    vacancy: Mapped[str | None] = mapped_column(String(20))
    surveyed_at: Mapped[date | None] = mapped_column()
    notes: Mapped[str | None] = mapped_column(Text)
    # Tenure (LADM party + right + source), one right per space.
    owner_name: Mapped[str | None] = mapped_column(String(200))
    owner_type: Mapped[str | None] = mapped_column(String(30))
    land_type: Mapped[str | None] = mapped_column(String(20))
    certificate_status: Mapped[str | None] = mapped_column(String(20))
    disputed: Mapped[bool] = mapped_column(default=False)
    dispute_note: Mapped[str | None] = mapped_column(Text)
    operating_right_holder: Mapped[str | None] = mapped_column(String(200))
    operating_right_start: Mapped[date | None] = mapped_column()
    operating_right_end: Mapped[date | None] = mapped_column()
    tenure_source_ref: Mapped[str | None] = mapped_column(String(200))
    # Import-time data-quality flags (outside community, overlap, sliver, area mismatch).
    quality_flags: Mapped[list[str] | None] = mapped_column(JSON)
    # Attributes of the source file that map to no column, kept verbatim.
    extra_attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batch.id"), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Retired (demolished, merged, surveyed in error): kept with its history, out of analyses.
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retired_reason: Mapped[str | None] = mapped_column(Text)

    community: Mapped[Community] = relationship(back_populates="spaces")

    __table_args__ = (
        UniqueConstraint("community_id", "survey_ref"),
        _in_code_list("kind", KIND, nullable=False),
        _in_code_list("owner_type", OWNER_TYPE),
        _in_code_list("land_type", LAND_TYPE),
        _in_code_list("certificate_status", CERTIFICATE_STATUS),
        _in_code_list("vacancy", VACANCY),
        _in_code_list("condition", CONDITION),
        CheckConstraint(
            "footprint_area_m2 IS NULL OR footprint_area_m2 >= 0", name="footprint_area_m2"
        ),
        CheckConstraint("floor_area_m2 IS NULL OR floor_area_m2 > 0", name="floor_area_m2"),
        CheckConstraint("usable_area_m2 IS NULL OR usable_area_m2 >= 0", name="usable_area_m2"),
        CheckConstraint("floors IS NULL OR floors BETWEEN -10 AND 100", name="floors"),
        CheckConstraint("parking_spaces IS NULL OR parking_spaces >= 0", name="parking_spaces"),
        CheckConstraint("units IS NULL OR units >= 0", name="units"),
        CheckConstraint(
            "operating_right_end IS NULL OR operating_right_start IS NULL "
            "OR operating_right_end >= operating_right_start",
            name="operating_right_period",
        ),
    )


class RejectedFeature(Base):
    """A source feature that could not be imported, quarantined with why."""

    __tablename__ = "rejected_feature"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batch.id"), index=True)
    source_row: Mapped[int] = mapped_column(Integer)
    survey_ref: Mapped[str | None] = mapped_column(String(100))
    raw_attributes: Mapped[dict[str, Any]] = mapped_column(JSON)
    raw_geometry_wkt: Mapped[str | None] = mapped_column(Text)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    # Resolved: a later batch loaded a space of the same survey reference (the fix).
    resolved_batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batch.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    batch: Mapped[ImportBatch] = relationship(
        back_populates="rejected", foreign_keys="RejectedFeature.batch_id"
    )


class BatchSpace(Base):
    """A space an import batch delivered, and what the batch did with it (a survey round)."""

    __tablename__ = "batch_space"

    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batch.id"), primary_key=True)
    space_id: Mapped[int] = mapped_column(
        ForeignKey("space.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    action: Mapped[str] = mapped_column(String(10))  # loaded, updated, unchanged

    __table_args__ = (
        CheckConstraint("action IN ('loaded', 'updated', 'unchanged')", name="action_code"),
    )


class SpaceHistory(Base):
    """One change of one field of a space's tenure or status (old → new, when, by what)."""

    __tablename__ = "space_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("space.id", ondelete="CASCADE"), index=True)
    field: Mapped[str] = mapped_column(String(50))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batch.id"))
    changed_by: Mapped[str | None] = mapped_column(String(100))


class Party(Base):
    """A party (LADM): a person, work unit, government body, enterprise, committee, operator."""

    __tablename__ = "party"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    party_type: Mapped[str] = mapped_column(String(30))
    notes: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (_in_code_list("party_type", PARTY_TYPE, nullable=False),)


class TenureRight(Base):
    """A right, restriction or responsibility on a space, held by a party.

    Ownership (with its share), use right, operating right, lease, transitional permit
    (allowed uses, conditions), change-of-use approval (status, decided on). A right on a
    right (``parent_id``) makes a chain: owner → street office lease → operator sublet.
    ``origin`` is "survey" for the rights the survey's flat columns give (replaced when a
    re-survey changes them) and "record" for rights entered one by one.
    """

    __tablename__ = "tenure_right"

    id: Mapped[int] = mapped_column(primary_key=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("space.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    holder_id: Mapped[int] = mapped_column(ForeignKey("party.id"), index=True)
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("party.id"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tenure_right.id"), index=True)
    share: Mapped[float | None] = mapped_column(Float)
    start_date: Mapped[date | None] = mapped_column()
    end_date: Mapped[date | None] = mapped_column()
    rent_yuan_year: Mapped[float | None] = mapped_column(Float)
    allowed_uses: Mapped[list[str] | None] = mapped_column(JSON)
    conditions: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="active")
    decided_on: Mapped[date | None] = mapped_column()
    origin: Mapped[str] = mapped_column(String(10), default="record")
    notes: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        _in_code_list("kind", RIGHT_KIND, nullable=False),
        _in_code_list("status", RIGHT_STATUS, nullable=False),
        CheckConstraint("share IS NULL OR (share > 0 AND share <= 1)", name="share"),
        CheckConstraint(
            "end_date IS NULL OR start_date IS NULL OR end_date >= start_date", name="period"
        ),
        CheckConstraint("rent_yuan_year IS NULL OR rent_yuan_year >= 0", name="rent"),
        CheckConstraint("origin IN ('survey', 'record')", name="origin"),
    )


class TenureSource(Base):
    """A source (LADM): certificate, contract, permit letter, minutes — with its file."""

    __tablename__ = "tenure_source"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    number: Mapped[str | None] = mapped_column(String(100), index=True)
    issued_on: Mapped[date | None] = mapped_column()
    issuer: Mapped[str | None] = mapped_column(String(200))
    file_name: Mapped[str | None] = mapped_column(String(255))
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    file_size: Mapped[int | None] = mapped_column(Integer)
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    notes: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        _in_code_list("kind", SOURCE_KIND, nullable=False),
        CheckConstraint("file_size IS NULL OR file_size >= 0", name="file_size"),
    )


class RightSource(Base):
    """Which source proves which right."""

    __tablename__ = "right_source"

    right_id: Mapped[int] = mapped_column(
        ForeignKey("tenure_right.id", ondelete="CASCADE"), primary_key=True
    )
    source_id: Mapped[int] = mapped_column(
        ForeignKey("tenure_source.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class TenureEvent(Base):
    """One change of a space's tenure made without re-import: who, when, why, on what source."""

    __tablename__ = "tenure_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("space.id", ondelete="CASCADE"), index=True)
    right_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenure_right.id", ondelete="SET NULL"), index=True
    )
    source_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenure_source.id", ondelete="SET NULL"), index=True
    )
    action: Mapped[str] = mapped_column(String(30))
    detail: Mapped[str | None] = mapped_column(Text)
    why: Mapped[str | None] = mapped_column(Text)
    changed_by: Mapped[str | None] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


#: Fields whose changes are written to :class:`SpaceHistory`.
TRACKED_FIELDS: tuple[str, ...] = (
    "kind",
    "floor_area_m2",
    "usable_area_m2",
    "parking_spaces",
    "units",
    "condition",
    "current_use",
    "vacancy",
    "owner_name",
    "owner_type",
    "land_type",
    "certificate_status",
    "disputed",
    "operating_right_holder",
    "operating_right_start",
    "operating_right_end",
)
