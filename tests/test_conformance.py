"""The conformance suite passes a well-behaved plugin and catches each kind of misbehaving one."""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr

from authcore import (
    Credentials,
    Identity,
    InvalidCredentials,
    MalformedCredentials,
    Plugin,
    RequestContext,
    hookimpl,
)
from authcore.errors import ConfigurationError
from authcore.testing import make_request
from authcore.testing.conformance import PluginConformance

HEADER = "x-good-key"


class GoodConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_secret: SecretStr
    user_id: str = "good-user"


class Good(Plugin[GoodConfig]):
    """Reads its own header; the key `slow` makes resolution wait on I/O."""

    Config = GoodConfig

    @hookimpl
    async def extract_credentials(self, request: RequestContext) -> Credentials | None:
        value = request.headers.get(HEADER)
        if value is None:
            return None
        if not value or not value.isascii() or not value.isprintable():
            raise MalformedCredentials(reason_id="bad_good_key")
        return Credentials.of("good", value, HEADER)

    @hookimpl
    async def resolve_identity(self, credentials: Credentials) -> Identity | None:
        if credentials.kind != "good":
            return None
        if credentials.reveal() == "slow":
            await asyncio.sleep(5)
        expected = self.config.api_secret.get_secret_value().encode()
        if hmac.compare_digest(credentials.reveal().encode("utf-8", "surrogatepass"), expected):
            return Identity(auth_method="good", user_id=self.config.user_id)
        raise InvalidCredentials(reason_id="unknown_good_key")


class TestGoodConformance(PluginConformance):
    plugin_class = Good
    config: ClassVar[dict[str, Any]] = {"api_secret": "good-secret-value", "user_id": "alice"}
    secret_config_fields = ("api_secret",)

    def slow_request(self) -> RequestContext | None:
        return make_request(headers={HEADER: "slow"})


# -- plugins that each break one rule; their suites are run by hand below ----


class Crashes(Good):
    @hookimpl
    async def resolve_identity(self, credentials: Credentials) -> Identity | None:
        credentials.reveal().encode("ascii")  # UnicodeEncodeError on non-ASCII garbage
        raise InvalidCredentials()


class LeakyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_secret: str


class Leaky(Plugin[LeakyConfig]):
    Config = LeakyConfig

    def __repr__(self) -> str:
        return f"<Leaky {self.config.api_secret}>"


class LooseConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    api_secret: SecretStr


class Loose(Plugin[LooseConfig]):
    Config = LooseConfig


class Greedy(Good):
    @hookimpl
    async def custom_auth(self, credentials: Credentials | None) -> Identity | None:
        return Identity(auth_method="custom")


class Blocks(Good):
    @hookimpl
    async def resolve_identity(self, credentials: Credentials) -> Identity | None:
        time.sleep(0.5)  # blocking the loop: no timeout can interrupt this
        return None


class SyncHooks(Plugin[GoodConfig]):
    Config = GoodConfig

    @hookimpl
    def resolve_identity(self, credentials: Credentials) -> Identity | None:
        return None


class CpuOnlySyncHooks(SyncHooks):
    cpu_only = True


class WrongType(Good):
    @hookimpl
    async def extract_credentials(self, request: RequestContext) -> Credentials | None:
        return request.headers.get("authorization")  # type: ignore[return-value]


def suite(plugin: type[Plugin[Any]], **attributes: Any) -> PluginConformance:
    attributes.setdefault("config", {"api_secret": "good-secret-value"})
    attributes.setdefault("secret_config_fields", ("api_secret",))
    cls = type(f"Suite{plugin.__name__}", (PluginConformance,), {"plugin_class": plugin, **attributes})
    return cls()  # type: ignore[no-any-return]


def test_crash_on_garbage_is_reported_with_hook_and_case() -> None:
    with pytest.raises(AssertionError, match=r"resolve_identity on credential:non_ascii: raised UnicodeEncodeError"):
        suite(Crashes).test_garbage_input_raises_only_authcore_errors()


def test_wrong_return_type_on_garbage_is_reported() -> None:
    with pytest.raises(AssertionError, match=r"extract_credentials on huge_header: returned str"):
        suite(WrongType).test_garbage_input_raises_only_authcore_errors()


def test_plain_string_secret_is_caught() -> None:
    with pytest.raises(AssertionError, match=r"api_secret in repr\(config\).*repr\(instance\)"):
        suite(Leaky).test_secrets_are_redacted()


def test_short_test_secrets_are_refused() -> None:
    with pytest.raises(AssertionError, match="at least 8 characters"):
        suite(Good, config={"api_secret": "abc"}).test_secrets_are_redacted()


def test_config_without_extra_forbid_is_refused() -> None:
    checks = suite(Loose)
    with pytest.raises(ConfigurationError, match="extra='forbid'"):
        checks.test_plugin_type_is_accepted()
    with pytest.raises(pytest.fail.Exception):
        checks.test_config_rejects_unknown_keys()


def test_invalid_config_fails_with_the_location() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"under_test\.config\.api_secret"):
        suite(Good, config={}).test_config_validates()


def test_plugin_claiming_requests_without_credentials_is_caught() -> None:
    with pytest.raises(AssertionError, match="custom_auth returned Identity instead of None"):
        suite(Greedy).test_hooks_abstain_without_credentials()


def test_hook_blocking_the_event_loop_fails_the_timeout_check() -> None:
    checks = suite(
        Blocks,
        timeout_slack_s=0.2,
        slow_request=lambda self: make_request(headers={HEADER: "good-secret-value"}),
    )
    with pytest.raises(AssertionError, match="blocks the event loop"):
        checks.test_timeout_is_honoured()


def test_sync_hooks_need_a_declaration() -> None:
    with pytest.raises(AssertionError, match=r"resolve_identity is a plain function"):
        suite(SyncHooks).test_hooks_are_async_or_cpu_only()
    suite(CpuOnlySyncHooks).test_hooks_are_async_or_cpu_only()


def test_timeout_check_is_skipped_without_a_slow_request() -> None:
    with pytest.raises(pytest.skip.Exception):
        suite(Good).test_timeout_is_honoured()
