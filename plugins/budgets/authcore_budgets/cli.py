"""`authcore spend`: spend, reserved, remaining and reset time of each budget of one entity.

The command builds the gateway app from the configuration in this process,
starts it, and calls the budgets plugin's `GET /budget/info` through an
in-process ASGI transport with the `virtual_keys` master key. The numbers are
therefore exactly the admin API's: shared Redis counters when `storage.redis_url`
is set; with the in-process store, this process's counters rebuilt from the
ledger (a running gateway holds the store's lock, so the command then refuses
with the plugin's message instead of showing stale numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

import httpx

from authcore.cli.common import USAGE_ERROR, CliError, load_cli_config
from authcore.config import AuthcoreConfig
from authcore.gateway.app import create_app
from authcore.gateway.settings import CONFIG_ENV, gateway_resolver
from authcore.runner import Runner
from authcore_budgets.entities import ENTITIES

PLUGIN_TYPE = "budgets"
KEYS_PLUGIN_TYPE = "virtual_keys"
API_ERROR = 1
"""Exit code when the admin API refused the request (the message says why)."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "spend",
        help="show budget spend",
        description="Show spend, reserved, remaining and reset time of each budget of one entity (JSON).",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="authcore.yaml (default: $AUTHCORE_CONFIG, else the embedded default)"
    )
    parser.add_argument("--instance", metavar="NAME", help="the budgets instance (default: the only one)")
    parser.add_argument("--entity", choices=ENTITIES, default="global", help="default: global")
    parser.add_argument("--id", metavar="ID", help="the entity's id (team_member: TEAM/USER); not for global")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    entity: str = args.entity
    entity_id: str | None = args.id
    if entity == "global":
        if entity_id not in (None, "global"):
            raise CliError("--id is not used with --entity global")
        entity_id = "global"
    elif not entity_id:
        raise CliError(f"--id is required with --entity {entity}")
    path: str | None = args.config or os.environ.get(CONFIG_ENV) or None
    config = load_cli_config(path)
    _instance(config, PLUGIN_TYPE, args.instance)
    master = _master_key(config)
    body = asyncio.run(_info(config, master, entity, entity_id))
    print(json.dumps(body, indent=2, sort_keys=True))
    return 0


def _instance(config: AuthcoreConfig, plugin_type: str, wanted: str | None) -> str:
    names = [name for name, spec in config.plugins.items() if spec.use == plugin_type]
    if wanted is not None:
        if wanted not in names:
            raise CliError(f"{config.source}: no {plugin_type} instance named {wanted!r} (found: {_listed(names)})")
        return wanted
    if len(names) != 1:
        raise CliError(
            f"{config.source}: {len(names)} {plugin_type} instances ({_listed(names)}); pick one with --instance"
        )
    return names[0]


def _listed(names: list[str]) -> str:
    return ", ".join(names) or "none"


def _master_key(config: AuthcoreConfig) -> str:
    """The master key of the configured `virtual_keys` instance (environment references resolved)."""
    names = [name for name, spec in config.plugins.items() if spec.use == KEYS_PLUGIN_TYPE]
    if len(names) != 1:
        raise CliError(
            f"{config.source}: `authcore spend` needs exactly one {KEYS_PLUGIN_TYPE} instance with a master_key "
            f"(found: {_listed(names)})"
        )
    # Building the runner validates every instance's settings without touching a database.
    runner = Runner.from_config(config, gateway_resolver(config))
    plugin = next(candidate for candidate in runner.instances if candidate.name == names[0])
    master = getattr(plugin.config, "master_key", None)
    if master is None:
        raise CliError(f"{config.source}: instance {names[0]!r} has no master_key; `authcore spend` needs one")
    value: str = master.get_secret_value()
    return value


async def _info(config: AuthcoreConfig, master: str, entity: str, entity_id: str) -> Any:
    app = create_app(config)
    headers = {"authorization": f"Bearer {master}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://authcore-cli") as client:
            response = await client.get("/budget/info", params={"entity": entity, "id": entity_id}, headers=headers)
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 404:
        raise CliError(
            f"{config.source}: no budgets admin API is mounted (is the budgets plugin enabled?)", USAGE_ERROR
        )
    if response.status_code >= 400:
        raise CliError(f"/budget/info answered {response.status_code}: {_message(body)}", API_ERROR)
    return body


def _message(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return str(message) if message else "no error message"
