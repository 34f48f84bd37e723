"""The sample third-party plugin: a real distribution, found through its entry point, loaded only when named."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from typing import Any, ClassVar

import pytest
from authcore_sample import StaticTokens

from authcore import Credentials
from authcore.config import parse_config
from authcore.errors import ConfigurationError
from authcore.loader import installed_plugins
from authcore.runner import Runner
from authcore.testing import assert_allowed, assert_denied, build_runner, make_request
from authcore.testing.conformance import PluginConformance

ALICE = "st-alice-0123456789abcdef"
BOB = "st-bob-fedcba9876543210"
TOKENS = {"alice": ALICE, "bob": BOB}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_installed_as_a_distribution_with_its_entry_point() -> None:
    rows = [row for row in installed_plugins() if row.name == "sample_static_tokens"]
    assert [(row.distribution, row.value) for row in rows] == [
        ("authcore-sample-plugin", "authcore_sample:StaticTokens")
    ]


async def test_loaded_through_the_entry_point_and_authenticates() -> None:
    config = parse_config(
        {"plugins": {"st": {"use": "sample_static_tokens", "config": {"tokens": TOKENS, "role": "internal_user"}}}}
    )
    runner = Runner.from_config(config)
    assert [type(instance) for instance in runner.instances if instance.name == "st"] == [StaticTokens]
    await runner.startup()
    try:
        identity = assert_allowed(await runner.authenticate(make_request(headers=bearer(BOB))))
    finally:
        await runner.shutdown()
    assert identity is not None
    assert (identity.auth_method, identity.plugin, identity.user_id, identity.role) == (
        "static_token",
        "st",
        "bob",
        "internal_user",
    )
    assert identity.key_id == hashlib.sha256(BOB.encode()).hexdigest()[:8]


def test_not_imported_unless_configured() -> None:
    script = textwrap.dedent(
        """
        import sys
        from authcore.config import parse_config
        from authcore.runner import Runner

        Runner.from_config(parse_config({"plugins": {}}))
        print("after_unrelated", "authcore_sample" in sys.modules)
        config = {"plugins": {"st": {"use": "sample_static_tokens", "config": {"tokens": {"a": "st-0123456789"}}}}}
        Runner.from_config(parse_config(config))
        print("after_named", "authcore_sample" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)  # noqa: S603
    assert done.stdout.split() == ["after_unrelated", "False", "after_named", "True"]


@pytest.fixture
def runner() -> Runner:
    return build_runner({"st": (StaticTokens, {"tokens": TOKENS})})


async def test_unknown_token_with_the_prefix_is_rejected(runner: Runner) -> None:
    await runner.startup()
    try:
        result = await runner.authenticate(make_request(headers=bearer("st-not-a-real-token")))
    finally:
        await runner.shutdown()
    assert_denied(result, 401, "unknown_token")


async def test_foreign_tokens_are_left_to_other_plugins() -> None:
    plugin = StaticTokens("st", StaticTokens.Config.model_validate({"tokens": TOKENS}))
    assert await plugin.resolve_identity(Credentials.of("api_key", "sk-something-else", "authorization")) is None
    assert await plugin.resolve_identity(Credentials.of("basic", ALICE, "authorization")) is None


def test_config_errors_never_echo_a_token() -> None:
    leaked = "not-prefixed-secret-value"
    with pytest.raises(ConfigurationError) as caught:
        build_runner({"st": (StaticTokens, {"tokens": {"alice": leaked}})})
    assert "alice" in str(caught.value)
    assert leaked not in str(caught.value)
    with pytest.raises(ConfigurationError, match="share a token"):
        build_runner({"st": (StaticTokens, {"tokens": {"alice": ALICE, "eve": ALICE}})})


class TestStaticTokensConformance(PluginConformance):
    plugin_class = StaticTokens
    config: ClassVar[dict[str, Any]] = {"tokens": TOKENS, "role": "internal_user"}
    secret_config_fields = ("tokens",)
    credential_prefix = "st-"
