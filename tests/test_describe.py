"""`describe_entity` through `PluginContext.describe`: order, merge, failures isolated, nothing secret leaks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

import authcore
from authcore.describe import EntityDescription, describe_nothing
from authcore.errors import ConfigurationError
from authcore.plugin import PluginContext
from authcore.resources import Resources
from tests._runner_helpers import build_runner, started

SECRET = "sk-describe-secret-9f8e7d6c5b4a"


class AnswerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: dict[str, Any] = {}
    fail: str | None = None
    """`raise`, `sleep`, `wrong_type`, `mutate` or `abstain`."""


class Answering(authcore.Plugin[AnswerConfig]):
    """Answers `describe_entity` with its configured fields, or fails as configured."""

    Config = AnswerConfig
    seen: ClassVar[list[tuple[str, str, str, dict[str, object]]]] = []

    @authcore.hookimpl
    async def describe_entity(self, kind: str, entity_id: str, settings: Mapping[str, Any]) -> Any:
        type(self).seen.append((self.name, kind, entity_id, dict(settings)))
        fail = self.config.fail
        if fail == "raise":
            raise RuntimeError(f"store down while reading {SECRET}")
        if fail == "sleep":
            await asyncio.sleep(5)
        if fail == "wrong_type":
            return [("spend", 1.0)]
        if fail == "mutate":
            settings["max_budget"] = 0  # type: ignore[index]
        if fail == "abstain":
            return None
        return {**self.config.fields, "entity": f"{kind}:{entity_id}"}


class KindOnly(authcore.Plugin[authcore.EmptyConfig]):
    """Takes a subset of the hook's arguments."""

    @authcore.hookimpl
    async def describe_entity(self, kind: str) -> dict[str, str]:
        return {"kind_seen": kind}


class Caller(authcore.Plugin[authcore.EmptyConfig]):
    """Keeps the context it is started with, as a plugin with admin views would."""

    context: PluginContext | None = None

    @authcore.hookimpl
    async def startup(self, context: PluginContext) -> None:
        type(self).context = context


TYPES = {"answering": Answering, "kind_only": KindOnly, "caller": Caller}


@pytest.fixture(autouse=True)
def _reset() -> None:
    Answering.seen.clear()
    Caller.context = None


def answering(timeout_s: float = 1.0, **config: Any) -> dict[str, Any]:
    return {"use": "answering", "config": config, "timeout_s": timeout_s}


async def describe(plugins: Mapping[str, Any], kind: str = "key", settings: Mapping[str, object] | None = None) -> Any:
    runner = await started(build_runner(TYPES, {"caller": "caller", **plugins}))
    try:
        context = Caller.context
        assert context is not None
        return await context.describe(kind, "k-123", settings or {})
    finally:
        await runner.shutdown()


async def test_every_implementation_is_called_in_configuration_order_and_the_first_wins_a_field(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = answering(fields={"spend": 1.5, "a": 1})
    second = answering(fields={"spend": 2.5, "b": 2})

    with caplog.at_level(logging.WARNING, logger="authcore"):
        forward = await describe({"one": first, "two": second})
    backward = await describe({"two": second, "one": first})

    assert [name for name, *_ in Answering.seen] == ["one", "two", "two", "one"]
    assert forward == EntityDescription(
        {"spend": 1.5, "a": 1, "entity": "key:k-123", "b": 2}, described_by=("one", "two")
    )
    assert backward.fields["spend"] == 2.5
    assert backward.described_by == ("two", "one")
    assert "'one' and 'two' disagree on 'spend'" in caplog.text


async def test_an_implementation_gets_kind_id_and_read_only_settings() -> None:
    result = await describe(
        {"mutates": answering(fail="mutate"), "reads": answering(), "kinds": {"use": "kind_only"}},
        kind="team",
        settings={"max_budget": 10},
    )

    # The first could not change what the second sees; its failure is reported, not hidden.
    assert [(name, kind, ident, seen) for name, kind, ident, seen in Answering.seen] == [
        ("mutates", "team", "k-123", {"max_budget": 10}),
        ("reads", "team", "k-123", {"max_budget": 10}),
    ]
    assert result.unavailable == ("mutates",)
    assert result.fields == {"entity": "team:k-123", "kind_seen": "team"}


async def test_failures_are_skipped_and_named_and_no_secret_reaches_log_or_result(
    caplog: pytest.LogCaptureFixture,
) -> None:
    plugins = {
        "raises": answering(fail="raise"),
        "slow": answering(timeout_s=0.05, fail="sleep", fields={"spend": 9.0}),
        "odd": answering(fail="wrong_type"),
        "none": answering(fail="abstain"),
        "good": answering(fields={"spend": 0.25}),
    }

    with caplog.at_level(logging.DEBUG):
        result = await describe(plugins)

    assert result.fields == {"spend": 0.25, "entity": "key:k-123"}
    assert result.described_by == ("good",)
    assert result.unavailable == ("raises", "slow", "odd")
    assert "'raises' raised RuntimeError in describe_entity" in caplog.text
    assert "'slow' timed out in describe_entity" in caplog.text
    assert SECRET not in caplog.text
    assert SECRET not in repr(result)


async def test_with_no_implementation_the_description_is_empty() -> None:
    assert await describe({}) == EntityDescription()


async def test_an_unknown_kind_is_the_callers_bug() -> None:
    with pytest.raises(ValueError, match="unknown entity kind 'keys'"):
        await describe({"one": answering()}, kind="keys")
    assert Answering.seen == []


async def test_a_context_built_by_hand_describes_nothing() -> None:
    context = PluginContext(resources=Resources("sqlite+aiosqlite://"), emit=lambda event: asyncio.sleep(0))

    assert context.describe is describe_nothing
    assert await context.describe("key", "k", {}) == EntityDescription()


class SyncDescriber(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl
    def describe_entity(self, kind: str) -> dict[str, str]:
        return {}


def test_a_sync_implementation_that_may_do_io_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="describe_entity is a plain function"):
        build_runner({"sync": SyncDescriber}, {"s": "sync"})
