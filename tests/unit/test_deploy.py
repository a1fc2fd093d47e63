"""The Dockerfile and compose file, checked statically: no Docker engine runs here.

The compose file goes through the real Docker Compose v2 (`docker compose config`,
no engine needed) and the compose-spec JSON schema; the Dockerfile through
BuildKit's own parser. Then the checks that matter for imgpipe: every variable
is a real setting, every required one is passed, ports, healthchecks and
start-up order are right, and the worker can be scaled.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dockerfile
import pytest

from imgpipe.cli import _parser
from imgpipe.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
IMGPIPE_SERVICES = ("migrate", "api", "worker")
REQUIRED = {
    "IMGPIPE_DATABASE_URL",
    "IMGPIPE_BROKER_URL",
    "IMGPIPE_STORAGE_URL",
    "IMGPIPE_S3_ENDPOINT_URL",
    "IMGPIPE_S3_PUBLIC_ENDPOINT_URL",
    "IMGPIPE_S3_ACCESS_KEY",
    "IMGPIPE_S3_SECRET_KEY",
    "IMGPIPE_BUCKET_ORIGINAL",
    "IMGPIPE_BUCKET_PROCESSED",
    "IMGPIPE_HOST",
}
SETTINGS = {f"IMGPIPE_{name.upper()}" for name in Settings.model_fields}


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} is missing: install the dev extra (pip install -e '.[dev]')"
    return found


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as Docker Compose itself resolves it (anchors merged, defaults filled)."""
    out = subprocess.run(
        [_tool("docker-compose"), "config", "--format", "json"],
        cwd=DEPLOY,
        capture_output=True,
        text=True,
        check=True,
    )
    config: dict[str, Any] = json.loads(out.stdout)
    return config


def test_the_compose_file_is_valid_for_docker_compose_and_the_compose_spec() -> None:
    subprocess.run([_tool("docker-compose"), "config", "--quiet"], cwd=DEPLOY, check=True)
    subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "docker-compose.yml")],
        check=True,
        capture_output=True,
    )


def test_the_stack_has_every_service_of_the_original_description(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "rabbitmq", "minio", "migrate", "api", "worker"}


@pytest.mark.parametrize("service", IMGPIPE_SERVICES)
def test_every_variable_passed_to_imgpipe_is_a_real_setting_and_every_required_one_is_there(
    compose: dict[str, Any], service: str
) -> None:
    env = compose["services"][service]["environment"]
    passed = {k for k in env if k.startswith("IMGPIPE_")}
    assert passed <= SETTINGS, f"unknown settings: {passed - SETTINGS}"
    assert passed >= REQUIRED, f"missing settings: {REQUIRED - passed}"


