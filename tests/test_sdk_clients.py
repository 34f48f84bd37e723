"""The official OpenAI and Anthropic SDKs against `authcore serve` with virtual keys, over real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import anthropic
import httpx
import openai
import pytest

MASTER_KEY = "sk-master-sdk-canary-7f3c2a9d41"
HASH_SECRET = "sdk-clients-pepper-0c8e5b2f6a"
WRONG_KEY = "sk-not-a-key-of-this-gateway-000000"
TIMEOUT_S = 10.0
CONFIG = """\
plugins:
  headers:
    use: headers
  keys:
    use: virtual_keys
    config:
      master_key: os.environ/SDK_TEST_MASTER_KEY
      hash_secret: os.environ/SDK_TEST_HASH_SECRET
storage:
  database_url: sqlite+aiosqlite:///{database}
routes:
  public:
    - /health/*
  admin:
    - /key/*
"""


@dataclass(frozen=True)
class Server:
    base: str
    key: str
    """A virtual key limited to gpt-4o-mini."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_alive(url: str, process: subprocess.Popen[str], deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited early with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("serve did not answer in time")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One gateway process for the module (start-up dominates the cost), with one key made through the admin API."""
    tmp_path = tmp_path_factory.mktemp("sdk")
    config = tmp_path / "authcore.yaml"
    config.write_text(CONFIG.format(database=tmp_path / "keys.db"), encoding="utf-8")
    env = {**os.environ, "SDK_TEST_MASTER_KEY": MASTER_KEY, "SDK_TEST_HASH_SECRET": HASH_SECRET}
    env.pop("AUTHCORE_CONFIG", None)
    port = free_port()
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
        wait_until_alive(f"{base}/health/liveliness", process)
        created = httpx.post(
            f"{base}/key/generate",
            headers={"authorization": f"Bearer {MASTER_KEY}"},
            json={"models": ["gpt-4o-mini"]},
            timeout=TIMEOUT_S,
        )
        assert created.status_code == 200, created.text
        yield Server(base, created.json()["key"])
    finally:
        process.terminate()
        try:
            _, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
    assert process.returncode in (0, -signal.SIGTERM)
    assert MASTER_KEY not in stderr


def openai_client(server: Server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key=key, max_retries=0, timeout=TIMEOUT_S)


def anthropic_client(server: Server, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base, api_key=key, max_retries=0, timeout=TIMEOUT_S)


MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello to the SDK."}]


def test_openai_chat_completion_with_a_virtual_key(server: Server) -> None:
    with openai_client(server, server.key) as client:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_openai_wrong_key_raises_authentication_error(server: Server) -> None:
    with openai_client(server, WRONG_KEY) as client, pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raised.value.status_code == 401
    assert WRONG_KEY not in str(raised.value)


def test_openai_model_outside_the_key_raises_permission_denied(server: Server) -> None:
    with openai_client(server, server.key) as client, pytest.raises(openai.PermissionDeniedError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert raised.value.status_code == 403


def test_openai_streaming_yields_chunks(server: Server) -> None:
    with openai_client(server, server.key) as client:
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        chunks = list(stream)
    assert len(chunks) >= 2
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text.startswith("This is a mock reply")
    assert any(chunk.choices and chunk.choices[0].finish_reason == "stop" for chunk in chunks)


def test_openai_models_list_shows_the_keys_models(server: Server) -> None:
    with openai_client(server, server.key) as client:
        models = [model.id for model in client.models.list()]
    assert models == ["gpt-4o-mini"]


def test_anthropic_sdk_lists_models_with_a_virtual_key(server: Server) -> None:
    with anthropic_client(server, server.key) as client:
        raw = client.models.with_raw_response.list()
        sent = raw.http_request.headers
        # Older SDKs send the key as x-api-key, newer ones as a bearer token: the gateway takes either.
        assert sent.get("x-api-key") == server.key or sent.get("authorization") == f"Bearer {server.key}"
        assert raw.status_code == 200
        assert [model.id for model in raw.parse()] == ["gpt-4o-mini"]


def x_api_key_only(key: str) -> dict[str, str | anthropic.Omit]:
    """Per-request headers that make any SDK version authenticate by x-api-key alone."""
    return {"X-Api-Key": key, "Authorization": anthropic.omit}


def test_anthropic_sdk_authenticates_with_x_api_key_alone(server: Server) -> None:
    with anthropic_client(server, server.key) as client:
        raw = client.models.with_raw_response.list(extra_headers=x_api_key_only(server.key))
        assert raw.http_request.headers["x-api-key"] == server.key
        assert "authorization" not in raw.http_request.headers
        assert raw.status_code == 200
        assert [model.id for model in raw.parse()] == ["gpt-4o-mini"]


def test_anthropic_sdk_wrong_x_api_key_raises_authentication_error(server: Server) -> None:
    with anthropic_client(server, server.key) as client, pytest.raises(anthropic.AuthenticationError) as raised:
        client.models.list(extra_headers=x_api_key_only(WRONG_KEY))
    assert raised.value.status_code == 401
    assert WRONG_KEY not in str(raised.value)


def test_anthropic_sdk_wrong_key_raises_authentication_error(server: Server) -> None:
    with anthropic_client(server, WRONG_KEY) as client, pytest.raises(anthropic.AuthenticationError) as raised:
        client.models.list()
    assert raised.value.status_code == 401
    assert WRONG_KEY not in str(raised.value)
