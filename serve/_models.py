"""The champions a replica serves, one per horizon, following the MLflow ``champion`` alias.

A poller asks MLflow where each alias points every ``serving.model_poll_s``; a moved alias loads the new
version *beside* the old one and swaps one reference, so a request in flight finishes on the model it started
with and none fails. MLflow unreachable: the replica keeps what it has and reports the error (readiness stays
true once a model is loaded; ``last_error`` and a metric say it is not following the registry).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ridecast.config import Settings

__all__ = ["LoadedModel", "ModelSet", "RefreshResult"]


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


class ModelSet:
    def __init__(self, settings: "Settings") -> None:
        raise NotImplementedError

    def refresh(self) -> RefreshResult:
        raise NotImplementedError

    def get(self, horizon: int) -> LoadedModel | None:
        raise NotImplementedError

    def versions(self) -> dict[int, int | None]:
        raise NotImplementedError

    def run(self, stop: threading.Event) -> None:
        """Refresh every ``serving.model_poll_s`` until ``stop`` is set (a replica runs this in a thread)."""
        raise NotImplementedError
