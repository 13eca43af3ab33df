"""Fail closed: alertbot does not serve unauthenticated endpoints to the network by default, and a
malformed signature header is a 401, never a crash."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import structlog
import yaml
from pydantic import SecretStr
from pytest_aiohttp import AiohttpClient

from alertbot.errors import ConfigError
from alertbot.exposure import check_exposure, is_loopback
from alertbot.settings import Secrets, parse_config
from alertbot.web.app import create_app
from tests.conftest import ROOT
from tests.e2e.procs import AlertbotProcess
from tests.slack_client import SECRET

UNROUTABLE = "192.0.2.10"  # TEST-NET-1: not an address of this machine, and nothing listens there


def clean_env() -> dict[str, str]:
    """The environment without any alertbot token, as on a fresh machine."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ALERTBOT_")}


def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"storage": {"url": f"sqlite:///{tmp_path}/ab.db"}}))
    return subprocess.run(
        [sys.executable, "-m", "alertbot", "serve", "--config", str(tmp_path / "c.yaml"), "--port", "0", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**clean_env(), **(env or {})},
        timeout=60,
        check=False,
    )


def test_serve_on_a_network_address_without_tokens_refuses_to_start(tmp_path: Path) -> None:
    """`alertbot serve --host <non-loopback>` with neither token exits 2 before listening, naming both
    environment variables and their *_file keys and the opt-out; no traceback."""
    result = serve(tmp_path, "--host", UNROUTABLE)
    assert result.returncode == 2, result.stderr
    for name in ("ALERTBOT_WEBHOOK_TOKEN", "ALERTBOT_API_TOKEN", "webhook.token_file", "api.token_file"):
        assert name in result.stderr
    assert "security.allow_unauthenticated" in result.stderr
    assert "Traceback" not in result.stderr and '"listening"' not in result.stderr


def test_one_token_is_not_enough(tmp_path: Path) -> None:
    """With only the webhook token the API is still open: refused, naming only what is missing."""
    result = serve(tmp_path, "--host", UNROUTABLE, env={"ALERTBOT_WEBHOOK_TOKEN": "w-token"})
    assert result.returncode == 2
    assert "ALERTBOT_API_TOKEN" in result.stderr and "ALERTBOT_WEBHOOK_TOKEN" not in result.stderr


def test_on_loopback_it_starts_and_warns_once(tmp_path: Path) -> None:
    """`make run`'s case: 127.0.0.1 without tokens starts, and logs the open endpoints once."""
    process = AlertbotProcess(tmp_path / "ab", {"storage": {"url": f"sqlite:///{tmp_path}/ab.db"}}, env={})
    process.env = clean_env()
    try:
        process.start()
        warnings = [line for line in process.stderr().splitlines() if "unauthenticated_endpoints" in line]
        assert len(warnings) == 1, process.stderr()
        assert "ALERTBOT_WEBHOOK_TOKEN" in warnings[0] and "ALERTBOT_API_TOKEN" in warnings[0]
    finally:
        process.close()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.1.2.3", False),
        ("alertbot.example", False),
    ],
)
def test_which_addresses_are_loopback(host: str, loopback: bool) -> None:
    """Only addresses that take connections from this machine alone count as loopback."""
    assert is_loopback(host) is loopback


def test_the_opt_out_and_the_tokens_let_it_start() -> None:
    """With both tokens, or with security.allow_unauthenticated (logged as a warning), a network
    address is allowed."""
    tokens = Secrets.model_validate({"webhook_token": "w", "api_token": "a"})
    check_exposure(parse_config({}), tokens, "0.0.0.0")
    with pytest.raises(ConfigError):
        check_exposure(parse_config({}), Secrets(), "0.0.0.0")
    with structlog.testing.capture_logs() as logs:
        check_exposure(parse_config({"security": {"allow_unauthenticated": True}}), Secrets(), "0.0.0.0")
    assert [e["event"] for e in logs] == ["unauthenticated_endpoints"]


def test_security_keys_are_checked() -> None:
    """Unknown keys under `security` are errors naming the key path."""
    with pytest.raises(ConfigError, match=r"security\.allow_anyone"):
        parse_config({"security": {"allow_anyone": True}})


@pytest.mark.parametrize("manifest", ["alertbot.yaml", "alertbot-single.yaml"])
def test_the_shipped_deployments_provide_both_tokens(manifest: str) -> None:
    """deploy/ binds 0.0.0.0, so its configs give both tokens (as files from the Secret) and do not
    opt out."""
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / manifest).read_text()) if d]
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap"]
    config = parse_config(yaml.safe_load(config_map["data"]["alertbot.yaml"]))
    assert not is_loopback(config.server.host)
    assert config.webhook.token_file is not None and config.api.token_file is not None
    assert config.security.allow_unauthenticated is False


async def raw_request(host: str, port: int, head: bytes, body: bytes) -> tuple[int, bytes]:
    """An HTTP/1.1 request written byte for byte (no client library would send these headers)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head + b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    status = int(response.split(b" ", 2)[1])
    return status, response.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize(
    "headers",
    [
        (b"v0=\xff\xfe\xfd", b"{now}"),  # not UTF-8, with a fresh timestamp: reaches the HMAC compare
        (b"v0=\xc3\xa9" + b"0" * 62, b"{now}"),  # UTF-8 but not ASCII
        (b"v0=abc", b"17\xff00000000"),
        (b"v0=abc", b"\xd9\xa1\xd9\xa2"),  # Arabic-Indic digits: int() would take them
    ],
)
@pytest.mark.parametrize("path", ["/slack/commands", "/slack/interactions"])
async def test_non_utf8_slack_signature_headers_are_401(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    headers: tuple[bytes, bytes],
    path: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bytes that are not UTF-8 (or not ASCII digits) in X-Slack-Signature / X-Slack-Request-Timestamp
    are refused with a 401 JSON error, and nothing is logged as an internal error (no traceback)."""
    signature, timestamp = headers
    config = parse_config({"storage": {"url": f"sqlite:///{tmp_path}/alertbot.db"}})
    client = await aiohttp_client(create_app(config, Secrets(slack_signing_secret=SecretStr(SECRET))))
    server = client.server
    assert server.port is not None  # the test server is listening
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {server.host}\r\n".encode()
        + b"Content-Type: application/x-www-form-urlencoded\r\n"
        + b"X-Slack-Signature: "
        + signature
        + b"\r\nX-Slack-Request-Timestamp: "
        + timestamp.replace(b"{now}", str(int(time.time())).encode())
        + b"\r\n"
    )
    with structlog.testing.capture_logs() as logs:
        status, body = await raw_request(server.host, server.port, head, b"command=%2Falertbot&text=help")
    assert status == 401, body
    assert b'"unauthorized"' in body
    assert [e for e in logs if e.get("log_level") in ("error", "critical") or "exc_info" in e] == []
    assert "Traceback" not in capsys.readouterr().err
