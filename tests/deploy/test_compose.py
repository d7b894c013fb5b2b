"""docker-compose.yml against the Compose Specification's JSON Schema, and the Dockerfile
checked structurally (no Docker engine runs here)."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import pytest

from contracts.topics import ALL_TOPICS
from tests.deploy.support import DATA, DEPLOY, ROOT, load_yaml

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
VOICEBUS_SERVICES = {"executor": 9101, "ingress": 8080, "metrics": 9100}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = load_yaml(COMPOSE)
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema validates the compose file")
    schema = json.loads((DATA / "compose-spec.json").read_text(encoding="utf-8"))
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_compose_file_matches_the_compose_specification(compose, validator):
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(compose)
    ]
    assert not errors, "\n".join(errors)


def test_the_schema_check_is_strict(compose, validator):
    broken = json.loads(json.dumps(compose))
    broken["services"]["executor"]["helthcheck"] = {"test": ["CMD", "true"]}
    broken["services"]["ingress"]["depends_on"] = {"kafka-init": {"condition": "finished"}}
    assert len(list(validator.iter_errors(broken))) >= 2


def test_kafka_runs_in_kraft_mode(compose):
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert "zookeeper" not in json.dumps(kafka).lower()
    assert kafka["healthcheck"]["test"]


def test_topic_init_creates_every_voicebus_topic(compose):
    init = compose["services"]["kafka-init"]
    script = "\n".join(init["command"])
    listed = re.search(r"for topic in ([^;]+);", script)
    assert listed is not None
    assert set(listed.group(1).split()) == set(ALL_TOPICS)
    assert "--if-not-exists" in script
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert init["restart"] == "no"


@pytest.mark.parametrize(("name", "port"), sorted(VOICEBUS_SERVICES.items()))
def test_services_from_one_dockerfile_with_healthchecks(compose, name, port):
    service = compose["services"][name]
    assert service["build"]["dockerfile"] == "Dockerfile"
    assert service["command"] == ["python", "-m", f"services.{name}"]
    assert (ROOT / "services" / name / "__main__.py").is_file()
    assert service["environment"]["HTTP_PORT"] == str(port)
    assert service["environment"]["HTTP_HOST"] == "0.0.0.0"
    assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    probe = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/healthz" in probe
    assert f"{port}:{port}" in service["ports"]
    assert service["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"


def test_one_image_for_every_service(compose):
    images = {compose["services"][n]["image"] for n in (*VOICEBUS_SERVICES, "sandbox")}
    assert len(images) == 1


def test_the_sandbox_is_behind_a_profile(compose):
    sandbox = compose["services"]["sandbox"]
    assert sandbox["profiles"] == ["sandbox"]
    assert sandbox["command"] == ["python", "-m", "services.sandbox"]
    assert "/_sandbox/health" in " ".join(sandbox["healthcheck"]["test"])
    for name, service in compose["services"].items():
        if name != "sandbox":
            assert "profiles" not in service, f"{name} would not start by default"
            assert "sandbox" not in service.get("depends_on", {})


def test_secrets_are_required_not_defaulted(compose):
    for name in ("executor", "ingress"):
        env = compose["services"][name]["environment"]
        for key in ("CALLBACK_TOKEN", "CALLBACK_SIGNING_SECRET"):
            assert env[key].startswith(f"${{{key}:?"), f"{name}.{key} must be required"


def test_prometheus_and_grafana_are_provisioned(compose):
    prometheus = compose["services"]["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    grafana = compose["services"]["grafana"]
    mounts = dict(
        v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"] if v.startswith("./")
    )
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["./deploy/grafana/dashboards"] == "/var/lib/grafana/dashboards"
    for source in (*mounts, "./deploy/prometheus"):
        assert (ROOT / source).is_dir()
    provider = load_yaml(DEPLOY / "grafana/provisioning/dashboards/voicebus.yml")
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_named_volumes_are_declared(compose):
    declared = set(compose["volumes"])
    for service in compose["services"].values():
        for volume in service.get("volumes", ()):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared


# ------------------------------------------------------------------ Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    instructions = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_base_install_and_user():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "pip install ." in runs
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert users[-1].split(":")[0] in runs  # the user is created in the image
    keywords = [keyword for keyword, _ in instructions]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")


def test_dockerfile_copies_what_exists_and_pip_needs():
    copied: list[str] = []
    for keyword, rest in dockerfile_instructions():
        if keyword in {"COPY", "ADD"}:
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            copied.extend(parts[:-1])
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), f"COPY source {source} does not exist"
    # pip install . needs the build config, the readme it names and the packages it finds
    assert {"pyproject.toml", "README.md", "contracts", "services"} <= set(copied)
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert not ignored & set(copied), "a COPY source is excluded by .dockerignore"
    assert {".git", ".venv", "tests"} <= ignored


def test_dockerfile_command_runs_a_service_module():
    cmds = [rest for keyword, rest in dockerfile_instructions() if keyword == "CMD"]
    assert len(cmds) == 1
    command = json.loads(cmds[0])
    assert command[:2] == ["python", "-m"]
    module = command[2]
    assert (ROOT / module.replace(".", "/") / "__main__.py").is_file()
    env = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword == "ENV")
    assert "HTTP_HOST=0.0.0.0" in env  # reachable from other containers
