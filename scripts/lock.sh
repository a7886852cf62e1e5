#!/usr/bin/env bash
# Re-resolve requirements/*.in into the pinned *.lock files that bootstrap.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
export UV_PYTHON_DOWNLOADS=never
export UV_NATIVE_TLS=1  # the platform trust store, as pip, curl and Maven use here (a proxy CA may sit in it)
PY=${RIDECAST_PYTHON:-$(command -v python3.11 || command -v python3)}
UV=$(command -v uv || echo .cache/uv-bin/bin/uv)
for env in app flink checkov; do
  "$UV" pip compile -q --python "$PY" --python-version 3.11 "requirements/$env.in" -o "requirements/$env.lock"
done
