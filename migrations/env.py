"""Alembic environment: the URL comes from the inventory's config, or an injected connection."""

from logging.config import fileConfig

from alembic import context
from geoalchemy2 import alembic_helpers

from inventory import _dialects
from inventory.db import connect
from inventory.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=_include_object,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
        compare_type=True,
    )


def _include_object(obj, name, obj_type, reflected, compare_to):
    # SpatiaLite's and PostGIS's own bookkeeping tables are not ours to migrate.
    if obj_type == "table" and reflected and compare_to is None:
        if name.startswith(("spatial_ref_sys", "geometry_columns", "idx_", "virts_", "views_")):
            return False
        if name in {
            "spatialite_history",
            "sql_statements_log",
            "SpatialIndex",
            "ElementaryGeometries",
            "KNN",
            "KNN2",
            "data_licenses",
            "spatial_ref_sys_aux",
            "vector_layers",
            "vector_layers_auth",
            "vector_layers_field_infos",
            "vector_layers_statistics",
            "geometry_columns_auth",
            "geometry_columns_field_infos",
            "geometry_columns_statistics",
            "geometry_columns_time",
            "views_geometry_columns",
            "virts_geometry_columns",
            "sqlite_sequence",
            "topology",
            "layer",
        }:
            return False
    return alembic_helpers.include_object(obj, name, obj_type, reflected, compare_to)


def run_migrations_offline() -> None:
    raise SystemExit("Offline (--sql) migrations are not supported; run against a store.")


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = connect(create=True)
    with engine.begin() as conn:
        _dialects.ensure_spatial_extension(conn)
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
