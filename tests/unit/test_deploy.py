"""deploy/: every manifest is valid against the Kubernetes OpenAPI schemas (kubernetes-validate,
strict: unknown fields are errors), the pieces agree with each other and with alertbot, and the RBAC
Role grants exactly what the runbook steps and the change watch call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from alertbot.settings import Config, parse_config

KUBERNETES_VERSION = "1.30.0"
MANIFESTS = ["rbac.yaml", "alertbot.yaml", "alertbot-single.yaml"]

ROOT = Path(__file__).resolve().parents[2]


def test_role_grants_exactly_the_verbs_the_runbooks_and_the_watch_use() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text()))
    role, argocd = (
        next(d for d in docs if d["metadata"]["name"] == n) for n in ("alertbot-runbooks", "alertbot-argocd-read")
    )
    grants = {
        (g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
    }
    assert grants == {
        *{("networking.istio.io", "virtualservices", v) for v in ("get", "list", "watch", "patch")},
        ("apps", "deployments/scale", "get"),
        ("apps", "deployments/scale", "patch"),
        *{("apps", "deployments", v) for v in ("get", "list", "watch", "patch")},
        ("apps", "replicasets", "list"),
        ("argoproj.io", "rollouts/status", "patch"),
    }
    # Argo CD's Applications: read, never changed (alertbot/runbooks/argocd.py).
    assert argocd["metadata"]["namespace"] == "argocd"
    assert argocd["rules"] == [{"apiGroups": ["argoproj.io"], "resources": ["applications"], "verbs": ["get"]}]
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert sorted(b["roleRef"]["name"] for b in bindings) == ["alertbot-argocd-read", "alertbot-runbooks"]
    (account,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    assert all(b["subjects"][0]["name"] == account["metadata"]["name"] for b in bindings)


def documents(name: str) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy" / name).read_text()) if d}


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifests_are_valid_kubernetes_objects(name: str) -> None:
    for kind, doc in documents(name).items():
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: checked against the Service below instead
        assert kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True), kind


def test_the_ha_deployment_hangs_together() -> None:
    """Two replicas on PostgreSQL (URL from the Secret), never fewer than one available, rolling
    updates that keep both serving, scraped by a ServiceMonitor that finds the Service's port."""
    docs = documents("alertbot.yaml")
    deployment, service, budget, monitor = (
        docs["Deployment"],
        docs["Service"],
        docs["PodDisruptionBudget"],
        docs["ServiceMonitor"],
    )
    spec = deployment["spec"]
    assert spec["replicas"] == 2 and spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    labels = spec["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"] == labels and budget["spec"]["minAvailable"] == 1
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    config = load_config_text(docs["ConfigMap"]["data"]["alertbot.yaml"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert str(config.storage.url_file).startswith(mounts["secrets"] + "/")
    assert "data" not in mounts  # no local state: any replica can go
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize("name", ["alertbot.yaml", "alertbot-single.yaml"])
def test_the_config_is_mounted_as_a_directory(name: str) -> None:
    """No subPath: a subPath mount never sees an edited ConfigMap, so a reload would re-read the old file."""
    pod = documents(name)["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert all("subPath" not in m for m in container["volumeMounts"])
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "config"]
    assert container["args"][container["args"].index("--config") + 1] == f"{mount['mountPath']}/alertbot.yaml"
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_the_alertmanager_receiver_points_at_the_service() -> None:
    receiver = yaml.safe_load((ROOT / "deploy" / "alertmanager-receiver.yaml").read_text())
    service = documents("alertbot.yaml")["Service"]
    (hook,) = receiver["receivers"][0]["webhook_configs"]
    port = service["spec"]["ports"][0]["port"]
    assert (
        hook["url"] == f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc:{port}"
        "/webhook/alertmanager"
    )
    assert hook["send_resolved"] is True


def test_the_single_replica_deployment_hangs_together() -> None:
    """The Deployment's probes, ports, config, secrets and volumes agree with alertbot and each other."""
    docs = documents("alertbot-single.yaml")
    deployment, service, config_map = docs["Deployment"], docs["Service"], docs["ConfigMap"]
    spec = deployment["spec"]
    assert (spec["replicas"], spec["strategy"]["type"]) == (1, "Recreate")  # one process per SQLite file
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert spec["selector"]["matchLabels"] == spec["template"]["metadata"]["labels"] == service["spec"]["selector"]
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
    config = load_config_text(config_map["data"]["alertbot.yaml"])
    assert config.server.port == container["ports"][0]["containerPort"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert config.storage.url.startswith(f"sqlite:///{mounts['data']}/")
    assert str(config.slack.bot_token_file).startswith(mounts["secrets"])
    assert pod["serviceAccountName"] == "alertbot"


def load_config_text(text: str) -> Config:
    return parse_config(yaml.safe_load(text), source="deploy/alertbot.yaml")
