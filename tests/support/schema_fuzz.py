"""Property-based API testing of a service's own OpenAPI schema with schemathesis (in process).

:func:`fuzz_schema` sends generated requests, valid (``positive``) and invalid (``negative``) by
the schema, to every operation of an ASGI app and checks each answer with schemathesis's checks:
no 5xx, a documented status code, content type and headers, a body that matches its schema.
``FUZZ_EXAMPLES`` sets the cases per service (1,000 in the suite; ``make fuzz`` runs more).
Derandomized, so a failure reproduces with the same count.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

#: Cases per service: at least this many requests are sent (half valid, half invalid by the schema).
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1000"))

# What a schema cannot say about our inputs, so the check would be wrong, not the service:
# "positive data acceptance" expects every schema-valid request to get 2xx, but a schema-valid
# `file` of random bytes is not audio (415), and a schema-valid job id names no job (404).
EXCLUDED_CHECKS = [positive_data_acceptance]


@dataclass
class FuzzReport:
    """How many cases were sent, by generation mode, operation and answered status."""

    cases: int = 0
    by_mode: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    by_operation: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        statuses = ", ".join(f"{code}: {count}" for code, count in sorted(self.by_status.items()))
        modes = ", ".join(f"{mode} {count}" for mode, count in sorted(self.by_mode.items()))
        return f"{self.cases} cases ({modes}); statuses {statuses}"


def fuzz_schema(
    schema: Any, headers: dict[str, str], examples: int = FUZZ_EXAMPLES, exclude_paths: tuple[str, ...] = ()
) -> FuzzReport:
    """Send ``examples`` generated requests (half positive, half negative) and check every answer.

    Raises the first failed check (schemathesis's error names the case and the failure).
    """
    report = FuzzReport()
    for path in exclude_paths:
        schema = schema.exclude(path=path)
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        _fuzz_mode(schema, mode, (examples + 1) // 2, headers, report)
    return report


def _fuzz_mode(schema: Any, mode: GenerationMode, examples: int, headers: dict[str, str], report: FuzzReport) -> None:
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=schema.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        # Our key replaces a generated Authorization header, so cases reach the routes behind auth
        # (schemathesis's own auth checks still send requests without it).
        sent_headers = {**(case.headers or {}), **headers}
        response = case.call_and_validate(headers=sent_headers, excluded_checks=EXCLUDED_CHECKS)
        report.cases += 1
        report.by_mode[mode.value] += 1
        report.by_status[response.status_code] += 1
        report.by_operation[f"{case.method} {case.path}"] += 1

    run()
