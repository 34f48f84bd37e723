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


def test_serve_runs_the_gateway_until_terminated(tmp_path: Path) -> None:
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
    port = free_port()
    env = {**os.environ, "ALICE_TOKEN": ALICE_TOKEN}
    env.pop("AUTHCORE_CONFIG", None)
    command = [sys.executable, "-m", "authcore.cli", "serve", "--config", str(config), "--port", str(port)]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [*command, "--log-level", "warning"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_until_alive(f"{base}/health/liveliness", process).status_code == 200
        assert httpx.get(f"{base}/health/readiness", timeout=5).status_code == 200
        assert httpx.get(f"{base}/v1/models", timeout=5).status_code == 401
        allowed = httpx.get(f"{base}/v1/models", headers={"authorization": f"Bearer {ALICE_TOKEN}"}, timeout=5)
        assert allowed.status_code == 200
        assert allowed.json()["object"] == "list"
    finally:
        process.terminate()
        try:
            _, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert process.returncode in (0, -signal.SIGTERM)
    assert ALICE_TOKEN not in stderr
