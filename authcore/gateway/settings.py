"""Which configuration the gateway runs with, and how its plugin types are found."""

from __future__ import annotations

import os
from importlib import resources

import yaml

from authcore.config import AuthcoreConfig, load_config, parse_config
from authcore.errors import ConfigurationError
from authcore.loader import PluginType, TypeResolver, entry_point_resolver

CONFIG_ENV = "AUTHCORE_CONFIG"
"""Environment variable holding the configuration path for `create_app_from_env` (and its workers)."""

DEFAULT_SOURCE = "<embedded default config>"


def default_config() -> AuthcoreConfig:
    """The configuration shipped as `authcore/gateway/default.yaml`."""
    text = resources.files("authcore.gateway").joinpath("default.yaml").read_text(encoding="utf-8")
    return parse_config(yaml.safe_load(text), DEFAULT_SOURCE)


def load_gateway_config(path: str | os.PathLike[str] | None) -> AuthcoreConfig:
    """The file at `path`, or the embedded default when `path` is `None` or empty."""
    if path is None or str(path) == "":
        return default_config()
    return load_config(path)


def config_from_env() -> AuthcoreConfig:
    """The configuration named by `AUTHCORE_CONFIG`, or the embedded default when it is unset."""
    return load_gateway_config(os.environ.get(CONFIG_ENV))


def gateway_resolver(config: AuthcoreConfig) -> TypeResolver:
    """Entry-point resolution, read on first use; for the default config, errors say how to fix them."""
    resolver: TypeResolver | None = None

    def resolve(type_name: str) -> PluginType:
        nonlocal resolver
        try:
            if resolver is None:
                resolver = entry_point_resolver()
            return resolver(type_name)
        except ConfigurationError as error:
            if config.source != DEFAULT_SOURCE:
                raise
            distribution = "authcore-" + type_name.replace("_", "-")
            raise ConfigurationError(
                f"{error}; the embedded default configuration needs it: install it "
                f"(e.g. `uv pip install {distribution}`) or pass --config FILE"
            ) from None

    return resolve
