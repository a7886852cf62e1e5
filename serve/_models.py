"""The champions a replica serves, one per horizon, following the MLflow ``champion`` alias.

A poller asks MLflow where each alias points every ``serving.model_poll_s``; a moved alias loads the new
version *beside* the old one and swaps one reference, so a request in flight finishes on the model it started
with and none fails. MLflow unreachable: the replica keeps what it has and reports the error (readiness stays
true once a model is loaded; ``last_error`` and a metric say it is not following the registry).

*Exact versions, not the alias.* The alias is resolved once per poll (``get_model_version_by_alias``) and the
model is then loaded as ``models:/<name>/<version>``: loading ``@champion`` directly would resolve the alias a
second time, and an alias moved between the two reads would load one version while reporting another.

*Bounded polls.* MLflow's HTTP client retries a failed request with exponential backoff (seven retries, a
120-second timeout by default: minutes per call), which suits a training job but would keep a poller silent for
minutes while the tracking server is down. The poller sets ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` and
``MLFLOW_HTTP_REQUEST_TIMEOUT`` (MLflow's documented variables, read on every request) from
``serving.mlflow_max_retries`` / ``serving.mlflow_timeout_s`` unless the operator set them: a missed poll costs
nothing, the next one comes ``model_poll_s`` later.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from serve import _telemetry
from training.registry import CHAMPION, model_name

if TYPE_CHECKING:
    from ridecast.config import Settings

__all__ = ["LoadedModel", "ModelSet", "RefreshResult"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    horizon: int
    name: str  # registered model name (training.registry.model_name)
    version: int
    booster: Any  # xgboost.Booster
    feature_names: tuple[str, ...]
    loaded_at: datetime


@dataclass(frozen=True)
class RefreshResult:
    changed: dict[int, tuple[int | None, int]]  # horizon -> (old version, new version)
    error: str | None  # MLflow could not be asked (the current models stay)


def bound_mlflow_http(settings: "Settings") -> None:
    """Bound MLflow's HTTP retries and timeout for this process, unless the environment already sets them."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.serving.mlflow_max_retries))
    # MLflow parses the timeout as an int
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, round(settings.serving.mlflow_timeout_s))))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


class ModelSet:
    """The loaded champion of each of ``training.horizons``; ``get`` is lock-free and never blocks on MLflow."""

    def __init__(self, settings: "Settings") -> None:
        self.settings = settings
        self.horizons = list(settings.training.horizons)
        self.uri = settings.mlflow_tracking_uri
        self._models: dict[int, LoadedModel] = {}  # replaced whole on a change, never mutated
        self._refresh_lock = threading.Lock()  # one refresh at a time (the poller, a test, an admin call)
        self._client = None
        self.last_error: str | None = None
        self.last_refresh: datetime | None = None
        bound_mlflow_http(settings)

    def _mlflow(self):
        """The client, made on first use: a SQLite tracking URI opens the database (and can fail) right here."""
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return self._client

    def _champion_version(self, name: str) -> int | None:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

        try:
            return int(self._mlflow().get_model_version_by_alias(name, CHAMPION).version)
        except MlflowException as exc:
            # no such model or alias: an answer, not an outage (INVALID_PARAMETER_VALUE is the alias-not-found
            # code of the SQL store)
            if exc.error_code in (ErrorCode.Name(RESOURCE_DOES_NOT_EXIST), "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def _load(self, horizon: int, name: str, version: int) -> LoadedModel:
        import mlflow.artifacts
        import mlflow.xgboost

        # The registry gives the version's artifact location and the download uses our URI explicitly: mlflow
        # 3.17 resolves a ``models:/`` URI with the process-wide tracking URI even when one is passed (a
        # replica started from a clean shell then found no model, and created ./mlflow.db).
        source = self._mlflow().get_model_version_download_uri(name, str(version))
        with tempfile.TemporaryDirectory(prefix="ridecast-model-") as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp, tracking_uri=self.uri)
            booster = mlflow.xgboost.load_model(local)
        feats = tuple(booster.feature_names or ())
        if not feats:
            raise ValueError(f"{name} version {version} has no feature names: it cannot be served by name")
        return LoadedModel(horizon, name, version, booster, feats, datetime.now(timezone.utc))

    def refresh(self) -> RefreshResult:
        """Ask MLflow where each champion points and load what moved. Never raises: a failure keeps the models."""
        with self._refresh_lock:
            changed: dict[int, tuple[int | None, int]] = {}
            errors: list[str] = []
            current = self._models
            new = dict(current)
            for h in self.horizons:
                name = model_name(self.settings, h)
                try:
                    version = self._champion_version(name)
                except Exception as exc:  # noqa: BLE001 - MLflow unreachable: the other horizons would wait too
                    errors.append(f"{name}: {_one_line(exc)}")
                    self._client = None  # a fresh client next poll (a SQLite file that reappears needs one)
                    break
                try:
                    if version is None:
                        if h in current:
                            log.warning("%s has no champion alias any more; keeping version %s", name,
                                        current[h].version)
                        continue
                    old = current.get(h)
                    if old is not None and old.version == version:
                        continue
                    new[h] = self._load(h, name, version)
                    changed[h] = (None if old is None else old.version, version)
                except Exception as exc:  # noqa: BLE001 - this version does not load: keep serving the loaded one
                    errors.append(f"{name} version {version}: {_one_line(exc)}")
            if changed:
                self._models = new  # one reference swap: a request holding the old LoadedModel keeps it
                for h, (old_v, new_v) in changed.items():
                    log.info("horizon %s: champion %s -> %s", h, old_v, new_v)
                    _telemetry.set_model_version(h, new_v)
            self.last_error = "; ".join(errors) or None
            self.last_refresh = datetime.now(timezone.utc)
            if self.last_error:
                log.warning("model refresh from %s failed, serving what is loaded: %s", self.uri, self.last_error)
            return RefreshResult(changed, self.last_error)

    def get(self, horizon: int) -> LoadedModel | None:
        return self._models.get(horizon)

    def versions(self) -> dict[int, int | None]:
        models = self._models
        return {h: (models[h].version if h in models else None) for h in self.horizons}

    def run(self, stop: threading.Event) -> None:
        """Refresh every ``serving.model_poll_s`` until ``stop`` is set (a replica runs this in a thread)."""
        while not stop.wait(self.settings.serving.model_poll_s):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - refresh does not raise; this keeps the thread alive if it ever did
                log.exception("model refresh crashed")
