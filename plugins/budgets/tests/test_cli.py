"""`authcore spend`: budget state from the command line, through the gateway built in process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from authcore.cli import main
from authcore.config import load_config
from authcore.gateway.app import create_app

MASTER_KEY = "sk-master-spend-Zq8vN3xR7tLp2WbK"
HASH_SECRET = "pepper-spend-4f1c9a7e2b8d6f30a5"


def write_config(tmp_path: Path, *, keys: bool = True) -> Path:
    path = tmp_path / "authcore.yaml"
    keys_block = (
        "  keys:\n"
        "    use: virtual_keys\n"
        "    config:\n"
        "      master_key: os.environ/SPEND_CLI_MASTER\n"
        "      hash_secret: os.environ/SPEND_CLI_SECRET\n"
        if keys
        else ""
    )
    path.write_text(
        "plugins:\n"
        f"{keys_block}"
        "  budget:\n"
        "    use: budgets\n"
        "    config:\n"
        "      prices:\n"
        "        gpt-4o: {input_per_1m_tokens: 2.5, output_per_1m_tokens: 10}\n"
        "      global_budget: 10\n"
        "      global_budget_duration: 30d\n"
        "storage:\n"
        f"  database_url: sqlite+aiosqlite:///{tmp_path / 'spend.db'}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SPEND_CLI_MASTER", MASTER_KEY)
    monkeypatch.setenv("SPEND_CLI_SECRET", HASH_SECRET)
    monkeypatch.chdir(tmp_path)
    return write_config(tmp_path)


def spend(config: Path, capsys: pytest.CaptureFixture[str], *argv: str, expect: int = 0) -> Any:
    code = main(["spend", "--config", str(config), *argv])
    captured = capsys.readouterr()
    assert code == expect, captured.err
    if expect != 0:
        assert captured.out == ""
        assert len(captured.err.splitlines()) == 1
        return captured.err
    assert captured.err == ""
    return json.loads(captured.out)


def through_gateway(config: Path, calls: list[tuple[str, str, dict[str, Any]]], token: str = MASTER_KEY) -> list[Any]:
    """Each (method, path, JSON) call's response body, against one gateway built from `config`."""

    async def send() -> list[Any]:
        app = create_app(load_config(config))
        found: list[Any] = []
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                for method, path, body in calls:
                    response = await client.request(
                        method, path, json=body, headers={"authorization": f"Bearer {token}"}
                    )
                    assert response.status_code == 200, response.text
                    found.append(response.json())
        return found

    return asyncio.run(send())


def test_global_spend_shows_what_requests_cost(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = spend(config, capsys)
    assert before["entity"] == "global"
    (budget,) = before["budgets"]
    assert (budget["max_budget"], budget["spend"], budget["reserved"], budget["remaining"]) == (10.0, 0.0, 0.0, 10.0)
    assert budget["budget_reset_at"] is not None

    (key,) = through_gateway(config, [("POST", "/key/generate", {})])
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
    through_gateway(config, [("POST", "/v1/chat/completions", chat)], token=key["key"])

    (after,) = spend(config, capsys)["budgets"]
    assert after["spend"] > 0
    assert after["remaining"] == pytest.approx(10.0 - after["spend"])
    assert after["reserved"] == 0.0


def test_a_team_budget_and_its_spend(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    through_gateway(config, [("POST", "/budget/set", {"entity": "team", "id": "t1", "max_budget": 2})])

    shown = spend(config, capsys, "--entity", "team", "--id", "t1")

    assert shown["id"] == "t1"
    assert [(b["max_budget"], b["spend"], b["remaining"]) for b in shown["budgets"]] == [(2.0, 0.0, 2.0)]


def test_an_entity_needs_an_id(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "--id is required" in spend(config, capsys, "--entity", "team", expect=2)


def test_an_unknown_instance_is_refused(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "no budgets instance named 'nope'" in spend(config, capsys, "--instance", "nope", expect=2)


def test_without_a_master_key_nothing_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path, keys=False)

    assert "virtual_keys" in spend(config, capsys, expect=2)


def test_the_master_key_never_appears_in_the_output(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["spend", "--config", str(config), "--entity", "key", "--id", "k1"])
    captured = capsys.readouterr()
    assert code == 0
    assert MASTER_KEY not in captured.out + captured.err
