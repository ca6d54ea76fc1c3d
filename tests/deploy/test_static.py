"""The deploy files, checked without Docker or Kubernetes: they parse, wire every process with
health checks, scale the workers, name only real specfleet commands and settings, and carry
no secret."""

from __future__ import annotations

import configparser
import importlib.util
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from specfleet.cli import app as cli_app
from specfleet.core.secrets import find_secret_shapes, is_secret_field
from specfleet.core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
ENV_EXAMPLE = DEPLOY / ".env.example"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"

SETTING_VARIABLES = {f"SPECFLEET_{name.upper()}" for name in Settings.model_fields}
SECRET_SETTINGS = {
    f"SPECFLEET_{name.upper()}"
    for name, field in Settings.model_fields.items()
    if "SecretStr" in repr(field.annotation)
}
# URLs that carry a password in a real deployment: they belong with the secrets too
CREDENTIAL_SETTINGS = {
    "SPECFLEET_DATABASE_URL",
    "SPECFLEET_REDIS_URL",
    "SPECFLEET_BROKER_URL",
    "SPECFLEET_RESULT_BACKEND",
}
# SPECFLEET_* names the deploy files use that are not settings, and why
NOT_SETTINGS = {
    "SPECFLEET_IMAGE": "compose: which image to run",
    "SPECFLEET_WEB_SECRET": "specfleet/web/auth.py reads it from the environment",
}
SPECFLEET_SERVICES = ("web", "worker", "scheduler")
INTERPOLATION = re.compile(r"\$\{[^}]*\}")


