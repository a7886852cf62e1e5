"""``python -m ridecast``: the CLI, for subprocesses that must use this interpreter (the embedded scheduler's runs)."""

from ridecast.cli import app

app(prog_name="ridecast")
