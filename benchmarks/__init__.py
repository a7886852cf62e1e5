"""ridecast benchmarks (not tests): run with ``python -m benchmarks.<name>`` or ``make bench``."""
