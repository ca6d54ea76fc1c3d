"""The JSON API against its own OpenAPI document (schemathesis, in-process ASGI): generated
requests of every operation get answers the document describes, and never a server error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import Engine

from specfleet.web.app import create_app
from tests.ui.web.conftest import Accounts, bearer, settings_for

EXAMPLES_PER_OPERATION = 20


def test_api_conforms_to_its_openapi_document(
    engine: Engine, specfleet_home: Path, accounts: Accounts
) -> None:
    """Generated calls to every operation (as platform, then as an owner) never get a 5xx and
    their answers match the document (a schema-valid request may still be refused: a
    repository that does not exist is valid JSON but not a product)."""
    app = create_app(settings_for(engine, specfleet_home))
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for account in ("platform", "owner-a"):
        for operation in operations:
            check_operation(operation, bearer(accounts, account))


def check_operation(operation: Any, headers: dict[str, str]) -> None:
    """Run the generated cases of one operation with these credentials."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    run()
