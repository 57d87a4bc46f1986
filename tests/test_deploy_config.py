"""The Kubernetes path without a cluster (issue 12.3): the Helm values' run launcher and executor settings
against dagster-k8s's own config schema, the secrets kept out of the file, and the Dockerfile's basics.

No cluster, helm or docker binary exists here; what this proves is that the settings are well formed for
the installed dagster-k8s, not that the chart renders or a pod starts (docs/SCALING.md says so too).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import validate_config

from autopilot_pipeline.defs import executors

dagster_k8s = pytest.importorskip("dagster_k8s")

ROOT = Path(__file__).resolve().parent.parent
VALUES = ROOT / "deploy" / "helm" / "values.yaml"
DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def _deployment(values: dict[str, Any]) -> dict[str, Any]:
    (deployment,) = [d for d in values["dagster-user-deployments"]["deployments"] if d["name"] == "autopilot"]
    return deployment


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in deployment["env"]}


def rendered_run_launcher(values: dict[str, Any], namespace: str = "autopilot") -> dict[str, Any]:
    """The ``run_launcher.config`` the chart writes into the instance's dagster.yaml for K8sRunLauncher:
    the chart's camelCase keys mapped as its instance template maps them, plus the fields it always sets."""
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    config: dict[str, Any] = {
        "load_incluster_config": launcher["loadInclusterConfig"],
        "job_namespace": launcher.get("jobNamespace") or namespace,
        "image_pull_policy": launcher["imagePullPolicy"],
        "service_account_name": "autopilot-dagster",
        "dagster_home": {"env": "DAGSTER_HOME"},
        "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
        "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
        "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}]
        + [item["name"] for item in launcher.get("envConfigMaps", [])],
    }
    if launcher.get("envSecrets"):
        config["env_secrets"] = [item["name"] for item in launcher["envSecrets"]]
    for camel, snake in (("envVars", "env_vars"), ("volumeMounts", "volume_mounts"), ("volumes", "volumes")):
        if launcher.get(camel):
            config[snake] = launcher[camel]
    return config


def _errors(result: Any) -> list[str]:
    return [error.message for error in result.errors or []]


def test_the_run_launcher_settings_fit_k8s_run_launchers_schema(values: dict[str, Any]) -> None:
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    result = validate_config(dagster_k8s.K8sRunLauncher.config_type(), rendered_run_launcher(values))
    assert result.success, _errors(result)


def test_a_misspelt_run_launcher_setting_is_refused(values: dict[str, Any]) -> None:
    config = rendered_run_launcher(values)
    config["volume_mount"] = config.pop("volume_mounts")
    assert not validate_config(dagster_k8s.K8sRunLauncher.config_type(), config).success


def test_the_executor_settings_fit_k8s_job_executors_schema(
    values: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(_deployment(values))
    assert env[executors.EXECUTOR_ENV] == "k8s"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = executors.k8s_executor_config()
    assert config["max_concurrent"] >= 1
    result = validate_config(dagster_k8s.k8s_job_executor.config_schema.config_type, config)
    assert result.success, _errors(result)
    executor = executors.from_environment()  # what the code location loads in the cluster
    assert executor.name == "k8s"
    bad = dict(config, max_concurent=8)
    assert not validate_config(dagster_k8s.k8s_job_executor.config_schema.config_type, bad).success


def test_the_code_location_and_its_runs_share_state_and_secrets(values: dict[str, Any]) -> None:
    deployment = _deployment(values)
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "autopilot_pipeline.definitions", "-a", "defs"]
    state = _env(deployment)["AUTOPILOT_STATE_DIR"]
    for spec in (deployment, launcher):
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"]}
        mounts = {m["name"]: m["mountPath"] for m in spec["volumeMounts"]}
        assert mounts == {"autopilot-state": state} and claims == {"autopilot-state": "autopilot-state"}
        assert [s["name"] for s in spec["envSecrets"]] == ["autopilot-secrets"]
    assert deployment["securityContext"]["runAsNonRoot"] is True


def test_runs_and_events_go_to_an_external_postgres_and_no_secret_is_in_the_file(
    values: dict[str, Any],
) -> None:
    assert values["postgresql"]["enabled"] is False
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    text = VALUES.read_text()
    assert "postgresqlPassword" not in text
    assert not re.search(r"(postgres(ql)?|redis)://[^\s/@]*:[^\s/@]*@", text), "credentials in a URL"
    secret_names = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|WEBHOOK|DATABASE_URL)")
    for item in _deployment(values)["env"]:
        assert not secret_names.search(item["name"]), f"{item['name']} belongs in a Kubernetes secret"
    for entry in values["runLauncher"]["config"]["k8sRunLauncher"].get("envVars", []):
        assert not secret_names.search(entry.split("=")[0]), f"{entry} belongs in a Kubernetes secret"


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]  # type: ignore[misc]


def test_the_dockerfile_is_multi_stage_installs_the_lock_and_runs_unprivileged() -> None:
    steps = _instructions(DOCKERFILE.read_text())
    stages = [arg for op, arg in steps if op == "FROM"]
    assert len(stages) >= 2, "multi-stage"
    runtime = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    assert any(op == "COPY" and arg.startswith("--from=") for op, arg in steps[runtime:]), (
        "runtime copies the build"
    )
    runs = [arg for op, arg in steps[:runtime] if op == "RUN"]
    lock = next(i for i, arg in enumerate(runs) if re.search(r"pip install .*-r requirements\.lock", arg))
    package = next(i for i, arg in enumerate(runs) if re.search(r"pip install .*--no-deps", arg))
    assert lock < package, "the lock file is installed first, then the package without new dependencies"
    users = [arg for op, arg in steps[runtime:] if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the runtime stage runs as a non-root user"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".autopilot", "tests"} <= set(ignored)
