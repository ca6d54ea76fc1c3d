"""`specfleet amend` and `specfleet amendments` as an owner types them (issue 11).

Without an LLM endpoint the command refuses and records nothing (exit 2). With one (the
scripted OpenAI-compatible server over HTTP), a request that contradicts amendment A3 comes
back as a conflict naming the clauses, exit 0, and the request list shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.support.scripted_llm import Step, scripted_llm
from tests.ui import test_cli_evaluate as evaluate_cli
from tests.worker.test_amendments import CONFLICT

Cli = Callable[..., CompletedProcess[str]]
KEY = "sk-cli-amend-0123456789abcdefghijkl"

# the evaluate tests' fixtures: the examples as repositories, registered; the fake index
env, registered = evaluate_cli.env, evaluate_cli.registered


def test_without_an_llm_endpoint_amend_refuses_and_records_nothing(
    cli: Cli,
    registered: Path,
    env: dict[str, str],
) -> None:
    result = cli("amend", "orders", "--requirement", "Count each order's lines.", env=env)
    assert result.returncode == 2
    assert (
        "no endpoint is configured" in result.stderr and "SPECFLEET_LLM_BASE_URL" in result.stderr
    )
    assert "nothing was recorded" in result.stderr
    listed = cli("amendments", "orders", env=env)
    assert listed.returncode == 0 and "none" in listed.stdout


def test_an_empty_request_is_a_usage_error(cli: Cli, registered: Path, env: dict[str, str]) -> None:
    result = cli(
        "amend",
        "orders",
        "--requirement",
        "  ",
        env={**env, "SPECFLEET_LLM_BASE_URL": "http://127.0.0.1:9"},
    )
    assert result.returncode == 2 and "empty" in result.stderr


@pytest.mark.network
def test_a_conflicting_request_comes_back_naming_the_amendment(
    cli: Cli,
    registered: Path,
    env: dict[str, str],
) -> None:
    ask = "Show cancelled orders' charged amount until their refund arrives."
    with scripted_llm(Step(plan=CONFLICT)) as server:
        llm = {
            "SPECFLEET_LLM_BASE_URL": server.base_url,
            "SPECFLEET_LLM_API_KEY": KEY,
            "SPECFLEET_LLM_MAX_RETRIES": "0",
        }
        result = cli("amend", "orders", "--requirement", ask, "--now", env={**env, **llm})
    assert result.returncode == 0, result.stderr
    assert "conflict" in result.stdout and "conflicts with: A3, R4" in result.stdout
    assert "Nothing was changed" in result.stdout
    assert KEY not in result.stdout + result.stderr
    listed = cli("amendments", "orders", env=env)
    assert "conflicts with A3, R4" in listed.stdout and "tester@example.com" in listed.stdout
