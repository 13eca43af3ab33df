"""A real Prometheus (Debian's ``prometheus`` 2.42) scraping a test exporter every second.

The exporter serves Istio's request counter (``istio_requests_total``) for one service in the text
exposition format; the test sets its request rate and error ratio, and the counters grow by exactly
that between scrapes, so ``rate()`` in Prometheus reads back what the test set.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from tests.e2e.procs import BinaryProcess, free_port, real_binary
from tests.e2e.threaded import ThreadedServer
from tests.helpers import DATA

MESH_RULES = DATA / "prometheus" / "mesh-rules.yaml"


def prometheus_binary() -> str:
    return real_binary("prometheus", package="prometheus")


class MeshExporter:
    """``istio_requests_total`` of one service: ``rps`` requests a second, ``error_ratio`` of them 503."""

    def __init__(self, service: str, namespace: str, *, rps: float = 100.0, error_ratio: float = 0.0) -> None:
        self.service, self.namespace = service, namespace
        self._lock = threading.Lock()
        self._rps, self._error_ratio = rps, error_ratio
        self._ok = self._errors = 0.0
        self._at = time.monotonic()
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self.server = ThreadedServer(app)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def set(self, *, error_ratio: float, rps: float | None = None) -> None:
        with self._lock:
            self._advance()
            self._error_ratio = error_ratio
            if rps is not None:
                self._rps = rps

    def _advance(self) -> None:
        now = time.monotonic()
        requests = self._rps * (now - self._at)
        self._errors += requests * self._error_ratio
        self._ok += requests * (1 - self._error_ratio)
        self._at = now

    async def _metrics(self, request: web.Request) -> web.Response:
        with self._lock:
            self._advance()
            ok, errors = self._ok, self._errors
        labels = f'destination_service_name="{self.service}",destination_service_namespace="{self.namespace}"'
        body = (
            "# HELP istio_requests_total Requests handled by the Istio proxy.\n"
            "# TYPE istio_requests_total counter\n"
            f'istio_requests_total{{{labels},response_code="200"}} {ok:.3f}\n'
            f'istio_requests_total{{{labels},response_code="503"}} {errors:.3f}\n'
        )
        return web.Response(text=body, content_type="text/plain", charset="utf-8")

    def close(self) -> None:
        self.server.close()


class PrometheusProcess(BinaryProcess):
    """Prometheus scraping ``targets`` every second and evaluating ``rules`` every second, sending
    alerts to ``alertmanager`` (host:port) when given."""

    def __init__(
        self, workdir: Path, targets: list[str], *, rules: Path = MESH_RULES, alertmanager: str | None = None
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": "mesh", "static_configs": [{"targets": targets}]}],
        }
        if alertmanager is not None:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        command = [
            prometheus_binary(),
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url=http://127.0.0.1:{port}",
        ]
        super().__init__("prometheus", workdir, command, port)
