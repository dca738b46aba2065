"""API fuzz: schemathesis over the gateway's OpenAPI document, against the real gateway process.

For every operation in /openapi.json, schemathesis sends the schema's own edge
cases (its coverage phase, as explicit examples) plus a bounded number of
generated requests, valid and invalid, to a running `gateway run`, and checks

- not_a_server_error: no answer is a 5xx (CONTRACT.md: a 5xx is always a bug);
- response_schema_conformance: every answer matches the schema documented for its status.

Once with the bootstrap admin token, so the requests reach the handlers, and
once without a token (every /api/ route must then refuse: 401). Fuzzing creates
and deletes random devices, people and tokens; the bootstrap token is config,
so it cannot be revoked. Two of every three requests with ids in the path are
aimed at a device, person, token and command that exist, so the handlers get
past their 404s. status_code_conformance is not checked: which 4xx a route can
answer (403, 404, 409, 413, 415, 503) is not documented per route.

The schema is built in-process from the same create_app the server runs (the
first test checks the served /openapi.json is identical): schemathesis's lazy
`schemathesis.pytest.from_fixture` loader fails on pytest 9.2 (Function._nodeid is gone).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from gateway.api import create_app
from tests.conftest import TOKEN, GatewayProcess

pytestmark = pytest.mark.system  # runs the gateway (or the platform stand-in) as its own process

CHECKS = [not_a_server_error, response_schema_conformance]
DOCUMENT = create_app(services=None).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
bounded = settings(
    max_examples=40, deadline=None, phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck)
)
EXISTING: dict[str, str] = {}  # path parameter -> an id that exists, filled in by the gateway fixture
calls: defaultdict[str, Counter[int]] = defaultdict(Counter)  # "<pass> <operation>" -> status code -> requests
_turn = itertools.count()  # not random(): Hypothesis reseeds it for every example


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    gw = GatewayProcess(tmp_path_factory.mktemp("fuzz"), "embedded").start()
    gw.register("fuzz-dev")
    gw.http.post("/api/v1/people", json={"id": "fuzz-person", "name": "Fuzz"}).raise_for_status()
    token = gw.http.post("/api/v1/tokens", json={"name": "fuzz", "role": "auditor"}).raise_for_status().json()
    command = gw.http.post("/api/v1/devices/fuzz-dev/commands", json={"name": "reboot"}).raise_for_status().json()
    EXISTING.update(device_id="fuzz-dev", person_id="fuzz-person", token_id=token["id"], command_id=command["id"])
    yield str(gw.http.base_url).rstrip("/")
    gw.close()


def aim_at_existing(case: Any) -> None:
    """Two of three cases: ids in the path name things that exist. Not for DELETE, which would remove them."""
    if case.path_parameters and case.method.upper() != "DELETE" and next(_turn) % 3:
        case.path_parameters.update({k: EXISTING[k] for k in case.path_parameters if k in EXISTING})


def test_served_document_is_the_one_fuzzed(base_url: str) -> None:
    assert httpx.get(f"{base_url}/openapi.json").json() == DOCUMENT


@schema.parametrize()
@bounded
def test_fuzz_with_admin_token(case: Any, base_url: str) -> None:
    aim_at_existing(case)
    response = case.call_and_validate(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)
    calls[f"token    {case.operation.label}"][response.status_code] += 1


@schema.parametrize()
@settings(bounded, max_examples=15)
def test_fuzz_without_token(case: Any, base_url: str) -> None:
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    response = case.call_and_validate(base_url=base_url, checks=CHECKS)
    calls[f"no token {case.operation.label}"][response.status_code] += 1
    if case.operation.path.startswith("/api/") and case.method.upper() == case.operation.method.upper():
        # FastAPI parses the body before the token is looked at: a body it cannot parse is a 400 or 422.
        unparsed = any(why in response.text for why in ("error parsing the body", "JSON decode error"))
        assert response.status_code == 401 or (response.status_code in (400, 422) and unparsed), response.text


def teardown_module() -> None:
    """With -s: how many requests each operation got, by status code."""
    print(f"\nAPI fuzz: {sum(sum(c.values()) for c in calls.values())} requests, {len(calls)} operation x auth pairs")
    for label, statuses in sorted(calls.items()):
        print(f"  {sum(statuses.values()):4d}  {label}  {dict(sorted(statuses.items()))}")
