"""The Kubernetes watch against the fake API server: rollouts and weight changes become change events;
a dropped stream resumes from its resourceVersion; 410 Gone relists; changes while down are noticed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_aiohttp import AiohttpServer

from alertbot.runbooks.k8s import Kubernetes, api_client
from tests.conftest import Harness, MakeHarness
from tests.fakes.kubernetes import FakeKubernetes, kubeconfig, seed_canary
from tests.helpers import wait_until

NS = "ai-nutritionist"
WATCH = {"kubernetes": {"watch": {"namespaces": [NS], "initial_backoff": "20ms", "max_backoff": "100ms"}}}


async def serve(aiohttp_server: AiohttpServer, tmp_path: Path, k8s: FakeKubernetes) -> Path:
    server = await aiohttp_server(k8s.app)
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig(str(server.make_url(""))))
    return path


async def start(make_harness: MakeHarness, kubeconfig_path: Path, k8s: FakeKubernetes) -> Harness:
    h = await make_harness(WATCH, kube=lambda: Kubernetes(api_client(kubeconfig_path)))
    await wait_until(lambda: sum(r.startswith("watch ") for r in k8s.requests) == 2, what="both watches open")
    return h


def cluster() -> FakeKubernetes:
    k8s = FakeKubernetes()
    k8s.add_virtualservice(seed_canary())
    k8s.add_deployment(NS, "nutrition-service", "registry.example.com/nutrition-service:1.4.2")
    return k8s


async def events(h: Harness) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await (await h.client.get("/api/v1/events")).json()
    return found


async def test_weight_changes_and_rollouts_are_recorded(
    make_harness: MakeHarness, aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    k8s = cluster()
    h = await start(make_harness, await serve(aiohttp_server, tmp_path, k8s), k8s)
    assert await events(h) == []  # what was there at the first list is the baseline, not a change

    k8s.set_weights(NS, "nutrition-service-canary", {"stable": 50, "canary": 50})
    k8s.set_image(NS, "nutrition-service", "registry.example.com/nutrition-service:1.4.3", manager="argocd")
    await wait_until(lambda: _count(h, 2), what="two changes")
    rollout, shift = sorted(await events(h), key=lambda e: e["kind"])
    assert (shift["kind"], shift["service"], shift["namespace"], shift["actor"], shift["source"], shift["target"]) == (
        "traffic_shift",
        "nutrition-service",
        NS,
        "deploy-bot",
        "kubernetes",
        "virtualservice/nutrition-service-canary",
    )
    assert shift["description"] == "nutrition-service-canary weights canary 10 % → 50 %, stable 90 % → 50 %"
    assert (rollout["kind"], rollout["version"], rollout["actor"], rollout["target"]) == (
        "deployment",
        "1.4.3",
        "argocd",
        "deployment/nutrition-service",
    )
    assert rollout["description"] == (
        "nutrition-service image registry.example.com/nutrition-service:1.4.2 → "
        "registry.example.com/nutrition-service:1.4.3"
    )


async def test_a_dropped_stream_resumes_from_its_resource_version(
    make_harness: MakeHarness, aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    k8s = cluster()
    h = await start(make_harness, await serve(aiohttp_server, tmp_path, k8s), k8s)
    k8s.cut_watches()
    k8s.set_weights(NS, "nutrition-service-canary", {"stable": 0, "canary": 100})  # while reconnecting
    await wait_until(lambda: _count(h, 1), what="the change made while the stream was down")
    lists = [r for r in k8s.requests if r.startswith("list ")]
    assert len(lists) == 2  # one per resource: the reconnect resumed, it did not list again
    resumed = [r for r in k8s.requests if r.startswith("watch /apis/networking")]
    assert len(resumed) >= 2 and resumed[-1].endswith(f"from {resumed[0].rsplit(' ', 1)[1]}")


async def test_410_gone_relists_and_still_sees_the_change(
    make_harness: MakeHarness, aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    k8s = cluster()
    h = await start(make_harness, await serve(aiohttp_server, tmp_path, k8s), k8s)
    k8s.set_image(NS, "nutrition-service", "registry.example.com/nutrition-service:1.5.0")
    k8s.compact()  # the history holding that change is gone...
    k8s.cut_watches()  # ...and the stream drops before it was read: resuming gets 410
    await wait_until(lambda: _count(h, 1), what="the rollout, found by the relist")
    assert sum(r.startswith("list /apis/apps") for r in k8s.requests) == 2
    assert (await events(h))[0]["version"] == "1.5.0"


async def test_a_change_made_while_alertbot_was_down_is_noticed_at_start(
    make_harness: MakeHarness, aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    """The last state seen is kept in the store, so the first list after a restart compares with it."""
    k8s = cluster()
    path = await serve(aiohttp_server, tmp_path, k8s)
    first = await start(make_harness, path, k8s)
    await first.client.close()
    k8s.set_weights(NS, "nutrition-service-canary", {"stable": 100, "canary": 0})
    k8s.requests.clear()
    second = await start(make_harness, path, k8s)
    await wait_until(lambda: _count(second, 1), what="the change made while down")
    assert (await events(second))[0]["description"].endswith("canary 10 % → 0 %, stable 90 % → 100 %")


async def _count(h: Harness, n: int) -> bool:
    return len(await events(h)) == n
