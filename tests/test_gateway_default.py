"""The embedded default: `authcore serve` with no config, the main job of a new user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from authcore.cli import main
from authcore.errors import ConfigurationError
from authcore.gateway.app import create_app_from_env
from authcore.gateway.settings import CONFIG_ENV, config_from_env, gateway_resolver
from authcore.runner import Runner

MASTER_KEY = "sk-master-default-canary-0b7e4d"
HASH_SECRET = "default-config-pepper-94c1f3a7"


@pytest.fixture
def default_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.setenv("AUTHCORE_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("AUTHCORE_HASH_SECRET", HASH_SECRET)
    return tmp_path


@pytest.fixture
async def gateway(default_env: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app_from_env()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


def test_default_config_needs_the_master_key_and_names_the_variable(
    default_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUTHCORE_MASTER_KEY")
    config = config_from_env()
    with pytest.raises(ConfigurationError, match=r"plugins\.keys\.config\.master_key.*AUTHCORE_MASTER_KEY"):
        Runner.from_config(config, gateway_resolver(config))


def test_serve_refuses_before_binding_without_the_master_key(
    default_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AUTHCORE_MASTER_KEY")
    assert main(["serve", "--port", "1"]) != 0
    assert "AUTHCORE_MASTER_KEY" in capsys.readouterr().err


async def test_create_a_key_then_call_chat_completions_with_it(gateway: httpx.AsyncClient, default_env: Path) -> None:
    admin = {"authorization": f"Bearer {MASTER_KEY}"}
    created = await gateway.post("/key/generate", headers=admin, json={"models": ["gpt-4o-mini"]})
    assert created.status_code == 200, created.text
    key = created.json()["key"]

    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
    answered = await gateway.post("/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json=chat)
    assert answered.status_code == 200, answered.text
    assert answered.json()["usage"]["total_tokens"] > 0

    # Anthropic SDK style header works the same.
    anthropic = await gateway.post("/v1/chat/completions", headers={"x-api-key": key}, json=chat)
    assert anthropic.status_code == 200

    other_model = await gateway.post(
        "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json={**chat, "model": "gpt-4o"}
    )
    assert other_model.status_code == 403

    # LiteLLM's admin call shape: the key asked about travels in the query string.
    info = await gateway.get("/key/info", headers=admin, params={"key": key})
    assert info.status_code == 200, info.text
    assert key not in info.text

    # The raw keys live nowhere in the database file.
    stored = (default_env / "authcore.db").read_bytes()
    assert key.encode() not in stored
    assert MASTER_KEY.encode() not in stored


async def test_a_new_key_cannot_use_admin_routes(gateway: httpx.AsyncClient) -> None:
    created = await gateway.post("/key/generate", headers={"authorization": f"Bearer {MASTER_KEY}"}, json={})
    key = created.json()["key"]
    denied = await gateway.post("/key/generate", headers={"authorization": f"Bearer {key}"}, json={})
    assert denied.status_code == 403


async def test_default_gateway_enforces_a_key_budget(gateway: httpx.AsyncClient) -> None:
    admin = {"authorization": f"Bearer {MASTER_KEY}"}
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}
    roomy = (await gateway.post("/key/generate", headers=admin, json={"max_budget": 1.0})).json()["key"]
    tiny = (await gateway.post("/key/generate", headers=admin, json={"max_budget": 0.000001})).json()["key"]

    assert (
        await gateway.post("/v1/chat/completions", headers={"authorization": f"Bearer {roomy}"}, json=chat)
    ).status_code == 200
    refused = await gateway.post("/v1/chat/completions", headers={"authorization": f"Bearer {tiny}"}, json=chat)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert "retry-after" in refused.headers
