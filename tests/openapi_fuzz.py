"""schemathesis over a running service's /openapi.json: every operation, valid (positive) or invalid (negative)
requests, and every answer that was a 5xx. Shared by the plain app's suite and the Ray Serve suite, so both
servers of the same API face the same requests.

Hypothesis drives each operation's strategy directly (``as_strategy``, schemathesis' API for its use outside its
pytest plugin; the plugin's lazy fixture loader does not run on this pytest). Examples are bounded: a shared
2-core machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import hypothesis
import schemathesis

__all__ = ["FuzzResult", "MODES", "fuzz_openapi"]

MODES = list(schemathesis.GenerationMode)


@dataclass
class FuzzResult:
    operations: int
    exercised: set[str] = field(default_factory=set)  # "METHOD /path" that got at least one request
    server_errors: list[str] = field(default_factory=list)  # one line per 5xx: the request and the answer


def fuzz_openapi(base_url: str, mode: "schemathesis.GenerationMode", max_examples: int = 15) -> FuzzResult:
    base = base_url.rstrip("/")
    schema = schemathesis.openapi.from_url(base + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    out = FuzzResult(len(operations))

    for operation in operations:

        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(
            max_examples=max_examples, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        def call(case) -> None:
            response = case.call(base_url=base)
            out.exercised.add(f"{case.method} {case.path}")
            if response.status_code >= 500:
                out.server_errors.append(f"{case.method} {case.path} {case.path_parameters} {case.query} "
                                         f"{case.body!r}: {response.status_code} {response.text[:200]}")

        try:
            call()
        except hypothesis.errors.Unsatisfiable:  # no invalid request exists for an operation without inputs
            if mode != schemathesis.GenerationMode.NEGATIVE:
                raise
    return out
