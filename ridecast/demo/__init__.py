"""``ridecast demo``: the whole pipeline on embedded defaults. Calls the library, never the CLI commands."""

from ridecast.demo.run import DemoPlan, plan, run_demo

__all__ = ["DemoPlan", "plan", "run_demo"]