# --- helpers -------------------------------------------------------------------------------


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str, str]]:
    """Every (path, key, string value) in a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from (
                strings(value, f"{path}.{key}")
                if not isinstance(value, str)
                else [(f"{path}.{key}", str(key), value)]
            )
    elif isinstance(node, list):
        for index, item in enumerate(node):
            if isinstance(item, str):
                yield (f"{path}[{index}]", "", item)
            else:
                yield from strings(item, f"{path}[{index}]")


def assert_no_secret_values(where: str, node: Any) -> None:
    for path, key, value in strings(node):
        # ${VAR} interpolations are references, filled in from .env at run time
        literal = INTERPOLATION.sub("", value)
        assert not find_secret_shapes(literal), f"{where}{path} looks like a secret: {value!r}"
        if is_secret_field(key):
            assert not literal.strip(), f"{where}{path}: a secret-named key with a value"


def specfleet_invocations(command: Any) -> list[list[str]]:
    """The argument lists given to `specfleet` in a command (list or shell string)."""
    tokens = command if isinstance(command, list) else shlex.split(str(command))
    found: list[list[str]] = []
    for index, token in enumerate(tokens):
        if " " in token.strip():
            found.extend(specfleet_invocations(token))
        elif token.rsplit("/", 1)[-1] == "specfleet":
            rest = []
            for argument in tokens[index + 1 :]:
                if argument in ("&&", "||", ";", "|"):
                    break
                rest.append(argument)
            found.append(rest)
    return found


CLI = typer.main.get_command(cli_app)


def assert_real_command(where: str, arguments: list[str]) -> None:
    """Arguments name an existing `specfleet` (sub)command and only options it has."""
    command: Any = CLI
    position = 0
    # typer carries its own copy of click: a group is whatever has sub-commands
    while hasattr(command, "commands"):
        assert position < len(arguments), f"{where}: `specfleet {' '.join(arguments)}` is a group"
        name = arguments[position]
        sub = command.commands.get(name)
        assert sub is not None, f"{where}: `specfleet {' '.join(arguments)}`: no command {name!r}"
        command, position = sub, position + 1
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for argument in arguments[position:]:
        if argument.startswith("-"):
            option = argument.split("=", 1)[0]
            assert option in options, f"{where}: `specfleet {' '.join(arguments)}`: {option}?"


def assert_setting_names(where: str, names: set[str]) -> None:
    unknown = (
        {n for n in names if n.startswith("SPECFLEET_")} - SETTING_VARIABLES - set(NOT_SETTINGS)
    )
    assert not unknown, f"{where} sets variables that are not settings: {sorted(unknown)}"


# --- compose -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_has_every_process_with_health_checks(compose: dict[str, Any]) -> None:
    """Redis, PostgreSQL, web, worker, scheduler and Flower are there, each health-checked."""
    services = compose["services"]
    assert {"redis", "postgres", "web", "worker", "scheduler", "flower"} <= set(services)
    for name in ("redis", "postgres", "web", "worker", "scheduler", "flower"):
        test = services[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def test_compose_persists_redis_and_postgresql(compose: dict[str, Any]) -> None:
    """Redis keeps an append-only file and PostgreSQL its data directory, both on volumes."""
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    postgres = compose["services"]["postgres"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    named = {
        v.split(":", 1)[0] for s in ("redis", "postgres") for v in compose["services"][s]["volumes"]
    }
    assert named <= set(compose["volumes"])


def test_compose_workers_scale(compose: dict[str, Any]) -> None:
    """Workers have no fixed name or host port, run several replicas and shut down gracefully."""
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["deploy"]["replicas"] >= 2
    # long enough for a running evaluation to finish on SIGTERM
    assert worker["stop_grace_period"] in ("30m", "31m") or worker["stop_grace_period"].endswith(
        "m"
    )
    assert compose["services"]["scheduler"]["deploy"]["replicas"] == 1


def test_compose_services_wait_for_their_dependencies(compose: dict[str, Any]) -> None:
    """Specfleet processes start after healthy databases and a successful migration."""
    services = compose["services"]
    assert services["migrate"]["command"] == ["specfleet", "db", "upgrade"]
    for name in SPECFLEET_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        env_files = services[name]["env_file"]
        assert any(entry["path"] == ".env" for entry in env_files)
        env = services[name]["environment"]
        assert env["SPECFLEET_REDIS_URL"].startswith("redis://redis:6379")
        assert "@postgres:5432/" in env["SPECFLEET_DATABASE_URL"]


def test_compose_carries_no_secret_and_names_real_settings_and_commands(
    compose: dict[str, Any],
) -> None:
    """Passwords come from .env interpolation; every variable and command exists."""
    assert_no_secret_values("compose", compose)
    for name, service in compose["services"].items():
        assert_setting_names(f"compose {name}", set(service.get("environment", {})))
        for invocation in specfleet_invocations(service.get("command", [])):
            assert_real_command(f"compose {name}", invocation)
    assert (
        "${POSTGRES_PASSWORD" in compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    )
    commands = {tuple(compose["services"][n]["command"][:2]) for n in SPECFLEET_SERVICES}
    assert commands == {("specfleet", "web"), ("specfleet", "worker"), ("specfleet", "scheduler")}


# --- Dockerfile ----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def test_dockerfile_is_multi_stage_and_runs_as_a_user() -> None:
    """A build stage makes wheels; the slim runtime copies them and runs as a non-root user."""
    instructions = dockerfile_instructions()
    stages = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(stages) >= 2
    assert all("python:3.11" in stage for stage in stages)
    assert "slim" in stages[-1]
    build_name = stages[0].split(" AS ")[-1].strip()
    runtime = final_stage()
    assert any(k == "COPY" and f"--from={build_name}" in rest for k, rest in runtime)
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users, "the runtime stage must switch to a user"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_has_health_check_tools_and_entry_point() -> None:
    """HEALTHCHECK, git and bubblewrap from apt, semgrep and uv as Python dependencies."""
    runtime = final_stage()
    assert any(keyword == "HEALTHCHECK" and "CMD" in rest for keyword, rest in runtime)
    apt = " ".join(rest for keyword, rest in runtime if keyword == "RUN" and "apt-get" in rest)
    assert "git" in apt.split() and "bubblewrap" in apt.split()
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'"semgrep[>=<]', pyproject) and re.search(r'"uv[>=<]', pyproject)
    (cmd,) = [rest for keyword, rest in runtime if keyword == "CMD"]
    for invocation in specfleet_invocations(json.loads(cmd)):
        assert_real_command("Dockerfile CMD", invocation)


def test_dockerfile_bakes_in_no_secret() -> None:
    """No ARG or ENV names or carries a token, key or password."""
    for keyword, rest in dockerfile_instructions():
        if keyword not in ("ARG", "ENV"):
            continue
        for assignment in shlex.split(rest):
            name, _, value = assignment.partition("=")
            assert not is_secret_field(name), f"{keyword} {name} is a secret"
            assert name not in SECRET_SETTINGS | CREDENTIAL_SETTINGS, f"{keyword} {name}"
            assert not find_secret_shapes(value), f"{keyword} {name} looks like a secret"
    assert not find_secret_shapes(DOCKERFILE.read_text())
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert "deploy/.env" in ignored and "**/.git" in ignored


# --- .env.example --------------------------------------------------------------------------


def load_env_example_module() -> Any:
    spec = importlib.util.spec_from_file_location("env_example", DEPLOY / "env_example.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_env_example_documents_every_setting() -> None:
    """Every Settings field appears, described, and the file is what the generator writes."""
    text = ENV_EXAMPLE.read_text()
    for name, field in Settings.model_fields.items():
        variable = f"SPECFLEET_{name.upper()}"
        assert re.search(rf"^(# )?{variable}=", text, re.MULTILINE), f"{variable} missing"
        if field.description:
            first_words = " ".join(field.description.split()[:3])
            assert first_words in " ".join(text.replace("# ", " ").split()), variable
    assert text == load_env_example_module().render(), (
        "deploy/.env.example is stale: run `python deploy/env_example.py`"
    )


def test_env_example_leaves_secrets_empty() -> None:
    """Secret settings and compose passwords have no value in the example."""
    for line in ENV_EXAMPLE.read_text().splitlines():
        name, _, value = line.lstrip("# ").partition("=")
        if name in SECRET_SETTINGS | {
            "POSTGRES_PASSWORD",
            "FLOWER_BASIC_AUTH",
            "SPECFLEET_WEB_SECRET",
        }:
            assert value == "", line
        assert not find_secret_shapes(value), line
    assert {f"{name}=" for name in SECRET_SETTINGS} <= {
        line.lstrip("# ") for line in ENV_EXAMPLE.read_text().splitlines()
    }


# --- Kubernetes ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


def of_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def pod_specs(manifests: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for manifest in manifests:
        if manifest["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
            yield manifest["metadata"]["name"], manifest["spec"]["template"]["spec"]


def test_kubernetes_has_the_same_processes(manifests: list[dict[str, Any]]) -> None:
    """Deployments for web, worker, scheduler (one replica) and Flower; a Service for web."""
    deployments = of_kind(manifests, "Deployment")
    assert {"specfleet-web", "specfleet-worker", "specfleet-scheduler", "specfleet-flower"} <= set(
        deployments
    )
    assert deployments["specfleet-scheduler"]["spec"]["replicas"] == 1
    assert deployments["specfleet-scheduler"]["spec"]["strategy"]["type"] == "Recreate"
    service = of_kind(manifests, "Service")["specfleet-web"]
    web_labels = deployments["specfleet-web"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= web_labels.items()
    (job,) = of_kind(manifests, "Job").values()
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "specfleet",
        "db",
        "upgrade",
    ]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_every_long_running_container_has_probes_and_resources(
    manifests: list[dict[str, Any]],
) -> None:
    """Each Deployment container has liveness and readiness probes, requests and limits."""
    for name, manifest in of_kind(manifests, "Deployment").items():
        for container in manifest["spec"]["template"]["spec"]["containers"]:
            assert "livenessProbe" in container and "readinessProbe" in container, name
    for name, spec in pod_specs(manifests):
        for container in spec["containers"]:
            resources = container["resources"]
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[part]), f"{name} {part}"


def test_pods_run_as_non_root(manifests: list[dict[str, Any]]) -> None:
    """Every pod runs as a non-root user without privilege escalation."""
    for name, spec in pod_specs(manifests):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name


def test_secrets_come_from_kubernetes_secrets(manifests: list[dict[str, Any]]) -> None:
    """Secret settings are secretKeyRef references; no manifest holds a Secret's value."""
    assert not of_kind(manifests, "Secret"), "Secrets are created outside the repository"
    assert_no_secret_values("k8s", manifests)
    for name, spec in pod_specs(manifests):
        for container in spec["containers"]:
            for variable in container.get("env", []):
                sensitive = (
                    variable["name"] in SECRET_SETTINGS | CREDENTIAL_SETTINGS
                    or is_secret_field(variable["name"])
                    or variable["name"] in ("CELERY_BROKER_URL", "FLOWER_BASIC_AUTH")
                )
                if sensitive:
                    assert "value" not in variable, f"{name}: {variable['name']} has a value"
                    assert "secretKeyRef" in variable["valueFrom"], f"{name}: {variable['name']}"
            assert_setting_names(name, {v["name"] for v in container.get("env", [])})
    config = of_kind(manifests, "ConfigMap")["specfleet-config"]["data"]
    assert not (set(config) & (SECRET_SETTINGS | CREDENTIAL_SETTINGS))
    assert_setting_names("ConfigMap", set(config))
    web = of_kind(manifests, "Deployment")["specfleet-web"]["spec"]["template"]["spec"]
    refs = {v["name"] for v in web["containers"][0]["env"] if "valueFrom" in v}
    assert {
        "SPECFLEET_DATABASE_URL",
        "SPECFLEET_REDIS_URL",
        "SPECFLEET_GITLAB_TOKEN",
        "SPECFLEET_WEB_SECRET",
    } <= refs


