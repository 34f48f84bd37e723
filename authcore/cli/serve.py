"""`authcore serve`: validate the configuration, then run the gateway under uvicorn."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from authcore.cli.access_log import logging_config
from authcore.cli.common import load_cli_config
from authcore.gateway.settings import CONFIG_ENV, gateway_resolver
from authcore.runner import Runner

APP_FACTORY = "authcore.gateway.app:create_app_from_env"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("serve", help="run the gateway", description="Run the authcore gateway.")
    parser.add_argument(
        "--config", metavar="FILE", help="authcore.yaml (default: $AUTHCORE_CONFIG, else the embedded default)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4000)
    parser.add_argument("--workers", type=_positive, default=1)
    parser.add_argument("--log-level", default="info", choices=LOG_LEVELS)
    parser.set_defaults(handler=run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def run(args: argparse.Namespace) -> int:
    path: str | None = args.config or os.environ.get(CONFIG_ENV) or None
    config = load_cli_config(path)
    # Imports every configured plugin type and validates its settings before a port is bound.
    Runner.from_config(config, gateway_resolver(config))
    if path is None:
        os.environ.pop(CONFIG_ENV, None)
    else:
        # Workers are fresh processes: they find the configuration through the environment.
        os.environ[CONFIG_ENV] = str(Path(path).resolve())

    import uvicorn

    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        log_config=logging_config(),
        lifespan="on",
    )
    return 0
