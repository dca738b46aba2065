"""API fuzz: schemathesis over the live gateway's /openapi.json.

For every operation in the OpenAPI document, schemathesis sends the schema's
own edge cases plus a bounded number of generated requests (valid and invalid)
to the real gateway process and checks that

- no answer is a 5xx (CONTRACT.md: a 5xx is always a bug), and
- every answer matches the response schema the document gives for its status.

Once with the bootstrap admin token, so the requests reach the handlers, and
once without any token (everything but /healthz and /metrics must say 401).
Fuzzing may create and delete devices, people and tokens; that is fine: the
bootstrap token lives in the config and cannot be revoked.

status_code_conformance is left out: routes do not document every 4xx they answer.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.conftest import TOKEN

CHECKS = [not_a_server_error, response_schema_conformance]
calls: Counter[str] = Counter()


@pytest.fixture
def api_schema(gateway_factory: Any) -> Any:
    gw = gateway_factory("embedded").start()
    base_url = str(gw.http.base_url).rstrip("/")
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")
bounded = settings(
    max_examples=30, deadline=None, phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck)
)


@schema.parametrize()
@bounded
def test_fuzz_with_admin_token(case: Any) -> None:
    calls[f"token {case.operation.label}"] += 1
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)


@schema.parametrize()
@settings(bounded, max_examples=10)
def test_fuzz_without_token(case: Any) -> None:
    calls[f"no token {case.operation.label}"] += 1
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    response = case.call_and_validate(checks=CHECKS)
    if case.operation.path.startswith("/api/"):
        assert response.status_code == 401, response.text


def teardown_module() -> None:
    print(f"\nAPI fuzz: {sum(calls.values())} requests over {len(calls)} (operation, auth) pairs")
    for label, n in sorted(calls.items()):
        print(f"  {n:4d}  {label}")
