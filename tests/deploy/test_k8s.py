"""The Kubernetes manifests: probes, resources, secret references, KEDA autoscaling."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.settings import KafkaSettings
from tests.deploy.support import K8S, ROOT, load_yaml, load_yaml_all

SERVICES = {"executor": 9101, "ingress": 8080, "metrics": 9100}
SECRET_KEYS = {
    "EXOTEL_ACCOUNT_SID",
    "EXOTEL_API_KEY",
    "EXOTEL_API_TOKEN",
    "CALLBACK_TOKEN",
    "CALLBACK_SIGNING_SECRET",
}
#: Empty unless the cluster is secured; every service gets them (optional references).
KAFKA_SECRET_KEYS = {"KAFKA_SASL_PASSWORD", "KAFKA_SSL_KEY_PASSWORD"}
KAFKA_TLS_MOUNT = "/etc/voicebus/kafka-tls"


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    docs: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
        docs.extend(load_yaml_all(K8S / resource))
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    return docs


def find(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}"
    return matches[0]


@pytest.fixture(scope="module")
def config(documents) -> dict[str, str]:
    data: dict[str, str] = find(documents, "ConfigMap", "voicebus-config")["data"]
    return data


def test_everything_in_one_namespace(documents):
    for document in documents:
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == "voicebus"


@pytest.mark.parametrize(("name", "port"), sorted(SERVICES.items()))
def test_deployment_probes_resources_and_command(documents, name, port):
    deployment = find(documents, "Deployment", f"voicebus-{name}")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", f"services.{name}"]
    assert (ROOT / "services" / name / "__main__.py").is_file()
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    env = {e["name"]: e for e in container.get("env", ())}
    assert env["HTTP_PORT"]["value"] == str(port)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"configMapRef": {"name": "voicebus-config"}} in container["envFrom"]
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    service = find(documents, "Service", f"voicebus-{name}")
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == port


def secret_refs(documents, name: str) -> dict[str, tuple[str, str]]:
    deployment = find(documents, "Deployment", f"voicebus-{name}")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    refs = {}
    for entry in container.get("env", ()):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            refs[entry["name"]] = (ref["name"], ref["key"])
    return refs


def test_secrets_come_from_the_secret(documents, config):
    secret = find(documents, "Secret", "voicebus-secrets")
    assert set(secret["stringData"]) == SECRET_KEYS | KAFKA_SECRET_KEYS
    wanted = {
        "executor": SECRET_KEYS | KAFKA_SECRET_KEYS,
        "ingress": {"CALLBACK_TOKEN", "CALLBACK_SIGNING_SECRET"} | KAFKA_SECRET_KEYS,
        "metrics": KAFKA_SECRET_KEYS,
    }
    for name, keys in wanted.items():
        assert secret_refs(documents, name) == {k: ("voicebus-secrets", k) for k in keys}, name
    assert not (SECRET_KEYS | KAFKA_SECRET_KEYS) & set(config), "a secret in the ConfigMap"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_can_reach_a_secured_kafka(documents, name):
    pod = find(documents, "Deployment", f"voicebus-{name}")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    optional = {
        e["name"]
        for e in container["env"]
        if e.get("valueFrom", {}).get("secretKeyRef", {}).get("optional") is True
    }
    assert optional == KAFKA_SECRET_KEYS  # a plaintext cluster needs neither
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts[KAFKA_TLS_MOUNT]["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mounts[KAFKA_TLS_MOUNT]["name"]]
    assert volume["secret"] == {"secretName": "voicebus-kafka-tls", "optional": True}


def test_the_shipped_kafka_settings_are_valid_and_plaintext(documents, config):
    secret = find(documents, "Secret", "voicebus-secrets")["stringData"]
    values = {
        name.removeprefix("KAFKA_").lower(): value
        for name, value in {**config, **secret}.items()
        if name.startswith("KAFKA_")
    }
    settings = KafkaSettings.model_validate(values)  # empty values count as unset
    assert settings.security_protocol == "PLAINTEXT"
    assert {"KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SSL_CA_FILE"} <= set(config)


def test_ingress_spool_is_a_writable_volume(documents):
    deployment = find(documents, "Deployment", "voicebus-ingress")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[env["INGRESS_SPOOL_DIR"]] in {v["name"] for v in pod["volumes"]}


def test_executor_scales_on_its_consumer_lag(documents, config):
    scaled = find(documents, "ScaledObject", "voicebus-executor")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "voicebus-executor"
    executor = find(documents, "Deployment", "voicebus-executor")
    assert "replicas" not in executor["spec"], "KEDA owns the executor's replica count"
    triggers = scaled["spec"]["triggers"]
    assert all(t["type"] == "kafka" for t in triggers)
    assert {t["metadata"]["topic"] for t in triggers} == {
        "call.connect",
        "lwb.action",
        "leg.hangup",
    }
    for trigger in triggers:
        meta = trigger["metadata"]
        assert meta["consumerGroup"] == "voicebus-executor" == config["EXECUTOR_GROUP_ID"]
        assert meta["bootstrapServers"] == config["KAFKA_BOOTSTRAP_SERVERS"]
        assert int(meta["lagThreshold"]) > 0
        assert meta["offsetResetPolicy"] == "earliest"  # voicebus groups start at earliest
        assert all(isinstance(v, str) for v in meta.values())
    partitions = int(config["KAFKA_TOPIC_PARTITIONS"])
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    assert scaled["spec"]["maxReplicaCount"] <= partitions
