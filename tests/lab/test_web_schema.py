"""The REST API against its own OpenAPI document, with schemathesis generating the requests in
its three modes (valid requests, malformed ones, and sequences of calls): no server errors, and
every answer (status, content type, body) is one the document declares.
(Not checked: that every schema-valid request is accepted. Most rules depend on the host, such
as a subnet no other network uses, and are refused with 422 and one sentence.)

Fuzzed: every reading, and the changes whose effects stay inside the lab host's namespaces
(networks, VM actions, disks and NICs of VMs). Not fuzzed: pools and volumes (a generated pool
target would be a directory on this machine's real file system; a volume fills a disk), deleting
networks (the other web tests use `default`), source discovery (asks a file server on the
network) and the endless event stream.
"""
from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.stateful import run_state_machine_as_test
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import WEB_PASSWORD


@pytest.fixture(scope="module")
def web_schema(web_server):
    schema = schemathesis.openapi.from_url(f"{web_server}/openapi.json")
    return (schema.exclude(path_regex="^/api/(pools|pool-sources|events)")
            .exclude(method="DELETE", path_regex="^/api/networks")
            .exclude(path="/logout")
            .exclude(path="/login"))  # generated passwords are guesses: the rate limit would lock the shared server


@pytest.fixture(scope="module")
def session(web_server):
    with requests.Session() as session:
        login = session.post(f"{web_server}/login", json={"password": WEB_PASSWORD})
        assert login.status_code == 200
        session.headers["X-CSRF-Token"] = login.json()["csrf_token"]  # a script's changes carry it (docs/security.md)
        yield session


def test_api_conforms_to_its_openapi_document(web_schema, session, web_server):
    operations = [result.ok() for result in web_schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck),
                  phases=[Phase.explicit, Phase.generate, Phase.shrink])
        def conforms(case) -> None:
            case.call_and_validate(base_url=web_server, session=session, excluded_checks=[positive_data_acceptance])

        conforms()


def test_api_refuses_malformed_requests_in_its_own_shape(web_schema, session, web_server):
    """Negative mode: requests that break the document (wrong types, missing or unknown fields,
    odd path values) are refused with a 4xx the document declares, never a server error."""
    operations = [result.ok() for result in web_schema.get_all_operations()]
    fuzzed = []
    for operation in operations:
        @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck),
                  phases=[Phase.explicit, Phase.generate])
        def refused(case) -> None:
            response = case.call(base_url=web_server, session=session)
            assert response.status_code < 500, (case.method, case.formatted_path, response.text[:300])
            case.validate_response(response, excluded_checks=[positive_data_acceptance])

        try:
            refused()
            fuzzed.append(operation.label)
        except Unsatisfiable:
            pass  # nothing in it can be malformed (no parameters, no body)
    assert len(fuzzed) >= 10, fuzzed


def test_api_sequences_of_calls_keep_to_the_document(web_schema, session, web_server):
    """Stateful mode: schemathesis links operations (a network made, then read, acted on) from the
    document and plays sequences of them; every answer stays in the document, none is a 5xx."""
    inference = web_schema.apply_stateful_inference(None)
    assert inference.selected > 0, inference  # links between operations were found: there are sequences
    machine = web_schema.as_state_machine()

    class Sequences(machine):
        def get_call_kwargs(self, case):
            return {"base_url": web_server, "session": session}

        def validate_response(self, response, case, **kwargs):
            assert response.status_code < 500, (case.method, case.formatted_path, response.text[:300])
            case.validate_response(response, excluded_checks=[positive_data_acceptance])

    # Generation only: a sequence depends on what the server answered before, so hypothesis cannot
    # replay it draw for draw to shrink it (it would report FlakyStrategyDefinition instead).
    run_state_machine_as_test(Sequences, settings=settings(max_examples=10, stateful_step_count=5, deadline=None,
                                                           phases=[Phase.generate], database=None,
                                                           suppress_health_check=list(HealthCheck)))