@pytest.mark.parametrize("service", IMGPIPE_SERVICES)
def test_the_environment_parses_into_settings_for_the_server_stack(
    compose: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in compose["services"][service]["environment"].items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert type(settings.storage).__name__ == "S3Settings"
    assert type(settings.broker).__name__ == "AmqpSettings"
    assert settings.database.url.startswith("postgresql+psycopg://")
    assert settings.host == "0.0.0.0"


@pytest.mark.parametrize("service", IMGPIPE_SERVICES)
def test_each_imgpipe_service_runs_a_real_subcommand_of_the_one_image(compose: dict[str, Any], service: str) -> None:
    spec = compose["services"][service]
    assert spec["build"]["dockerfile"] == "deploy/Dockerfile"
    assert spec["image"] == "imgpipe:local"
    assert spec["command"] == [service]
    _parser().parse_args(spec["command"])  # exits on an unknown subcommand


def _published(spec: dict[str, Any]) -> set[int]:
    return {int(p["published"]) for p in spec.get("ports", [])}


def test_the_ports_of_the_original_description_are_published(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert _published(services["api"]) == {8000}
    assert _published(services["minio"]) == {9000, 9001}
    assert 15672 in _published(services["rabbitmq"])
    minio_env = services["minio"]["environment"]
    assert minio_env == {"MINIO_ROOT_USER": "minioadmin", "MINIO_ROOT_PASSWORD": "minioadmin"}


def test_the_worker_can_be_scaled(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker
    assert not worker.get("ports")


@pytest.mark.parametrize("service", ["postgres", "rabbitmq", "minio", "api", "worker"])
def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any], service: str) -> None:
    check = compose["services"][service]["healthcheck"]
    assert not check.get("disable")
    assert check["test"][0] in ("CMD", "CMD-SHELL")


@pytest.mark.parametrize("service", ["api", "worker"])
def test_imgpipe_starts_only_after_its_backends_are_healthy_and_migrated(compose: dict[str, Any], service: str) -> None:
    depends = compose["services"][service]["depends_on"]
    assert {name: d["condition"] for name, d in depends.items()} == {
        "postgres": "service_healthy",
        "rabbitmq": "service_healthy",
        "minio": "service_healthy",
        "migrate": "service_completed_successfully",
    }


def test_migrate_is_one_shot_after_postgres(compose: dict[str, Any]) -> None:
    migrate = compose["services"]["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_state_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    for service in ("postgres", "rabbitmq", "minio"):
        volumes = compose["services"][service]["volumes"]
        assert volumes and all(v["type"] == "volume" and v["source"] in compose["volumes"] for v in volumes)


# --- Dockerfile ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def instructions() -> list[Any]:
    return list(dockerfile.parse_file(str(DEPLOY / "Dockerfile")))


def _final_stage(instructions: list[Any]) -> list[Any]:
    starts = [i for i, c in enumerate(instructions) if c.cmd == "FROM"]
    return instructions[starts[-1] :]


def test_the_image_is_built_in_stages(instructions: list[Any]) -> None:
    stages = [c for c in instructions if c.cmd == "FROM"]
    assert len(stages) >= 2
    copies = [c for c in _final_stage(instructions) if c.cmd == "COPY"]
    assert copies and all(any(f.startswith("--from=") for f in c.flags) for c in copies)


def test_the_image_runs_as_an_unprivileged_user(instructions: list[Any]) -> None:
    users = [c.value[0] for c in _final_stage(instructions) if c.cmd == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_the_image_has_a_healthcheck_and_exposes_the_api_port(instructions: list[Any]) -> None:
    final = _final_stage(instructions)
    check = [c for c in final if c.cmd == "HEALTHCHECK"]
    assert check and check[0].value[0] == "CMD" and "/health" in " ".join(check[0].value)
    assert [c.value for c in final if c.cmd == "EXPOSE"] == [("8000",)]


def test_the_image_starts_imgpipe_with_a_real_subcommand(instructions: list[Any]) -> None:
    final = _final_stage(instructions)
    entry = [c.value for c in final if c.cmd == "ENTRYPOINT"]
    cmd = [c.value for c in final if c.cmd == "CMD"]
    assert entry == [("imgpipe",)]
    _parser().parse_args(list(cmd[-1]))


def test_everything_the_image_copies_exists_and_is_not_docker_ignored(instructions: list[Any]) -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()}
    for c in instructions:
        if c.cmd == "COPY" and not any(f.startswith("--from=") for f in c.flags):
            for source in c.value[:-1]:
                assert (ROOT / source).exists(), source
                assert source not in ignored, source


# --- .env.example ----------------------------------------------------------------------


def _env_example() -> dict[str, str]:
    """KEY=VALUE lines; a value may be followed by a comment after whitespace."""
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, rest = line.partition("=")
        assert key not in pairs, f"{key} listed twice"
        value = rest.split("#", 1)[0].strip()
        pairs[key] = value
    return pairs


def test_env_example_lists_every_setting_once() -> None:
    assert set(_env_example()) == SETTINGS


def test_env_example_values_are_the_real_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("IMGPIPE_")]:
        monkeypatch.delenv(name)
    defaults = Settings()
    for key, value in _env_example().items():
        if value:  # an empty value stands for "unset: derived or no default"
            monkeypatch.setenv(key, value)
    from_example = Settings()
    for name in Settings.model_fields:
        assert getattr(from_example, name) == getattr(defaults, name), name
