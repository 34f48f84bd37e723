"""`authcore.yaml`: loading, secret references, validation with precise error locations."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from authcore.errors import ConfigurationError
from authcore.route_policy import check_patterns

_ENV_PREFIX = "os.environ/"
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

BUILTIN_EXTRACTOR = "headers"
"""The credential extractor shipped in the core; see `authcore.credentials`."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PluginInstance(_Strict):
    """One configured use of a plugin type."""

    use: str = Field(description="The plugin type: its entry-point name in the `authcore.plugins` group.")
    timeout_s: float = Field(
        default=1.0, gt=0, le=60, description="Deadline for each hook call; a timeout denies with 503."
    )
    config: dict[str, Any] = Field(default_factory=dict, description="The plugin's own settings.")


class Pipeline(_Strict):
    """Order of instances per stage. A stage left out runs, in declaration order, every instance implementing it."""

    extract_credentials: list[str] | None = None
    custom_auth: list[str] | None = None
    resolve_identity: list[str] | None = None
    post_checks: list[str] | None = None
    reserve_budget: list[str] | None = None


class Routes(_Strict):
    """Route access rules. A pattern is an exact path, or a prefix ending in `/*`."""

    public: list[str] = Field(
        default_factory=lambda: ["/health/*"],
        description="Paths served without authentication.",
    )
    admin: list[str] = Field(default_factory=list, description="Paths that need a proxy_admin identity.")

    @field_validator("public", "admin")
    @classmethod
    def _patterns_are_paths(cls, patterns: list[str]) -> list[str]:
        check_patterns(patterns)
        return patterns


class Storage(_Strict):
    """Shared stores. Without `redis_url`, state stays in this process (the embedded default)."""

    database_url: SecretStr = Field(
        default=SecretStr("sqlite+aiosqlite:///authcore.db"),
        description="SQLAlchemy async URL; `postgresql+asyncpg://...` for production.",
    )
    redis_url: SecretStr | None = Field(
        default=None, description="Redis URL shared by all replicas, e.g. redis://127.0.0.1:6379/0."
    )
    redis_prefix: str = Field(default="authcore:", description="Prefix of every Redis key authcore writes.")


class Gateway(_Strict):
    """The demo gateway served by `authcore serve`."""

    upstream_url: str | None = Field(
        default=None, description="OpenAI-compatible upstream to proxy to; unset uses the built-in mock."
    )
    upstream_api_key: SecretStr | None = Field(
        default=None, description="Key sent to the upstream instead of the client's."
    )
    upstream_timeout_s: float = Field(default=60.0, gt=0)
    mock_models: list[str] = Field(default_factory=lambda: ["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet"])


class AuthcoreConfig(_Strict):
    """The whole configuration file. Plugin `config` blocks are kept unresolved; see `authcore.loader`."""

    source: str = Field(default="<config>", exclude=True, description="Where this configuration was read from.")

    plugins: dict[str, PluginInstance] = Field(default_factory=dict)
    pipeline: Pipeline = Field(default_factory=Pipeline)
    routes: Routes = Field(default_factory=Routes)
    storage: Storage = Field(default_factory=Storage)
    gateway: Gateway = Field(default_factory=Gateway)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0, description="Largest request body plugins may read.")
    log_decisions: bool = Field(default=False, description="Log every decision trace at INFO (never contains secrets).")
    tune_gc_after_startup: bool = Field(
        default=True,
        description="Once started: gc.freeze() the start-up heap and raise the young-generation threshold to 10,000.",
    )

    @field_validator("plugins")
    @classmethod
    def _instance_names(cls, plugins: dict[str, PluginInstance]) -> dict[str, PluginInstance]:
        for name in plugins:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,63}", name):
                raise ValueError(f"instance name {name!r} must be a letter then letters, digits, '_', '.' or '-'")
        return plugins

    def with_builtin_extractor(self) -> AuthcoreConfig:
        """Add the `headers` instance when the config names it but does not define it."""
        stage = self.pipeline.extract_credentials
        wanted = stage is None or BUILTIN_EXTRACTOR in stage
        if BUILTIN_EXTRACTOR in self.plugins or not wanted:
            return self
        plugins = {BUILTIN_EXTRACTOR: PluginInstance(use=BUILTIN_EXTRACTOR), **self.plugins}
        return self.model_copy(update={"plugins": plugins})


def format_location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "<root>"


def validation_problem(source: str, prefix: tuple[str, ...], error: ValidationError) -> ConfigurationError:
    """A `ConfigurationError` naming the file, each key path and its problem (never the bad value)."""
    lines = [f"{source}: {format_location(prefix + tuple(item['loc']))}: {item['msg']}" for item in error.errors()]
    return ConfigurationError("\n".join(lines))


def _is_plugin_config(path: tuple[str, ...]) -> bool:
    # Plugin configs are resolved by the loader, straight into the plugin's own
    # model, so their secrets never sit as plain strings in `AuthcoreConfig`.
    return len(path) == 3 and path[0] == "plugins" and path[2] == "config"


def resolve_references(value: Any, source: str, path: tuple[str, ...] = (), *, top_level: bool = False) -> Any:
    """Replace `os.environ/NAME` values and `${NAME}` fragments with environment variables.

    With `top_level`, plugin `config` blocks are left as written.
    """
    if top_level and _is_plugin_config(path):
        return value
    if isinstance(value, Mapping):
        return {
            key: resolve_references(item, source, (*path, str(key)), top_level=top_level) for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            resolve_references(item, source, (*path, str(index)), top_level=top_level)
            for index, item in enumerate(value)
        ]
    if not isinstance(value, str):
        return value
    if value.startswith(_ENV_PREFIX):
        return _env(value[len(_ENV_PREFIX) :], source, path)
    if "${" in value:
        return _INTERPOLATION.sub(lambda match: _env(match.group(1), source, path), value)
    return value


def _env(name: str, source: str, path: tuple[str, ...]) -> str:
    found = os.environ.get(name)
    if found is None:
        raise ConfigurationError(f"{source}: {format_location(path)}: environment variable {name} is not set")
    return found


def parse_config(data: Any, source: str = "<config>") -> AuthcoreConfig:
    """Validate already-loaded YAML data (references resolved here)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{source}: <root>: expected a mapping at the top level")
    resolved = resolve_references(data, source, top_level=True)
    try:
        config = AuthcoreConfig.model_validate({**resolved, "source": source})
    except ValidationError as error:
        raise validation_problem(source, (), error) from None
    return config.with_builtin_extractor()


def load_config(path: str | os.PathLike[str]) -> AuthcoreConfig:
    """Read and validate a YAML configuration file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(f"{source}: cannot read: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<root>"
        raise ConfigurationError(f"{source}: {where}: invalid YAML") from None
    return parse_config(data, source)
