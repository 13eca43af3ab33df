"""deploy/helm/alertbot rendered by a real ``helm`` (v3, fetched by tools/fetch_helm.py: `make test`
does it) and checked as deploy/ is: every object valid against the Kubernetes 1.30 schemas (strict),
the config alertbot will read valid, and the pieces agreeing with each other and with alertbot."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from alertbot.settings import load_config
from tests.e2e.procs import real_binary

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "alertbot"
KUBERNETES_VERSION = "1.30.0"
CRD_GROUPS = ("monitoring.coreos.com/",)  # Prometheus Operator's: checked below by their meaning

FULL = [  # every optional part on, two replicas on PostgreSQL
    "--set", "replicas=2",
    "--set", "secrets.keys.databaseUrl=database-url",
    "--set", "secrets.keys.slackBotToken=slack-bot-token",
    "--set", "secrets.keys.slackSigningSecret=slack-signing-secret",
    "--set", "secrets.keys.slackAppToken=slack-app-token",
    "--set", "ingress.enabled=true",
    "--set", "networkPolicy.enabled=true",
    "--set", "serviceMonitor.enabled=true",
    "--set", "prometheusRule.enabled=true",
    "--set", "alertmanagerConfig.enabled=true",
    "--set", "rbac.namespaces={ai-nutritionist,payments}",
    "--set", "rbac.argocdNamespace=argocd",
]  # fmt: skip


def helm() -> str:
    return real_binary("helm", package="make .tools/helm", path=str(ROOT / ".tools"))


def render(*args: str, namespace: str = "monitoring") -> list[dict[str, Any]]:
    done = subprocess.run(
        [helm(), "template", "alertbot", str(CHART), "--namespace", namespace, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def render_error(*args: str) -> str:
    done = subprocess.run(
        [helm(), "template", "alertbot", str(CHART), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0, "rendered, expected a refusal"
    return done.stderr


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


def config_of(docs: list[dict[str, Any]], tmp_path: Path) -> Any:
    """The config alertbot will read, loaded by alertbot itself from where the pod mounts it."""
    path = tmp_path / "alertbot.yaml"
    path.write_text(one(docs, "ConfigMap")["data"]["alertbot.yaml"])
    return load_config(path)


def test_the_chart_passes_helm_lint() -> None:
    for args in ([], FULL):
        done = subprocess.run(
            [helm(), "lint", "--strict", str(CHART), *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("args", [[], FULL], ids=["defaults", "everything-on"])
def test_every_rendered_object_is_valid_kubernetes(args: list[str]) -> None:
    for doc in render(*args):
        if doc["apiVersion"].startswith(CRD_GROUPS):
            continue
        assert kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True), doc["kind"]


def test_the_defaults_are_one_replica_on_sqlite_with_a_volume(tmp_path: Path) -> None:
    docs = render()
    deployment = one(docs, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    config = config_of(docs, tmp_path)
    assert config.storage.url == f"sqlite:///{mounts['data']}/alertbot.db"
    claim = one(docs, "PersistentVolumeClaim")["metadata"]["name"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": claim}} in pod["volumes"]
    assert config.server.host == "0.0.0.0" and config.server.port == container["ports"][0]["containerPort"]


def test_the_config_is_mounted_as_a_directory_and_its_hash_rolls_the_pods() -> None:
    """No subPath: an edited ConfigMap reaches the pod (then SIGHUP or /-/reload applies it); a
    changed config changes the pod template's checksum, so `helm upgrade` rolls the pods."""
    docs = render()
    template = one(docs, "Deployment")["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert all("subPath" not in m for m in container["volumeMounts"])
    (config_mount,) = [m for m in container["volumeMounts"] if m["name"] == "config"]
    assert container["args"] == ["serve", "--config", f"{config_mount['mountPath']}/alertbot.yaml"]
    text = one(docs, "ConfigMap")["data"]["alertbot.yaml"]
    assert (
        template["metadata"]["annotations"]["checksum/config"]
        == hashlib.sha256(text.removesuffix("\n").encode()).hexdigest()
    )
    changed = render("--set", "config.mode=shadow")
    assert (
        one(changed, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        != template["metadata"]["annotations"]["checksum/config"]
    )


def test_the_pod_meets_the_restricted_pod_security_standard() -> None:
    pod = one(render(*FULL), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"] is True
        assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert all("hostPath" not in v for v in pod["volumes"])


def test_only_the_secrets_in_use_are_configured_and_mounted(tmp_path: Path) -> None:
    """A secret set to null is not configured and need not be in the Secret: no PagerDuty, no Slack
    by default; with every key off there is no Secret volume at all."""
    docs = render()
    config = config_of(docs, tmp_path)
    assert config.webhook.token_file == Path("/etc/alertbot/secrets/webhook-token")
    assert config.pagerduty.routing_key_file is None and config.slack.bot_token_file is None
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (secret_volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert [i["key"] for i in secret_volume["secret"]["items"]] == ["api-token", "webhook-token"]

    bare = render("--set", "secrets.keys.webhookToken=null", "--set", "secrets.keys.apiToken=null")
    bare_pod = one(bare, "Deployment")["spec"]["template"]["spec"]
    assert all("secret" not in v for v in bare_pod["volumes"])


def test_two_replicas_need_postgresql_and_get_a_disruption_budget(tmp_path: Path) -> None:
    assert "replicas > 1 needs PostgreSQL" in render_error("--set", "replicas=2")
    docs = render(*FULL)
    deployment, budget = one(docs, "Deployment"), one(docs, "PodDisruptionBudget")
    spec = deployment["spec"]
    assert spec["replicas"] == 2 and spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert budget["spec"]["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    config = config_of(docs, tmp_path)
    assert config.storage.url_file == Path("/etc/alertbot/secrets/database-url")
    assert config.slack.app_token_file == Path("/etc/alertbot/secrets/slack-app-token")
    assert [d for d in docs if d["kind"] == "PersistentVolumeClaim"] == []


def test_the_ingress_exposes_slack_and_nothing_else() -> None:
    ingress = one(render(*FULL), "Ingress")
    (rule,) = ingress["spec"]["rules"]
    assert sorted((p["path"], p["pathType"]) for p in rule["http"]["paths"]) == [
        ("/slack/commands", "Exact"),
        ("/slack/interactions", "Exact"),
    ]


def test_a_pagerduty_webhook_secret_configures_and_exposes_its_endpoint(tmp_path: Path) -> None:
    docs = render(*FULL, "--set", "secrets.keys.pagerdutyWebhookSecret=pagerduty-webhook-secret")
    config = config_of(docs, tmp_path)
    assert config.pagerduty.webhook_secret_file == Path("/etc/alertbot/secrets/pagerduty-webhook-secret")
    (rule,) = one(docs, "Ingress")["spec"]["rules"]
    assert "/webhook/pagerduty" in [p["path"] for p in rule["http"]["paths"]]


def test_namespaces_come_from_the_release_and_the_values() -> None:
    docs = render(*FULL, namespace="observability")
    own = [d for d in docs if d["kind"] not in ("Role", "RoleBinding")]
    assert {d["metadata"]["namespace"] for d in own} == {"observability"}
    roles = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "Role"}
    assert set(roles) == {"ai-nutritionist", "payments", "argocd"}
    argocd = roles.pop("argocd")
    assert argocd["rules"] == [{"apiGroups": ["argoproj.io"], "resources": ["applications"], "verbs": ["get"]}]
    for binding in (d for d in docs if d["kind"] == "RoleBinding"):
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": one(docs, "ServiceAccount")["metadata"]["name"],
                "namespace": "observability",
            }
        ]
    deploy_role = next(
        d for d in yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text()) if d["kind"] == "Role"
    )
    assert all(role["rules"] == deploy_role["rules"] for role in roles.values())


def test_the_prometheus_operator_objects_agree_with_the_service_and_the_rules() -> None:
    docs = render(*FULL)
    service = one(docs, "Service")
    monitor = one(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alertbot-rules.yaml").read_text())
    assert one(docs, "PrometheusRule")["spec"] == rules
    receiver = one(docs, "AlertmanagerConfig")["spec"]["receivers"][0]["webhookConfigs"][0]
    name, port = service["metadata"]["name"], service["spec"]["ports"][0]["port"]
    assert receiver["url"] == f"http://{name}.monitoring.svc:{port}/webhook/alertmanager"
    assert receiver["sendResolved"] is True
    assert receiver["httpConfig"]["authorization"]["credentials"] == {
        "name": "alertbot-secrets",
        "key": "webhook-token",
    }


def test_the_network_policy_admits_the_namespace_and_the_ingress_controller() -> None:
    policy = one(render(*FULL), "NetworkPolicy")
    (rule,) = policy["spec"]["ingress"]
    assert {"podSelector": {}} in rule["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}} in rule["from"]
