"""End to end: the demo gateway with `virtual_keys` and `budgets`; key budgets come from the key store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from authcore.config import parse_config
from authcore.gateway.app import create_app

MASTER_KEY = "sk-master-budgets-e2e-7c1d9a"
ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    config = parse_config(
        {
            "plugins": {
                "keys": {
                    "use": "virtual_keys",
                    "config": {"master_key": MASTER_KEY, "hash_secret": "budgets-e2e-pepper-4b8f0c"},
                },
                "budget": {
                    "use": "budgets",
                    # 1 micro-USD per output token, prompts free: costs are the mock's completion tokens.
                    "config": {"prices": {"gpt-4o-mini": {"input_per_1m_tokens": 0, "output_per_1m_tokens": 1}}},
                },
            },
            "storage": {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"},
            "routes": {"admin": ["/key/*"]},
        }
    )
    app = create_app(config)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield client


async def chat(client: httpx.AsyncClient, key: str, max_tokens: int, *, stream: bool = False) -> httpx.Response:
    body = {
        "model": "gpt-4o-mini",
        "max_tokens": max_tokens,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    }
    return await client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})


async def test_key_budget_from_virtual_keys_is_reserved_and_settled_to_usage(gateway: httpx.AsyncClient) -> None:
    created = await gateway.post("/key/generate", headers=ADMIN, json={"max_budget": 0.0006, "budget_duration": "30d"})
    assert created.status_code == 200, created.text
    key = created.json()["key"]
    first = await chat(gateway, key, 500)
    assert first.status_code == 200, first.text
    used = first.json()["usage"]["completion_tokens"]
    streamed = await chat(gateway, key, 500, stream=True)
    assert streamed.status_code == 200
    assert "[DONE]" in streamed.text
    streamed_used = next(
        json.loads(line[6:])["usage"]["completion_tokens"]
        for line in streamed.text.splitlines()
        if line.startswith("data: {") and '"usage"' in line and json.loads(line[6:]).get("usage")
    )
    # The ledger holds what the mock reported, not the 500-token reservations.
    info = await gateway.get("/budget/info", params={"entity": "global"}, headers=ADMIN)
    assert info.status_code == 200
    assert round(info.json()["total_spend"] * 1_000_000) == used + streamed_used
    # 600 micro-USD limit: the two settled calls spent little, but a 1000-token reservation cannot fit.
    denied = await chat(gateway, key, 1000)
    assert denied.status_code == 429
    assert denied.json()["error"]["code"] == "budget_exceeded"
    assert (await chat(gateway, key, 400)).status_code == 200
