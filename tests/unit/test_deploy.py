"""deploy/: the RBAC Role grants exactly what the runbook steps call."""

from __future__ import annotations

from pathlib import Path

import yaml

from alertbot.settings import Config, parse_config

ROOT = Path(__file__).resolve().parents[2]


def test_role_grants_exactly_the_verbs_the_runbooks_and_the_watch_use() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text()))
    (role,) = [d for d in docs if d["kind"] == "Role"]
    grants = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
              for v in rule["verbs"]}
    assert grants == {
        *{("networking.istio.io", "virtualservices", v) for v in ("get", "list", "watch", "patch")},
        ("apps", "deployments/scale", "get"), ("apps", "deployments/scale", "patch"),
        *{("apps", "deployments", v) for v in ("get", "list", "watch", "patch")},
        ("apps", "replicasets", "list"), ("argoproj.io", "rollouts/status", "patch"),
    }
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    (account,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    assert binding["subjects"][0]["name"] == account["metadata"]["name"]


def test_manifests_hang_together() -> None:
    """The Deployment's probes, ports, config, secrets and volumes agree with alertbot and each other."""
    docs = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy" / "alertbot.yaml").read_text()) if d}
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
