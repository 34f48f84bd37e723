"""Subcommands contributed by installed distributions through the `authcore.cli` entry-point group.

An entry point's name is the command's name; its value names an object (usually
a module) with `register(commands)`, which adds exactly that one subparser, as
`authcore/cli/serve.py` does. Extensions add commands only: they never take part
in authentication, so a broken one is reported and skipped rather than stopping
the CLI.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Collection
from importlib.metadata import EntryPoint, entry_points

ENTRY_POINT_GROUP = "authcore.cli"

Warn = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def register_extensions(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], *, reserved: Collection[str], warn: Warn = _stderr
) -> list[str]:
    """Add every installed extension command not named in `reserved`; return the names added.

    Each problem (a clash, an import error, a failing `register`, a command
    registered under another name) is one `warn` line, and that extension is skipped.
    """
    added: list[str] = []
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name, ep.value)):
        origin = _origin(entry)
        if entry.name in reserved:
            warn(f"authcore: warning: command {entry.name!r} from {origin} refused: it is a built-in command")
            continue
        if entry.name in commands._name_parser_map:
            warn(f"authcore: warning: command {entry.name!r} from {origin} refused: another extension registered it")
            continue
        problem = _register(commands, entry)
        if problem is None:
            added.append(entry.name)
        else:
            warn(f"authcore: warning: command {entry.name!r} from {origin} skipped: {problem}")
    return added


def _register(commands: argparse._SubParsersAction[argparse.ArgumentParser], entry: EntryPoint) -> str | None:
    """Run the extension's `register`; undo what it added and describe the problem if it misbehaved."""
    before = dict(commands._name_parser_map)
    help_rows = list(commands._choices_actions)
    try:
        target = entry.load()
        register = getattr(target, "register", None)
        if not callable(register):
            return f"{entry.value} has no register(commands) function"
        register(commands)
    except Exception as error:  # noqa: BLE001 - a broken extension must not take the CLI down
        _restore(commands, before, help_rows)
        # ImportError messages name modules; other messages might quote anything, so only the type is shown.
        detail = f": {error}" if isinstance(error, ImportError) else ""
        return f"{type(error).__name__}{detail}"
    new = set(commands._name_parser_map) - set(before)
    replaced = [name for name, parser in before.items() if commands._name_parser_map.get(name) is not parser]
    if new != {entry.name} or replaced:
        _restore(commands, before, help_rows)
        named = ", ".join(sorted(new | set(replaced))) or "nothing"
        return f"register() must add exactly the command {entry.name!r}, it added {named}"
    return None


def _restore(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    choices: dict[str, argparse.ArgumentParser],
    help_rows: list[argparse.Action],
) -> None:
    commands._name_parser_map.clear()
    commands._name_parser_map.update(choices)
    commands._choices_actions[:] = help_rows


def _origin(entry: EntryPoint) -> str:
    dist = entry.dist
    return dist.metadata["Name"] if dist is not None else entry.value
