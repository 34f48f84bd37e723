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

from authcore.cli.admin_api import call_admin_api, instance_config, response_json, select_instance
from authcore.cli.common import USAGE_ERROR, CliError, load_cli_config
from authcore.config import AuthcoreConfig
from authcore.gateway.settings import CONFIG_ENV
from authcore_budgets.entities import ENTITIES

PLUGIN_TYPE = "budgets"
KEYS_PLUGIN_TYPE = "virtual_keys"
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
    select_instance(config, PLUGIN_TYPE, args.instance)
    master = _master_key(config)
    body = asyncio.run(_info(config, master, entity, entity_id))
    print(json.dumps(body, indent=2, sort_keys=True))
    return 0


def _master_key(config: AuthcoreConfig) -> str:
    """The master key of the configured `virtual_keys` instance (environment references resolved)."""
    names = [name for name, spec in config.plugins.items() if spec.use == KEYS_PLUGIN_TYPE]
    if len(names) != 1:
        raise CliError(
            f"{config.source}: `authcore spend` needs exactly one {KEYS_PLUGIN_TYPE} instance with a master_key "
            f"(found: {', '.join(names) or 'none'})"
        )
    master = getattr(instance_config(config, names[0]), "master_key", None)
    if master is None:
        raise CliError(f"{config.source}: instance {names[0]!r} has no master_key; `authcore spend` needs one")
    value: str = master.get_secret_value()
    return value


async def _info(config: AuthcoreConfig, master: str, entity: str, entity_id: str) -> Any:
    path = "/budget/info"
    response = await call_admin_api(config, master, "GET", path, {"entity": entity, "id": entity_id})
    if response.status_code == 404:
        raise CliError(
            f"{config.source}: no budgets admin API is mounted (is the budgets plugin enabled?)", USAGE_ERROR
        )
    return response_json(response, path)