def test_worker_disruption_budget_selects_the_workers(manifests: list[dict[str, Any]]) -> None:
    """A PodDisruptionBudget keeps workers available, and it matches the worker pods only."""
    (budget,) = of_kind(manifests, "PodDisruptionBudget").values()
    selector = budget["spec"]["selector"]["matchLabels"]
    assert budget["spec"]["minAvailable"] >= 1
    deployments = of_kind(manifests, "Deployment")
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert (selector.items() <= labels.items()) == (name == "specfleet-worker"), name
    worker = deployments["specfleet-worker"]["spec"]["template"]["spec"]
    # SIGTERM lets a running evaluation finish: the grace period covers a task's time limit
    assert worker["terminationGracePeriodSeconds"] >= Settings().task_time_limit


def test_kubernetes_commands_are_real(manifests: list[dict[str, Any]]) -> None:
    """Every `specfleet` command in the manifests exists with the options given."""
    seen = 0
    for name, spec in pod_specs(manifests):
        for container in spec["containers"]:
            for invocation in specfleet_invocations(container.get("command", [])):
                assert_real_command(name, invocation)
                seen += 1
    assert seen >= 4


# --- systemd -------------------------------------------------------------------------------


def read_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(), source=str(path))
    return parser


@pytest.mark.parametrize(
    "unit",
    [
        "specfleet-web.service",
        "specfleet-worker@.service",
        "specfleet-scheduler.service",
        "specfleet-db-upgrade.service",
    ],
)
def test_systemd_units_run_hardened_as_a_user(unit: str) -> None:
    """Each unit parses, runs a real command as a non-root user with hardening options."""
    parser = read_unit(SYSTEMD / unit)
    assert {"Unit", "Service", "Install"} <= set(parser.sections())
    service = parser["Service"]
    assert service["User"] not in ("root", "0")
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] in ("strict", "full")
    assert service["EnvironmentFile"] == "/etc/specfleet/specfleet.env"
    invocations = specfleet_invocations(service["ExecStart"])
    assert len(invocations) == 1
    assert_real_command(unit, invocations[0])
    if unit != "specfleet-db-upgrade.service":
        assert "specfleet-db-upgrade.service" in parser["Unit"]["Requires"]


