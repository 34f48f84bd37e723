"""What every command shares: errors that end the command, and configuration loading."""

from __future__ import annotations

from authcore.config import AuthcoreConfig
from authcore.gateway.settings import load_gateway_config

USAGE_ERROR = 2
"""Exit code for a bad command line or a configuration that cannot be used."""


class CliError(Exception):
    """Ends the command with a one-line message on stderr and `exit_code`."""

    def __init__(self, message: str, exit_code: int = USAGE_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def one_line(message: str) -> str:
    """Multi-problem messages (one line per key path) joined for a single stderr line."""
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


def load_cli_config(path: str | None) -> AuthcoreConfig:
    """The file given with --config, or the embedded default."""
    return load_gateway_config(path)
