"""`authcore keys ...`: the key admin API from the command line.

Each command builds the gateway app from the configuration in this process,
starts it (migrations included), and calls the plugin's own admin routes through
an in-process ASGI transport with the configured master key. Validation, hashing,
cache and Redis invalidation are therefore exactly the admin API's. Output is the
API's JSON response; a raw key appears only in what `create` and `rotate` print.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from authcore.cli.admin_api import call_admin_api, instance_config, response_json, select_instance
from authcore.cli.common import USAGE_ERROR, CliError, load_cli_config
from authcore.config import AuthcoreConfig
from authcore.gateway.settings import CONFIG_ENV

PLUGIN_TYPE = "virtual_keys"
"""Exit code when the admin API refused the request (the message says why)."""

Call = tuple[str, str, dict[str, Any]]
"""(method, path, JSON body or query parameters)."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "keys", help="manage virtual keys", description="Manage virtual keys through the admin API, in process."
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="FILE", help="authcore.yaml (default: $AUTHCORE_CONFIG, else the embedded default)"
    )
    common.add_argument("--instance", metavar="NAME", help="the virtual_keys instance (default: the only one)")
    ref_help = "the key's token (hash), or the key itself; '-' reads it from stdin"

    create = actions.add_parser("create", parents=[common], help="create a key; prints it once")
    _key_fields(create)
    create.set_defaults(handler=_handler(_create))

    listing = actions.add_parser("list", parents=[common], help="list keys (tokens, or full objects with --full)")
    listing.add_argument("--team-id")
    listing.add_argument("--alias")
    listing.add_argument("--page", type=int, default=1)
    listing.add_argument("--size", type=int, default=100)
    listing.add_argument("--full", action="store_true", help="whole key objects instead of tokens")
    listing.set_defaults(handler=_handler(_list))

    info = actions.add_parser("info", parents=[common], help="show one key")
    info.add_argument("key", metavar="KEY_OR_TOKEN", help=ref_help)
    info.set_defaults(handler=_handler(_info))

    update = actions.add_parser("update", parents=[common], help="change a key's settings")
    update.add_argument("key", metavar="TOKEN", help=ref_help)
    _key_fields(update)
    update.set_defaults(handler=_handler(_update))

    for name, path, text in (
        ("block", "/key/block", "block a key (403 until unblocked)"),
        ("unblock", "/key/unblock", "unblock a key"),
    ):
        action = actions.add_parser(name, parents=[common], help=text)
        action.add_argument("key", metavar="TOKEN", help=ref_help)
        action.set_defaults(handler=_handler(_by_ref(path)))

    delete = actions.add_parser("delete", parents=[common], help="delete a key")
    delete.add_argument("key", metavar="TOKEN", help=ref_help)
    delete.set_defaults(handler=_handler(_delete))

    rotate = actions.add_parser("rotate", parents=[common], help="replace a key's value; prints the new key once")
    rotate.add_argument("key", metavar="TOKEN", help=ref_help)
    rotate.add_argument("--grace-period", metavar="DURATION", help="keep the old value working this long, e.g. 24h")
    rotate.set_defaults(handler=_handler(_rotate))


def _key_fields(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", metavar="A,B", help="allowed models, comma-separated ('' = all)")
    parser.add_argument("--duration", help="lifetime from now, e.g. 30d; -1 for no expiry")
    parser.add_argument("--alias", help="key_alias")
    parser.add_argument("--team-id")
    parser.add_argument("--max-budget", type=float)
    parser.add_argument("--metadata", metavar="JSON", help="a JSON object")


# -- building the admin calls ------------------------------------------------------------------------------


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if args.models is not None:
        body["models"] = [model.strip() for model in args.models.split(",") if model.strip()]
    if args.metadata is not None:
        try:
            metadata = json.loads(args.metadata)
        except ValueError:
            raise CliError("--metadata is not valid JSON") from None
        if not isinstance(metadata, dict):
            raise CliError("--metadata must be a JSON object")
        body["metadata"] = metadata
    for option, field in (
        ("duration", "duration"),
        ("alias", "key_alias"),
        ("team_id", "team_id"),
        ("max_budget", "max_budget"),
    ):
        value = getattr(args, option)
        if value is not None:
            body[field] = value
    return body


def _reference(args: argparse.Namespace) -> str:
    value: str = args.key
    if value == "-":
        # Keeps a raw key out of the shell history and the process list.
        value = sys.stdin.readline()
    value = value.strip()
    if not value:
        raise CliError("no key or token given")
    return value


def _create(args: argparse.Namespace) -> Call:
    return "POST", "/key/generate", _fields(args)


def _list(args: argparse.Namespace) -> Call:
    query: dict[str, Any] = {"page": args.page, "size": args.size}
    if args.team_id is not None:
        query["team_id"] = args.team_id
    if args.alias is not None:
        query["key_alias"] = args.alias
    if args.full:
        query["return_full_object"] = "true"
    return "GET", "/key/list", query


def _info(args: argparse.Namespace) -> Call:
    return "POST", "/key/info", {"key": _reference(args)}


def _update(args: argparse.Namespace) -> Call:
    return "POST", "/key/update", {"key": _reference(args), **_fields(args)}


def _by_ref(path: str) -> Callable[[argparse.Namespace], Call]:
    def build(args: argparse.Namespace) -> Call:
        return "POST", path, {"key": _reference(args)}

    return build


def _delete(args: argparse.Namespace) -> Call:
    return "POST", "/key/delete", {"keys": [_reference(args)]}


def _rotate(args: argparse.Namespace) -> Call:
    body: dict[str, Any] = {"key": _reference(args)}
    if args.grace_period is not None:
        body["grace_period"] = args.grace_period
    return "POST", "/key/regenerate", body


# -- running them ------------------------------------------------------------------------------------------


def _handler(build: Callable[[argparse.Namespace], Call]) -> Callable[[argparse.Namespace], int]:
    def handle(args: argparse.Namespace) -> int:
        call = build(args)
        path: str | None = args.config or os.environ.get(CONFIG_ENV) or None
        config = load_cli_config(path)
        instance = select_instance(config, PLUGIN_TYPE, args.instance)
        master = _master_key(config, instance)
        result = asyncio.run(_call(config, master, call))
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0

    return handle


def _master_key(config: AuthcoreConfig, instance: str) -> str:
    """The instance's master key from its validated settings (environment references resolved)."""
    master = getattr(instance_config(config, instance), "master_key", None)
    if master is None:
        raise CliError(
            f"{config.source}: instance {instance!r} has no master_key; `authcore keys` needs one",
            USAGE_ERROR,
        )
    value: str = master.get_secret_value()
    return value


async def _call(config: AuthcoreConfig, master: str, call: Call) -> Any:
    method, path, payload = call
    return response_json(await call_admin_api(config, master, method, path, payload), path)
