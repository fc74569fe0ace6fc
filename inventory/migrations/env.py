"""Alembic environment: the URL comes from the inventory's config, or an injected connection."""

from logging.config import fileConfig

from alembic import context
from geoalchemy2 import alembic_helpers

from inventory.backends import backend, include_in_migrations
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
        render_as_batch=backend(connection).render_as_batch,
        include_object=include_in_migrations,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
        compare_type=True,
    )


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
        backend(conn).ensure_spatial_extension(conn)
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
