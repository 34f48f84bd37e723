"""The `authcore` command line."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from authcore.cli import explain, migrate, plugins_cmd, serve
from authcore.cli.common import USAGE_ERROR, CliError, one_line
from authcore.cli.extensions import register_extensions
from authcore.errors import ConfigurationError

__all__ = ["main"]

BUILT_IN_COMMANDS = frozenset({"serve", "plugins", "explain", "migrate"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authcore", description="A plugin-based, fail-closed auth gateway.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.register(commands)
    plugins_cmd.register(commands)
    explain.register(commands)
    migrate.register(commands)
    # Installed extensions come last, so they can never replace a built-in command.
    register_extensions(commands, reserved=BUILT_IN_COMMANDS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code. Errors are one line on stderr, never a traceback."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else USAGE_ERROR
    try:
        code: int = args.handler(args)
    except CliError as error:
        return _fail(str(error), error.exit_code)
    except ConfigurationError as error:
        return _fail(str(error), USAGE_ERROR)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): silence the flush at exit too.
        _detach_stdout()
        return 1
    except Exception as error:  # noqa: BLE001 - a CLI user gets a line, not a traceback
        # The type only: messages of arbitrary exceptions may quote a secret.
        return _fail(f"unexpected {type(error).__name__}", 1)
    return code


def _detach_stdout() -> None:
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _fail(message: str, code: int) -> int:
    print(f"authcore: error: {one_line(message)}", file=sys.stderr)
    return code
