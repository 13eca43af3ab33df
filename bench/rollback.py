"""Alert → rollback latency: from POSTing a critical canary alert to the VirtualService patch landing.

A fake Kubernetes API (tests/fakes/kubernetes.py, in this process) serves 100 canary VirtualServices;
`alertbot serve` runs an `auto` automation of emergency-rollback. For each VirtualService one alert is
POSTed and the time until the (non-dry-run) patch reaches the API server is measured. The baseline,
measured in the same run, is the floor of that path: the same read + guarded patch made directly
with the kubernetes client.

    .venv/bin/python bench/rollback.py [--runs 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alertbot.runbooks import istio  # noqa: E402
from alertbot.runbooks.k8s import Kubernetes, api_client  # noqa: E402
from bench.notify import free_port, wait_listening  # noqa: E402
from tests.e2e.threaded import ThreadedServer  # noqa: E402
from tests.fakes.kubernetes import FakeKubernetes, kubeconfig, seed_canary  # noqa: E402

PAYLOAD = json.loads((ROOT / "tests/data/payloads/am-higherrorrate-nutrition-service-firing.json").read_text())


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def canary(i: int) -> dict[str, object]:
    vs = seed_canary()
    vs["metadata"]["name"] = f"canary-{i}"  # type: ignore[index]
    return vs


def landed(fake: FakeKubernetes, name: str) -> bool:
    return any(p["path"].endswith(f"/{name}") and not p["dry_run"] for p in list(fake.patches))


async def baseline(config: Path, fake: FakeKubernetes, runs: int) -> list[float]:
    kube = Kubernetes(api_client(config))
    out = []
    for i in range(runs):
        fake.add_virtualservice(canary(1000 + i))
        start = time.perf_counter()
        vs = await kube.get_virtualservice("ai-nutritionist", f"canary-{1000 + i}")
        await kube.patch_virtualservice(
            "ai-nutritionist", f"canary-{1000 + i}", istio.json_patch(istio.plan_rollback(vs, "stable")), dry_run=False
        )
        out.append((time.perf_counter() - start) * 1000)
    return out


async def through_alertbot(url: str, fake: FakeKubernetes, runs: int) -> list[float]:
    out = []
    async with aiohttp.ClientSession() as session:
        for i in range(runs):
            fake.add_virtualservice(canary(i))
            data = json.loads(json.dumps(PAYLOAD))
            alert = data["alerts"][0]
            alert["labels"]["virtualservice"] = f"canary-{i}"
            alert["fingerprint"] = f"{i:016x}"
            data["groupKey"] = f"bench-{i}"
            start = time.perf_counter()
            async with session.post(url, json=data) as resp:
                assert resp.status == 200, await resp.text()
            while not landed(fake, f"canary-{i}"):
                if time.perf_counter() - start > 10:
                    raise RuntimeError(f"run {i}: the patch never landed")
                await asyncio.sleep(0.001)
            out.append((time.perf_counter() - start) * 1000)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    fake = FakeKubernetes()
    server = ThreadedServer(fake.app)
    with tempfile.TemporaryDirectory() as tmp:
        kube_path = Path(tmp) / "kubeconfig"
        kube_path.write_text(kubeconfig(server.url("")))
        direct = await baseline(kube_path, fake, args.runs)

        config = Path(tmp) / "alertbot.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "storage": {"url": f"sqlite:///{tmp}/alertbot.db"},
                    "kubernetes": {"kubeconfig": str(kube_path)},
                    "runbooks": {"dir": str(ROOT / "runbooks")},
                    "automations": [
                        {
                            "name": "rollback-canary",
                            "match": {"severity": "critical", "canary": "true"},
                            "runbook": "emergency-rollback",
                            "mode": "auto",
                            "cooldown": "0s",
                            "params": {
                                "namespace": "{{ labels.namespace }}",
                                "virtualservice": "{{ labels.virtualservice }}",
                            },
                        }
                    ],
                }
            )
        )
        port = free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "alertbot",
                "serve",
                "--port",
                str(port),
                "--config",
                str(config),
                "--log-level",
                "warning",
            ],
            cwd=tmp,
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
        )
        try:
            await wait_listening(f"http://127.0.0.1:{port}/probe", proc)
            ours = await through_alertbot(f"http://127.0.0.1:{port}/webhook/alertmanager", fake, args.runs)
        finally:
            proc.terminate()
            proc.wait()
    server.close()
    print(f"alert → VirtualService patch, {args.runs} runs (auto mode, fake Kubernetes API on 127.0.0.1)\n")
    print(f"{'path':44} {'p50 ms':>8} {'p99 ms':>8}")
    print(
        f"{'direct GET + guarded PATCH (baseline)':44} {percentile(direct, 0.5):8.1f} {percentile(direct, 0.99):8.1f}"
    )
    print(
        f"{'alertbot: webhook → classify → runbook → PATCH':44} {percentile(ours, 0.5):8.1f} "
        f"{percentile(ours, 0.99):8.1f}"
    )
    print(f"slowest alertbot runs (ms): {[round(v) for v in sorted(ours)[-5:]]}; first run {ours[0]:.0f} ms")
    print(
        f"\np99 {percentile(ours, 0.99):.1f} ms (target < 250 ms); alertbot adds "
        f"{percentile(ours, 0.5) - percentile(direct, 0.5):+.1f} ms at p50 over the bare API calls"
    )


if __name__ == "__main__":
    asyncio.run(main())
