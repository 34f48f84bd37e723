"""`authcore migrate`: bring every configured plugin's tables to its newest schema revision.

Plugins declare their Alembic history on their class (`Plugin.migrations`); each
history is run once on the shared database, however many instances use the type.
Output names instances, plugin types and revisions, never the database URL.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from authcore.cli.common import CliError, load_cli_config
from authcore.config import AuthcoreConfig
from authcore.gateway.settings import gateway_resolver
from authcore.migrations import Migrations
from authcore.resources import Resources
from authcore.runner import Runner

BEHIND = 1
"""Exit code of `--check` when some history is not at its head (and of a database that cannot be reached)."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "migrate",
        help="upgrade the plugins' database tables",
        description="Run every configured plugin's schema migrations on the configured database.",
    )
    parser.add_argument("--config", metavar="FILE", help="authcore.yaml (default: the embedded default)")
    parser.add_argument(
        "--check", action="store_true", help="only report current and head revisions; exit 1 when one is behind"
    )
    parser.set_defaults(handler=run)


@dataclass(frozen=True, slots=True)
class History:
    """One plugin type's migrations and the configured instances that use it."""

    plugin_type: str
    instances: tuple[str, ...]
    migrations: Migrations


def histories(config: AuthcoreConfig) -> list[History]:
    """The migrations of every configured plugin type that declares some, in configuration order."""
    runner = Runner.from_config(config, gateway_resolver(config))
    found: dict[Migrations, tuple[str, list[str]]] = {}
    for instance in runner.instances:
        migrations = type(instance).migrations
        if migrations is None:
            continue
        spec = config.plugins.get(instance.name)
        plugin_type = spec.use if spec is not None else type(instance).__name__
        found.setdefault(migrations, (plugin_type, []))[1].append(instance.name)
    return [History(plugin_type, tuple(names), migrations) for migrations, (plugin_type, names) in found.items()]


def run(args: argparse.Namespace) -> int:
    config = load_cli_config(args.config)
    found = histories(config)
    if not found:
        print("no configured plugin has migrations")
        return 0
    return asyncio.run(_run(config, found, check=args.check))


async def _run(config: AuthcoreConfig, found: list[History], *, check: bool) -> int:
    resources = Resources.from_storage(config.storage)
    behind = False
    try:
        for history in found:
            label = f"{', '.join(history.instances)} ({history.plugin_type})"
            head = history.migrations.head()
            try:
                before = await history.migrations.current(resources.engine())
                if check:
                    state = "up to date" if before == head else "behind"
                    behind = behind or before != head
                    print(f"{label}: at {before or 'nothing'}, head {head}: {state}")
                    continue
                await history.migrations.upgrade(resources.engine())
                after = await history.migrations.current(resources.engine())
            except (SQLAlchemyError, OSError) as error:
                # The type only: driver messages may quote the connection URL.
                raise CliError(f"{label}: migration failed ({type(error).__name__})", BEHIND) from None
            change = "already at head" if before == after else f"upgraded from {before or 'nothing'}"
            print(f"{label}: at {after} ({change})")
    finally:
        await resources.aclose()
    return BEHIND if behind else 0
