"""Property-based fuzzing of the API against its own /openapi.json (schemathesis, positive
and negative cases), in process: fakeredis for records and keys, Celery's in-memory broker,
local image storage. Every answer must be below 500, every error a problem document, and every
answer what the document declares (schemathesis' response checks: its status code, content
type, body schema and headers are declared, and a request the schema forbids is refused), so a
client generated from the document can trust it (tests/test_generated_client.py).

Routes added later are fuzzed too: the cases come from the schema. Bounded by
FUZZ_EXAMPLES per operation; the count of cases tried is printed and asserted.

The depth is the tier's. The whole suite (`make test`, CI) fuzzes 150 examples per operation:
about 10,800 cases, 85 s on 2 cores, nearly the fast tier's whole 90 s budget. The fast tier
(`pytest -m "not integration"`) fuzzes 50: about 6,900 cases, 40 s, with the same
deterministic cases schemathesis derives from the schema (about 5,000 of them, whatever the
depth) and the same assertions; only the random search beyond them is shorter.
RENDERQ_FUZZ_EXAMPLES sets the depth of either. The OpenAI Images routes and the dialects are
fuzzed at a 25th of it (2 or 6 examples per operation; about 1,000 cases, 25 s, mostly the
deterministic ones).
"""

from __future__ import annotations

import os
import tempfile

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import checks

from core.problems import Problem
from tests.conftest import FAST_TIER
from tests.inprocess import inprocess_app

FUZZ_EXAMPLES = int(os.environ.get("RENDERQ_FUZZ_EXAMPLES", "50" if FAST_TIER else "150"))
# Same cases every run in the suite (a failure reproduces); RENDERQ_FUZZ_RANDOM=1 explores anew.
FUZZ_DERANDOMIZE = os.environ.get("RENDERQ_FUZZ_RANDOM", "") != "1"


APP, _, KEY = inprocess_app(tempfile.mkdtemp(prefix="renderq-fuzz-"))

# Beyond "no 5xx": the answer is the declared one, and a schema-violating request is refused.
RESPONSE_CHECKS = [
    checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
    checks.response_schema_conformance, checks.response_headers_conformance, checks.negative_data_rejection,
]


DIALECTS = ("/v1/images/", "/compat/")


def _fuzzable(document: dict, dialects: bool = False) -> dict:
    """The service's own /openapi.json (its native routes, or with `dialects` the OpenAI Images
    routes and the reference APIs' dialects alone), less the multipart variants of bodies that
    also take JSON: schemathesis cannot mutate their binary file fields in negative mode
    ("Unsupported type: 'Binary'", a generator error, no request made). Multipart is
    hand-tested in tests/test_bad_input.py and by the operations' own tests."""
    document["paths"] = {path: item for path, item in document["paths"].items() if path.startswith(DIALECTS) == dialects}
    for operations in document["paths"].values():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            if "multipart/form-data" in content and len(content) > 1:
                del content["multipart/form-data"]
    return document


schema = schemathesis.openapi.from_dict(_fuzzable(TestClient(APP).get("/openapi.json").json()))
schema.app = APP

# The dialects answer their service's error shape, not problem documents, and the synchronous
# ones wait for their run, which never ends here (no worker): a wait of 50 ms makes that their
# declared timeout answer (504 with the run id). Their cases are checked against the document
# only, at a shallower depth: tests/test_openai*.py and tests/test_compat_*.py test their answers.
DIALECT_APP, _, DIALECT_KEY = inprocess_app(tempfile.mkdtemp(prefix="renderq-fuzz-"), openai_wait_seconds=0.05, compat_wait_seconds=0.05)
dialect_schema = schemathesis.openapi.from_dict(_fuzzable(TestClient(DIALECT_APP).get("/openapi.json").json(), dialects=True))
dialect_schema.app = DIALECT_APP
CASES = {"tried": 0, "by_status": {}}


def _header(response, name: str) -> str | None:
    values = response.headers.get(name.lower())  # schemathesis keeps a list per header
    return values[0] if values else None


def check_answer(response) -> None:
    status = response.status_code
    CASES["tried"] += 1
    CASES["by_status"][status] = CASES["by_status"].get(status, 0) + 1
    assert status < 500, f"{status}: {response.text[:500]}"
    assert _header(response, "x-request-id")
    if status >= 400:
        assert _header(response, "content-type") == "application/problem+json", response.headers
        problem = Problem.model_validate(response.json())
        assert problem.status == status and problem.type.startswith("/problems/") and problem.title


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
          derandomize=FUZZ_DERANDOMIZE)
def test_fuzzed_requests_answer_as_declared_and_errors_are_problems(case):
    headers = dict(case.headers or {})
    headers.pop("Authorization", None)
    headers.pop("X-API-Key", None)
    headers |= {"Authorization": f"Bearer {KEY}"}
    response = case.call(headers=headers)
    check_answer(response)
    case.validate_response(response, checks=RESPONSE_CHECKS, headers=headers)


@dialect_schema.parametrize()
@settings(max_examples=max(1, FUZZ_EXAMPLES // 25), deadline=None, suppress_health_check=list(HealthCheck), database=None,
          derandomize=FUZZ_DERANDOMIZE)
def test_fuzzed_dialect_requests_answer_as_declared(case):
    headers = dict(case.headers or {})
    headers.pop("Authorization", None)
    headers.pop("X-API-Key", None)
    headers |= {"Authorization": f"Bearer {DIALECT_KEY}"}
    response = case.call(headers=headers)  # an unhandled exception fails here (TestClient raises it)
    assert _header(response, "x-request-id")
    case.validate_response(response, checks=RESPONSE_CHECKS[1:], headers=headers)  # 500/504 are declared


@pytest.fixture(scope="module", autouse=True)
def _report_cases():
    yield
    print(f"\nFUZZ cases tried={CASES['tried']} 5xx={sum(n for s, n in CASES['by_status'].items() if s >= 500)} by status={dict(sorted(CASES['by_status'].items()))}")
