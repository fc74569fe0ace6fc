"""``python -m inventory``: the command line, as the ``inventory`` script runs it."""

from inventory.cli import app

app(prog_name="inventory")
