"""No-op plugins, one per decision stage, and the pipelines the benchmarks build from them.

Every hook returns a constant, so a benchmark of these pipelines measures the
runner itself: ordering, timeouts, tracing and result building.
"""

from __future__ import annotations

from typing import Any

from authcore import Credentials, EmptyConfig, Identity, Plugin, RequestContext, hookimpl
from authcore.config import AuthcoreConfig, parse_config
from authcore.loader import TypeResolver, mapping_resolver
from authcore.runner import Runner

API_KEY = "sk-bench-0000000000000000000000000000"
"""A fixed, fake key: no plugin here checks it."""

_CREDENTIALS = Credentials.of("api_key", API_KEY, "authorization")


class AsyncExtract(Plugin[EmptyConfig]):
    @hookimpl
    async def extract_credentials(self, request: RequestContext) -> Credentials | None:
        return _CREDENTIALS


class AsyncCustom(Plugin[EmptyConfig]):
    @hookimpl
    async def custom_auth(self, request: RequestContext, credentials: Credentials | None) -> Identity | None:
        return None


class AsyncResolve(Plugin[EmptyConfig]):
    def __init__(self, name: str, config: EmptyConfig) -> None:
        super().__init__(name, config)
        # Built once, already attributed to this instance, so the runner returns it as is.
        self.identity = Identity(auth_method="api_key", plugin=name, user_id="bench-user", key_id="bench")

    @hookimpl
    async def resolve_identity(self, request: RequestContext, credentials: Credentials) -> Identity | None:
        return self.identity


class AsyncChecks(Plugin[EmptyConfig]):
    @hookimpl
    async def post_checks(self, request: RequestContext, identity: Identity) -> None:
        return None


class AsyncBudget(Plugin[EmptyConfig]):
    @hookimpl
    async def reserve_budget(self, request: RequestContext, identity: Identity) -> None:
        return None


class SyncExtract(Plugin[EmptyConfig]):
    cpu_only = True

    @hookimpl
    def extract_credentials(self, request: RequestContext) -> Credentials | None:
        return _CREDENTIALS


class SyncCustom(Plugin[EmptyConfig]):
    cpu_only = True

    @hookimpl
    def custom_auth(self, request: RequestContext, credentials: Credentials | None) -> Identity | None:
        return None


class SyncResolve(Plugin[EmptyConfig]):
    cpu_only = True

    def __init__(self, name: str, config: EmptyConfig) -> None:
        super().__init__(name, config)
        self.identity = Identity(auth_method="api_key", plugin=name, user_id="bench-user", key_id="bench")

    @hookimpl
    def resolve_identity(self, request: RequestContext, credentials: Credentials) -> Identity | None:
        return self.identity


class SyncChecks(Plugin[EmptyConfig]):
    cpu_only = True

    @hookimpl
    def post_checks(self, request: RequestContext, identity: Identity) -> None:
        return None


class SyncBudget(Plugin[EmptyConfig]):
    cpu_only = True

    @hookimpl
    def reserve_budget(self, request: RequestContext, identity: Identity) -> None:
        return None


class AsyncSingle(Plugin[EmptyConfig]):
    """One plugin that decides alone: `custom_auth` returns the identity, nothing else runs."""

    def __init__(self, name: str, config: EmptyConfig) -> None:
        super().__init__(name, config)
        self.identity = Identity(auth_method="custom", plugin=name, user_id="bench-user", key_id="bench")

    @hookimpl
    async def custom_auth(self, request: RequestContext, credentials: Credentials | None) -> Identity | None:
        return self.identity


TYPES: dict[str, type[Plugin[Any]]] = {
    "noop_extract": AsyncExtract,
    "noop_custom": AsyncCustom,
    "noop_resolve": AsyncResolve,
    "noop_checks": AsyncChecks,
    "noop_budget": AsyncBudget,
    "noop_extract_sync": SyncExtract,
    "noop_custom_sync": SyncCustom,
    "noop_resolve_sync": SyncResolve,
    "noop_checks_sync": SyncChecks,
    "noop_budget_sync": SyncBudget,
    "noop_single": AsyncSingle,
}

_STAGES = ("extract", "custom", "resolve", "checks", "budget")


def resolver() -> TypeResolver:
    return mapping_resolver(TYPES)


def five_plugin_config(*, sync: bool = False) -> AuthcoreConfig:
    """Five instances, one per decision stage; the built-in header extractor is left out."""
    suffix = "_sync" if sync else ""
    return parse_config(
        {
            "plugins": {stage: {"use": f"noop_{stage}{suffix}"} for stage in _STAGES},
            "pipeline": {
                "extract_credentials": ["extract"],
                "custom_auth": ["custom"],
                "resolve_identity": ["resolve"],
                "post_checks": ["checks"],
                "reserve_budget": ["budget"],
            },
        },
        source="<bench:five>",
    )


def one_plugin_config() -> AuthcoreConfig:
    """A single instance whose `custom_auth` returns the identity; no extractor runs."""
    return parse_config(
        {"plugins": {"single": {"use": "noop_single"}}, "pipeline": {"extract_credentials": []}},
        source="<bench:one>",
    )


def five_plugin_runner(*, sync: bool = False) -> Runner:
    return Runner.from_config(five_plugin_config(sync=sync), resolver())


def one_plugin_runner() -> Runner:
    return Runner.from_config(one_plugin_config(), resolver())
