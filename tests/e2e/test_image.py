"""The container image, built from the Dockerfile as a user would (tools/build_image.sh: a debootstrap
base and buildah, no daemon, no registry), then run: the CLI answers, the daemon runs as uid 10001,
serves, and pages from an Alertmanager payload."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from alertbot import __version__
from tests.e2e.procs import free_port, http, poll, real_binary
from tests.helpers import payload_json

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_TOKEN = "image-webhook-token-0123456789"
API_TOKEN = "image-api-token-0123456789abc"


class Image:
    def __init__(self, storage: Path, tag: str) -> None:
        self.storage, self.tag = storage, tag
        self.env = {**os.environ, "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}

    def buildah(self, *args: str) -> list[str]:
        return ["buildah", "--root", str(self.storage / "root"), "--runroot", str(self.storage / "run"), *args]

    def call(self, *args: str) -> str:
        done = subprocess.run(self.buildah(*args), capture_output=True, text=True, env=self.env, check=True)
        return done.stdout

    @contextlib.contextmanager
    def container(self) -> Iterator[str]:
        """A fresh container of the image, removed afterwards."""
        ctr = self.call("from", "--quiet", self.tag).strip()
        try:
            yield ctr
        finally:
            subprocess.run(self.buildah("rm", ctr), capture_output=True, env=self.env, check=False)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``buildah run`` in a fresh container of the image (as the image's user)."""
        with self.container() as ctr:
            command = self.buildah("run", "--network", "host", ctr, "--", *args)
            return subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=60, check=False)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    real_binary("buildah", package="buildah")
    real_binary("debootstrap", package="debootstrap")
    if os.geteuid() != 0:
        pytest.skip("buildah's chroot isolation needs root")
    storage = tmp_path_factory.mktemp("image")
    tag = "localhost/alertbot:test"
    built = subprocess.run(
        [str(ROOT / "tools" / "build_image.sh"), tag, str(storage)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    image = Image(storage, tag)
    yield image
    subprocess.run(image.buildah("rmi", "--all", "--force"), capture_output=True, env=image.env, check=False)
    shutil.rmtree(storage, ignore_errors=True)  # vfs layers: a full copy of the image each


def test_the_image_runs_the_cli_as_an_unprivileged_user(image: Image) -> None:
    version = image.run("alertbot", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"alertbot {__version__}"
    assert image.run("id", "-u").stdout.strip() == "10001"
    config = json.loads(image.call("inspect", "--type", "image", image.tag))["Docker"]["config"]
    assert config["Entrypoint"] == ["alertbot"] and config["Cmd"] == ["serve", "--host", "0.0.0.0"]
    assert config["Healthcheck"]["Test"][-1].endswith("urlopen('http://127.0.0.1:8080/healthz', timeout=2)")


GRAPH_IN_A_WORKER = """
import asyncio, functools
from datetime import UTC, datetime, timedelta
from alertbot.context.graph import Graphs, render_png
from alertbot.domain.graph_query import GraphQuery
from alertbot.prometheus import Series

now = datetime.now(UTC)
points = [(now.timestamp() - 60, 0.5), (now.timestamp(), 2.0)]
draw = functools.partial(
    render_png, "HighErrorRate", GraphQuery("x", 1.0, ">"), [Series({}, points)],
    started=now, start=now - timedelta(minutes=2), end=now,
)

async def main() -> None:
    graphs = Graphs(lambda: None, lambda: timedelta(hours=1), lambda: now)
    png = await graphs._render(draw)  # the worker process a page's graph is drawn in
    await graphs.close()
    print(len(png), png[:8] == b"\\x89PNG\\r\\n\\x1a\\n")

asyncio.run(main())
"""


def test_the_image_draws_graphs_in_its_worker_process(image: Image) -> None:
    """matplotlib, its fonts and a spawned worker work in the image, as its unprivileged user."""
    drawn = image.run("python", "-c", GRAPH_IN_A_WORKER)
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    size, is_png = drawn.stdout.split()
    assert int(size) > 10_000 and is_png == "True", drawn.stdout
    assert "Matplotlib" not in drawn.stderr, drawn.stderr  # no complaint about an unwritable cache dir


def test_the_image_serves_and_pages(image: Image) -> None:
    """`alertbot serve` in the image: healthy, and an Alertmanager payload becomes a console page."""
    port = free_port()
    with image.container() as ctr:
        out, err = _serve_and_page(image, ctr, port)
    page = json.loads(out.splitlines()[0])
    assert page["channel"] == "console" and "HighErrorRate" in json.dumps(page), out
    assert API_TOKEN not in out + err and WEBHOOK_TOKEN not in out + err


def _serve_and_page(image: Image, ctr: str, port: int) -> tuple[str, str]:
    """Serve in ``ctr``, post a payload, see its incident; the daemon's stdout and stderr."""
    serve = image.buildah(
        "run",
        "--network",
        "host",
        "-e",
        f"ALERTBOT_WEBHOOK_TOKEN={WEBHOOK_TOKEN}",
        "-e",
        f"ALERTBOT_API_TOKEN={API_TOKEN}",
        ctr,
        "--",
        "alertbot",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-format",
        "json",
    )
    proc = subprocess.Popen(serve, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=image.env)
    try:
        url = f"http://127.0.0.1:{port}"
        poll(lambda: _healthy(url), within=60, what="the image's alertbot to serve")
        status, _ = http(
            "POST",
            f"{url}/webhook/alertmanager",
            payload_json("am-higherrorrate-nutrition-service-firing.json"),
            {"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        )
        assert status == 200
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        incidents = poll(lambda: http("GET", f"{url}/api/v1/incidents", headers=auth)[1], within=10, what="incident")
        assert [i["alertname"] for i in incidents] == ["HighErrorRate"]
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    return out, err


def _healthy(url: str) -> bool:
    try:
        return http("GET", f"{url}/healthz")[0] == 200
    except OSError:
        return False
