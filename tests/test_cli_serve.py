"""`authcore serve` as a real process: it binds, answers probes and authenticates, then stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ALICE_TOKEN = "st-alice-serve-canary-11"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_alive(url: str, process: subprocess.Popen[str], deadline_s: float = 20.0) -> httpx.Response:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited early with {process.returncode}")
        try:
            return httpx.get(url, timeout=1.0)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("serve did not answer in time")


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "authcore.yaml"
    config.write_text(
        "plugins:\n"
        "  static:\n"
        "    use: sample_static_tokens\n"
        "    config:\n"
        "      tokens:\n"
        "        alice: os.environ/ALICE_TOKEN\n"
        "storage:\n"
        f"  database_url: sqlite+aiosqlite:///{tmp_path / 'serve.db'}\n",
        encoding="utf-8",
    )
    return config


def start_serve(tmp_path: Path, port: int, log_level: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ALICE_TOKEN": ALICE_TOKEN}
    env.pop("AUTHCORE_CONFIG", None)
    config = write_config(tmp_path)
    command = [sys.executable, "-m", "authcore.cli", "serve", "--config", str(config), "--port", str(port)]
    return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [*command, "--log-level", log_level],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.terminate()
    try:
        return process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()


def test_serve_runs_the_gateway_until_terminated(tmp_path: Path) -> None:
    port = free_port()
    process = start_serve(tmp_path, port, "warning")
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_until_alive(f"{base}/health/liveliness", process).status_code == 200
        assert httpx.get(f"{base}/health/readiness", timeout=5).status_code == 200
        assert httpx.get(f"{base}/v1/models", timeout=5).status_code == 401
        allowed = httpx.get(f"{base}/v1/models", headers={"authorization": f"Bearer {ALICE_TOKEN}"}, timeout=5)
        assert allowed.status_code == 200
        assert allowed.json()["object"] == "list"
    finally:
        _, stderr = stop(process)
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert process.returncode in (0, -signal.SIGTERM)
    assert ALICE_TOKEN not in stderr


def test_access_log_never_contains_a_query_string_key(tmp_path: Path) -> None:
    canary = "st-query-canary-5d1e9b"
    port = free_port()
    process = start_serve(tmp_path, port, "info")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_alive(f"{base}/health/liveliness", process)
        refused = httpx.get(f"{base}/v1/models", params={"key": canary}, timeout=5)
        assert refused.status_code == 400
        gemini = f"{base}/v1beta/models/gemini-pro:generateContent"
        httpx.post(gemini, params={"key": canary}, json={}, timeout=5)
    finally:
        stdout, stderr = stop(process)
    logs = stdout + stderr
    assert "GET /v1/models?… HTTP/1.1" in logs  # the access log ran, with the query dropped
    assert canary not in logs
