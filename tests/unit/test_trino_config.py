"""Pure parts of the embedded Trino: rendered config files, catalog wiring, Java discovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from ridecast.config import CatalogSettings, Settings, TrinoSettings
from ridecast.sql import UnsupportedSqlError
from ridecast.sql._translate import joda_to_strftime
from ridecast.stack.trino import (
    TrinoNotInstalledError,
    catalog_properties,
    find_java_home,
    jdbc_url,
    render_config,
    render_create_catalog,
    render_jvm_config,
)


def test_jdbc_url_from_sqlalchemy_uris(tmp_path):
    assert jdbc_url(f"sqlite:///{tmp_path}/catalog.db") == (f"jdbc:sqlite:{tmp_path}/catalog.db", "org.sqlite.JDBC")
    url, driver = jdbc_url("postgresql+psycopg2://ana:s%40cret@db.example:5433/lake?sslmode=require")
    assert driver == "org.postgresql.Driver"
    assert url == "jdbc:postgresql://db.example:5433/lake?sslmode=require&user=ana&password=s%40cret"
    assert jdbc_url("postgresql://postgres@127.0.0.1/ridecast")[0] == "jdbc:postgresql://127.0.0.1/ridecast?user=postgres"
    with pytest.raises(ValueError, match="sqlite and postgresql only"):
        jdbc_url("mysql://u@h/db")
    with pytest.raises(ValueError, match="SQLite file"):
        jdbc_url("sqlite://")


def test_catalog_is_the_pyiceberg_catalog(tmp_path):
    s = Settings(home=tmp_path, catalog=CatalogSettings(name="prod"))
    props = catalog_properties(s)
    assert props["iceberg.jdbc-catalog.catalog-name"] == "prod"  # same name on every side
    assert props["iceberg.jdbc-catalog.connection-url"] == f"jdbc:sqlite:{tmp_path.resolve()}/catalog.db"
    assert props["iceberg.jdbc-catalog.default-warehouse-dir"] == s.warehouse
    assert props["fs.native-local.enabled"] == "true" and props["local.location"] == "/"
    s3 = Settings(home=tmp_path, catalog=CatalogSettings(warehouse="s3://bucket/wh"))
    assert "fs.native-local.enabled" not in catalog_properties(s3)
    assert catalog_properties(s3)["fs.native-s3.enabled"] == "true"
    sql = render_create_catalog("lake_1", s)
    assert sql.startswith('CREATE CATALOG "lake_1" USING iceberg WITH (')
    assert "\"iceberg.jdbc-catalog.catalog-name\" = 'prod'" in sql and "connector.name" not in sql


def test_single_node_config_and_heap_from_settings(tmp_path):
    s = Settings(home=tmp_path, trino=TrinoSettings(heap="5G"))
    cfg = render_config(8123, s)
    assert cfg["coordinator"] == "true" and cfg["node-scheduler.include-coordinator"] == "true"
    assert cfg["http-server.http.port"] == "8123" and cfg["discovery.uri"] == "http://127.0.0.1:8123"
    assert cfg["catalog.management"] == "static"
    jvm = render_jvm_config(s.trino.heap).splitlines()
    assert "-Xmx5G" in jvm and "-XX:+ExitOnOutOfMemoryError" in jvm and "-Djdk.attach.allowAttachSelf=true" in jvm


def test_java_home_setting_must_be_java_24_or_newer(tmp_path):
    old = tmp_path / "jdk17"
    (old / "bin").mkdir(parents=True)
    (old / "bin" / "java").write_text("")
    (old / "release").write_text('JAVA_VERSION="17.0.2"\n')
    with pytest.raises(TrinoNotInstalledError, match="Java 24"):
        find_java_home(Settings(home=tmp_path, trino=TrinoSettings(java_home=str(old))))
    (old / "release").write_text('JAVA_VERSION="25.0.1"\n')
    assert find_java_home(Settings(home=tmp_path, trino=TrinoSettings(java_home=str(old)))) == old


def test_java_home_found_without_a_setting(tmp_path):
    home = find_java_home(Settings(home=tmp_path))
    assert (Path(home) / "bin" / "java").is_file()


def test_joda_patterns():
    assert joda_to_strftime("yyyy-MM-dd HH:mm:ss") == "%Y-%m-%d %H:%M:%S"
    assert joda_to_strftime("EEE, dd MMM yyyy 'at' hh a") == "%a, %d %b %Y at %I %p"
    assert joda_to_strftime("HH:mm:ss.SSS '100%'") == "%H:%M:%S.%g 100%%"
    with pytest.raises(UnsupportedSqlError, match="'ww'"):
        joda_to_strftime("yyyy-ww")


def test_translation_of_show_and_rewritten_functions():
    from ridecast.sql import translate
    from ridecast.sql._translate import rewrite_show

    assert rewrite_show("select 1") is None
    assert "information_schema.schemata WHERE schema_name LIKE 'g%'" in rewrite_show("SHOW SCHEMAS LIKE 'g%'")
    assert "table_schema = 'gold'" in rewrite_show('SHOW TABLES FROM iceberg."gold"')
    desc = rewrite_show("DESCRIBE gold.zone_features")
    assert desc == rewrite_show("SHOW COLUMNS FROM gold.zone_features")
    assert "table_schema = 'gold' AND table_name = 'zone_features'" in desc
    t = translate("SHOW COLUMNS IN gold.zone_features")
    assert t.information_schema == ("columns",) and t.columns == ("Column", "Type", "Extra", "Comment")
    assert '"$information_schema".columns' in t.sql.replace('"columns"', "columns")
    with pytest.raises(UnsupportedSqlError, match="without a schema"):
        translate("SHOW TABLES")
    with pytest.raises(UnsupportedSqlError, match="information_schema.views"):
        translate("SELECT * FROM information_schema.views")
    assert "DATE_SUB('minute', a, b)" in translate("SELECT date_diff('minute', a, b) FROM t").sql
    assert "MAP(LIST(k), LIST(v))" in translate("SELECT map_agg(k, v) FROM t").sql
    assert "'%Y-%m-%d'" in translate("SELECT format_datetime(ts, 'yyyy-MM-dd') FROM t").sql
    with pytest.raises(UnsupportedSqlError, match="branch or tag"):
        translate("SELECT * FROM gold.t FOR VERSION AS OF 'main'")
