"""The pure parts of the offline Kubernetes validation: closing CRD schemas, and the CRD directory setting."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from ridecast.config import Settings
from tests.k8s_validation import close_schema


def test_closed_schema_rejects_unknown_fields_but_keeps_open_maps() -> None:
    crd_schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "image": {"type": "string", "nullable": True},
                    "config": {"type": "object", "additionalProperties": {"type": "string"}},
                    "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                            "properties": {"known": {"type": "string"}}},
                },
            }
        },
    }
    closed = close_schema(crd_schema)
    ok = {"spec": {"image": None, "config": {"any.key": "v"}, "raw": {"known": "a", "extra": 1}}}
    jsonschema.validate(ok, closed)
    with pytest.raises(jsonschema.ValidationError, match="imagee"):
        jsonschema.validate({"spec": {"imagee": "x"}}, closed)
    assert "additionalProperties" not in crd_schema["properties"]["spec"], "the CRD's own schema is left as is"


def test_crd_dir_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RIDECAST_VALIDATION__CRD_DIR", str(tmp_path))
    monkeypatch.setenv("RIDECAST_VALIDATION__KUBERNETES_VERSION", "1.32.0")
    s = Settings()
    assert s.crd_dir == tmp_path
    assert s.validation.kubernetes_version == "1.32.0"
