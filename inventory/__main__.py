from inventory.cli import app

app(prog_name="inventory")
