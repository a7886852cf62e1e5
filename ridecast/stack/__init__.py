"""The runtime: processes ridecast starts on one machine, each with a pid file and a log file (broker, feature job,
Trino), their lifecycle (:mod:`ridecast.stack.lifecycle`) and table maintenance (:mod:`ridecast.stack.maintain`).
"""

from ridecast.stack.broker import bootstrap_servers, ensure_topics, start_broker, stop_broker
from ridecast.stack.process import ManagedProcess

__all__ = ["ManagedProcess", "bootstrap_servers", "ensure_topics", "start_broker", "stop_broker"]
