"""Where events come from: a synthetic Singapore (demand, simulate) or your own file (ingest).

Every source ends in :mod:`ridecast.sources.deliver`, so the rest of the platform cannot tell them apart.
Sources sit above the runtime (:mod:`ridecast.stack`): delivering to Kafka needs the broker's address, a
backfill needs the batch feature job.
"""
