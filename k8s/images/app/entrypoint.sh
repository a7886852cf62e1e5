#!/bin/sh
# The app image's roles, one image for serving, training and the CLI jobs (charts/ridecast picks one per workload):
#   serve            Ray Serve forecasting service (python -m serve)
#   serve --feed     the online-feature feed of the shared Redis store (python -m serve --feed)
#   train            ridecast train            (the RayJob's entrypoint, and the retrain CronJob)
#   forecast-batch   ridecast forecast-batch   (the forecast-refresh CronJob)
#   maintain         ridecast maintain         (the lake-maintenance CronJob)
#   anything else    run as given (e.g. `ridecast sql ...`, `ray start ...`)
# Every setting comes from RIDECAST_* environment variables (ridecast/config.py); `exec` so that the process
# receives Kubernetes' SIGTERM itself.
set -eu
role=${1:-serve}
case "$role" in
  serve) shift 2>/dev/null || true; exec python -m serve "$@" ;;
  train|forecast-batch|maintain) shift; exec ridecast "$role" "$@" ;;
  *) exec "$@" ;;
esac
