"""`authcore plugins list|doctor|schema`."""

from __future__ import annotations

import argparse
import json

from authcore.cli import doctor
from authcore.cli.common import CliError, load_cli_config
from authcore.cli.plugin_types import load_type
from authcore.loader import installed_plugins


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("plugins", help="inspect plugin types", description="Inspect plugin types.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="installed plugin types and the hooks they implement")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.add_argument("--config", metavar="FILE", help="mark the types this configuration uses")
    listing.set_defaults(handler=run_list)

    check = actions.add_parser("doctor", help="check a configuration and the installed plugins")
    check.add_argument("--config", metavar="FILE", help="authcore.yaml (default: the embedded default)")
    check.set_defaults(handler=doctor.run)

    schema = actions.add_parser("schema", help="JSON schema of a plugin type's config")
    schema.add_argument("name", metavar="NAME", help="the plugin type (entry-point name)")
    schema.set_defaults(handler=run_schema)


def run_list(args: argparse.Namespace) -> int:
    used_by: dict[str, list[str]] = {}
    if args.config:
        for instance, spec in load_cli_config(args.config).plugins.items():
            used_by.setdefault(spec.use, []).append(instance)
    loaded = [load_type(row) for row in installed_plugins()]
    if args.json:
        rows = [
            {
                "name": item.row.name,
                "distribution": item.row.distribution,
                "version": item.row.version,
                "hooks": item.hooks,
                "used_by": used_by.get(item.row.name, []),
                "error": item.error,
            }
            for item in loaded
        ]
        print(json.dumps(rows, indent=2))
        return 0
    table = [("NAME", "DISTRIBUTION", "VERSION", "HOOKS", "USED BY", "ERROR")]
    table += [
        (
            item.row.name,
            item.row.distribution or "-",
            item.row.version or "-",
            ",".join(item.hooks) or "-",
            ",".join(used_by.get(item.row.name, [])) or "-",
            item.error or "",
        )
        for item in loaded
    ]
    widths = [max(len(line[column]) for line in table) for column in range(5)]
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line[:5], widths, strict=True)]
        print("  ".join([*cells, line[5]]).rstrip())
    return 0


def run_schema(args: argparse.Namespace) -> int:
    matches = [row for row in installed_plugins() if row.name == args.name]
    if not matches:
        raise CliError(f"no plugin type named {args.name!r} is installed (see `authcore plugins list`)")
    if len(matches) > 1:
        dists = ", ".join(str(row.distribution) for row in matches)
        raise CliError(f"plugin type {args.name!r} is registered by more than one distribution: {dists}")
    loaded = load_type(matches[0])
    if loaded.plugin_type is None:
        raise CliError(f"plugin type {args.name!r}: {loaded.error}", exit_code=1)
    print(json.dumps(loaded.plugin_type.Config.model_json_schema(), indent=2))
    return 0
