"""`authcore migrate`: every configured plugin's schema history, upgraded or checked, on SQLite and Postgres."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from authcore_budgets import migrations as budgets_migrations
from authcore_virtual_keys import migrations as vk_migrations
from sqlalchemy.ext.asyncio import create_async_engine

from authcore.cli import main

MASTER_KEY = "sk-master-migrate-8Jq2Lw5Rt9Zx"
HASH_SECRET = "pepper-migrate-3b7e1d9c5a2f8e60"


def write_config(path: Path) -> Path:
    """virtual_keys and budgets, neither migrating at start-up, on $MIGRATE_DATABASE_URL."""
    lines = [
        "plugins:",
        "  keys:",
        "    use: virtual_keys",
        "    config:",
        "      master_key: os.environ/MIGRATE_MASTER_KEY",
        "      hash_secret: os.environ/MIGRATE_HASH_SECRET",
        "      create_schema: false",
        "  spend:",
        "    use: budgets",
        "    config:",
        "      create_schema: false",
        "storage:",
        "  database_url: os.environ/MIGRATE_DATABASE_URL",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MIGRATE_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("MIGRATE_HASH_SECRET", HASH_SECRET)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'migrate.db'}"
    else:
        url = str(request.getfixturevalue("authcore_postgres_url"))
    monkeypatch.setenv("MIGRATE_DATABASE_URL", url)
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def revisions(url: str) -> tuple[str | None, str | None]:
    engine = create_async_engine(url)
    try:
        return await vk_migrations.current(engine), await budgets_migrations.current(engine)
    finally:
        await engine.dispose()


def test_check_reports_behind_then_migrate_upgrades_every_plugin(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, database_url: str
) -> None:
    config = str(write_config(tmp_path / "authcore.yaml"))

    code, out, _ = run(capsys, "migrate", "--config", config, "--check")
    assert code == 1
    assert f"keys (virtual_keys): at nothing, head {vk_migrations.head()}: behind" in out
    assert f"spend (budgets): at nothing, head {budgets_migrations.head()}: behind" in out

    code, out, _ = run(capsys, "migrate", "--config", config)
    assert code == 0
    assert f"keys (virtual_keys): at {vk_migrations.head()} (upgraded from nothing)" in out
    assert f"spend (budgets): at {budgets_migrations.head()} (upgraded from nothing)" in out

    code, out, _ = run(capsys, "migrate", "--config", config, "--check")
    assert code == 0
    assert out.count("up to date") == 2

    code, out, _ = run(capsys, "migrate", "--config", config)
    assert code == 0
    assert out.count("already at head") == 2


def test_check_changes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path, database_url: str) -> None:
    # Sync test: the command runs its own event loop, as on the command line.
    config = str(write_config(tmp_path / "authcore.yaml"))
    assert run(capsys, "migrate", "--config", config, "--check")[0] == 1
    assert asyncio.run(revisions(database_url)) == (None, None)
    assert run(capsys, "migrate", "--config", config)[0] == 0
    assert asyncio.run(revisions(database_url)) == (vk_migrations.head(), budgets_migrations.head())


def test_a_configuration_without_migrations_says_so(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text(f"plugins: {{}}\nstorage:\n  database_url: sqlite+aiosqlite:///{tmp_path / 'p.db'}\n")
    code, out, _ = run(capsys, "migrate", "--config", str(path))
    assert code == 0
    assert out == "no configured plugin has migrations\n"


def test_an_unreachable_database_is_one_line_without_the_url(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "canary-db-password-71c3"
    # Port 9 (discard): nothing listens there, so the connection is refused at once.
    monkeypatch.setenv("MIGRATE_DATABASE_URL", f"postgresql+asyncpg://authcore:{password}@127.0.0.1:9/authcore")
    config = str(write_config(tmp_path / "authcore.yaml"))

    code, out, err = run(capsys, "migrate", "--config", config, "--check")

    assert code == 1
    assert err.startswith("authcore: error: keys (virtual_keys): migration failed (")
    assert err.count("\n") == 1
    assert password not in out + err
