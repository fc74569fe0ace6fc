"""Exceptions raised by the inventory library.

Every message names what went wrong, the value involved, and what to do about it.
"""


class InventoryError(Exception):
    """Base class for all errors the inventory raises on purpose."""


class ConfigurationError(InventoryError, ValueError):
    """A setting (database URL, option value) is malformed or inconsistent."""


class BackendUnavailableError(InventoryError):
    """The spatial database or one of its extensions cannot be reached or loaded."""


class SchemaError(InventoryError):
    """The store has no schema, or a schema this version does not know."""


class InputError(InventoryError, ValueError):
    """An input file or value cannot be used as given."""


class ScenarioError(InputError):
    """A scenario file is missing a value, or has one that cannot be right."""