def test_worker_unit_is_a_template_with_a_port_per_instance() -> None:
    """specfleet-worker@N runs several instances, each with its own metrics directory and port."""
    service = read_unit(SYSTEMD / "specfleet-worker@.service")["Service"]
    assert "%i" in service["ExecStart"] and "SPECFLEET_METRICS_PORT" in service["ExecStart"]
    assert "%i" in service["Environment"]
    # a stop waits for the running evaluation (task time limit) before systemd kills it
    assert service["TimeoutStopSec"].endswith("min") and int(service["TimeoutStopSec"][:-3]) > 30


def test_systemd_environment_file_names_settings_and_holds_no_secret() -> None:
    """The EnvironmentFile sets only real settings and leaves the secrets empty."""
    names = set()
    for line in (SYSTEMD / "specfleet.env").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        names.add(name)
        assert not find_secret_shapes(value), line
        if name in SECRET_SETTINGS:
            assert value == "", line
    assert_setting_names("specfleet.env", names)
    assert "SPECFLEET_DATABASE_URL" in names and "SPECFLEET_REDIS_URL" in names


# --- schema and lint checks ----------------------------------------------------------------

KUBERNETES_VERSION = "1.30.0"  # the oldest release the manifests promise to work on


def test_manifests_follow_the_kubernetes_schemas(manifests: list[dict[str, Any]]) -> None:
    """Every manifest validates, strictly (no unknown fields), against Kubernetes' schemas."""
    import kubernetes_validate

    for manifest in manifests:
        if manifest["kind"] == "Kustomization":
            continue  # kustomize's own file, not a Kubernetes resource
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            name = f"{manifest['kind']}/{manifest['metadata']['name']}"
            pytest.fail(f"{name}: {error.path}: {error.message}")


def test_dockerfile_passes_hadolint() -> None:
    """hadolint finds nothing to warn about in the Dockerfile."""
    import shutil
    import subprocess
    import sys

    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
