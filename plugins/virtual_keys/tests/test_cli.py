"""`authcore keys ...`: the admin API from the command line, run in process against a SQLite file."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from authcore.cli import main
from authcore.config import load_config
from authcore.gateway.app import create_app

from .conftest import HASH_SECRET, MASTER_KEY


def write_config(tmp_path: Path, *, master: bool = True, name: str = "authcore.yaml") -> Path:
    path = tmp_path / name
    master_line = "      master_key: os.environ/VK_CLI_MASTER\n" if master else ""
    path.write_text(
        "plugins:\n"
        "  keys:\n"
        "    use: virtual_keys\n"
        "    config:\n"
        f"{master_line}"
        "      hash_secret: os.environ/VK_CLI_SECRET\n"
        "storage:\n"
        f"  database_url: sqlite+aiosqlite:///{tmp_path / 'keys.db'}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VK_CLI_MASTER", MASTER_KEY)
    monkeypatch.setenv("VK_CLI_SECRET", HASH_SECRET)
    monkeypatch.chdir(tmp_path)
    return write_config(tmp_path)


class Cli:
    def __init__(self, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.config = config
        self.capsys = capsys
        self.outputs: list[str] = []

    def __call__(self, *argv: str, expect: int = 0) -> Any:
        code = main(["keys", *argv, "--config", str(self.config)])
        captured = self.capsys.readouterr()
        self.outputs.extend((captured.out, captured.err))
        assert code == expect, captured.err
        if expect != 0:
            assert captured.out == ""
            assert len(captured.err.splitlines()) == 1
            return captured.err
        assert captured.err == ""
        return json.loads(captured.out)


@pytest.fixture
def cli(config: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(config, capsys)


def chat(config: Path, key: str, model: str = "gpt-4o") -> int:
    """Status of a chat request with `key` through the gateway built from the same configuration."""

    async def send() -> int:
        app = create_app(load_config(config))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                response = await client.post(
                    "/v1/chat/completions",
                    json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                    headers={"authorization": f"Bearer {key}"},
                )
                return response.status_code

    return asyncio.run(send())


def test_key_lifecycle(cli: Cli, config: Path) -> None:
    created = cli(
        "create", "--models", "gpt-4o,gpt-4o-mini", "--duration", "30d", "--alias", "ci", "--metadata", '{"team": "ml"}'
    )
    key, token = created["key"], created["token"]
    assert key.startswith("sk-")
    assert created["models"] == ["gpt-4o", "gpt-4o-mini"]
    assert created["metadata"] == {"team": "ml"}
    assert chat(config, key) == 200
    assert chat(config, key, "claude-3-5-sonnet") == 403

    info = cli("info", token)
    assert info["key"] == token
    assert info["info"]["key_alias"] == "ci"
    assert "sk-" not in json.dumps(info).replace(info["info"]["key_name"], "")

    assert cli("block", token)["blocked"] is True
    assert chat(config, key) == 403

    assert cli("unblock", token)["blocked"] is False
    assert chat(config, key) == 200

    rotated = cli("rotate", token)
    assert rotated["key"] != key
    assert chat(config, key) == 401
    assert chat(config, rotated["key"]) == 200

    assert cli("delete", rotated["token"])["deleted_keys"] == [rotated["token"]]
    assert chat(config, rotated["key"]) == 401
    assert cli("list")["keys"] == []


def test_update_changes_only_the_given_fields(cli: Cli) -> None:
    created = cli("create", "--models", "gpt-4o", "--alias", "before")

    updated = cli("update", created["token"], "--alias", "after", "--max-budget", "2.5")

    assert updated["key_alias"] == "after"
    assert updated["max_budget"] == 2.5
    assert updated["models"] == ["gpt-4o"]
    assert "key" not in updated or updated["key"] != created["key"]


def test_info_accepts_the_key_from_stdin(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    created = cli("create")
    monkeypatch.setattr("sys.stdin", io.StringIO(created["key"] + "\n"))

    assert cli("info", "-")["key"] == created["token"]


def test_list_shows_tokens_not_keys(cli: Cli) -> None:
    first, second = cli("create"), cli("create")

    listed = cli("list")

    assert sorted(listed["keys"]) == sorted([first["token"], second["token"]])
    assert first["key"] not in json.dumps(listed)


def test_rotate_with_grace_period_keeps_the_old_key_working(cli: Cli, config: Path) -> None:
    created = cli("create")

    rotated = cli("rotate", created["token"], "--grace-period", "1h")

    assert chat(config, created["key"]) == 200
    assert chat(config, rotated["key"]) == 200


def test_api_errors_are_one_line_and_exit_non_zero(cli: Cli) -> None:
    missing = "0" * 64
    assert "Key not found" in cli("info", missing, expect=1)
    assert "duration" in cli("create", "--duration", "soon", expect=1)
    assert "--metadata" in cli("create", "--metadata", "[1]", expect=2)


def test_a_raw_key_given_to_info_never_appears_in_errors(cli: Cli) -> None:
    unknown = "sk-unknown-canary-0123456789abcdef"

    error = cli("info", unknown, expect=1)

    assert unknown not in error


def test_master_key_never_appears_in_any_output(cli: Cli) -> None:
    created = cli("create", "--alias", "canary")
    cli("info", created["token"])
    cli("list", "--full")
    cli("update", created["token"], "--metadata", '{"x": 1}')
    cli("block", created["token"])
    cli("rotate", created["token"])
    cli("info", "0" * 64, expect=1)

    assert all(MASTER_KEY not in output and HASH_SECRET not in output for output in cli.outputs)


def test_instance_without_master_key_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VK_CLI_SECRET", HASH_SECRET)
    path = write_config(tmp_path, master=False, name="no-master.yaml")

    assert main(["keys", "list", "--config", str(path)]) == 2

    err = capsys.readouterr().err
    assert "no master_key" in err
    assert not (tmp_path / "keys.db").exists()


def test_unknown_instance_is_refused(cli: Cli) -> None:
    error = cli("list", "--instance", "other", expect=2)

    assert "'other'" in error
    assert "keys" in error


def test_config_defaults_to_the_environment(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTHCORE_CONFIG", str(config))

    assert main(["keys", "create", "--alias", "from-env"]) == 0
    assert json.loads(capsys.readouterr().out)["key_alias"] == "from-env"
