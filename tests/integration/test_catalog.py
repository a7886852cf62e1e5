import pytest

from iceberg_catalog.catalog import BACKENDS, ensure_tables, open_catalog
from iceberg_catalog.tables import TABLES

pytestmark = pytest.mark.integration


def test_ensure_tables_is_idempotent_on_every_backend(catalog_settings):
    cat = open_catalog(catalog_settings)
    first = ensure_tables(cat)
    again = ensure_tables(cat)
    assert set(first) == set(TABLES)
    for ident, table in again.items():
        assert table.metadata_location == first[ident].metadata_location
        assert [f.name for f in table.schema().fields] == [f.name for f in TABLES[ident].schema.fields]


@pytest.mark.unit
def test_unknown_scheme_is_a_clear_error(settings, monkeypatch):
    monkeypatch.setattr(type(settings), "catalog_uri", property(lambda self: "mysql://x"))
    with pytest.raises(ValueError, match="unsupported scheme"):
        open_catalog(settings)
    assert {"sqlite", "postgresql"} <= set(BACKENDS)
