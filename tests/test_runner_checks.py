"""post_checks run in full and the first deny in pipeline order wins; observers never change a decision."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

import authcore
from tests._runner_helpers import KeyHeader, KeyTable, build_runner, request, started

LOG: list[str] = []


def check_type(behaviour: str) -> type[Any]:
    """A post_checks plugin that passes, denies (403), crashes or times out, logging its name."""

    class Check(authcore.Plugin[authcore.EmptyConfig]):
        @authcore.hookimpl
        async def post_checks(self, identity: authcore.Identity) -> None:
            LOG.append(self.name)
            if behaviour == "deny":
                raise authcore.Forbidden(f"denied by {self.name}", reason_id=f"deny_{self.name}")
            if behaviour == "crash":
                raise RuntimeError("crash")
            if behaviour == "slow":
                await asyncio.sleep(5)

    return Check


class Reserve(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl
    async def reserve_budget(self) -> None:
        LOG.append("reserve")


TYPES: dict[str, Any] = {"key": KeyHeader, "table": KeyTable, "reserve": Reserve} | {
    b: check_type(b) for b in ("pass", "deny", "crash", "slow")
}


async def run(checks: list[tuple[str, str]], **extra: Any) -> authcore.AuthResult:
    LOG.clear()
    plugins: dict[str, Any] = {"k": "key", "t": "table", "r": "reserve"}
    plugins.update({name: {"use": kind, "timeout_s": 0.05} for name, kind in checks})
    runner = await started(
        build_runner(
            TYPES, plugins, {"extract_credentials": ["k"], "post_checks": [name for name, _ in checks]}, **extra
        )
    )
    return await runner.authenticate(request(headers={"x-key": "good"}))


@pytest.mark.parametrize(
    ("checks", "status", "reason"),
    [
        ([("a", "pass"), ("b", "pass")], 200, None),
        ([("a", "deny"), ("b", "pass")], 403, "deny_a"),
        ([("a", "pass"), ("b", "deny")], 403, "deny_b"),
        ([("a", "deny"), ("b", "deny")], 403, "deny_a"),
        ([("a", "deny"), ("b", "crash")], 403, "deny_a"),
        ([("a", "crash"), ("b", "deny")], 503, "plugin_error"),
        ([("a", "slow"), ("b", "deny")], 503, "plugin_timeout"),
        ([("a", "pass"), ("b", "slow")], 503, "plugin_timeout"),
    ],
)
async def test_post_checks_table(checks: list[tuple[str, str]], status: int, reason: str | None) -> None:
    result = await run(checks)
    assert result.status_code == status
    assert (result.error.reason_id if result.error else None) == reason
    # Every check ran, in pipeline order.
    assert [name for name in LOG if name != "reserve"] == [name for name, _ in checks]


async def test_later_check_runs_after_an_earlier_deny() -> None:
    result = await run([("first", "deny"), ("second", "pass"), ("third", "pass")])
    assert result.status_code == 403
    assert LOG == ["first", "second", "third"]  # no reserve after a deny
    outcomes = [(s.plugin, s.outcome) for s in result.trace.steps if s.stage == "post_checks"]
    assert outcomes == [("first", "deny"), ("second", "pass"), ("third", "pass")]


async def test_post_checks_deny_skips_reserve_budget() -> None:
    result = await run([("a", "deny")])
    assert result.status_code == 403
    assert "reserve" not in LOG
    assert [s for s in result.trace.steps if s.stage == "reserve_budget"] == []


async def test_passing_checks_reach_reserve_budget() -> None:
    result = await run([("a", "pass")])
    assert result.allowed
    assert LOG == ["a", "reserve"]


# -- observers ------------------------------------------------------------------------------------------


class Observer(authcore.Plugin[authcore.EmptyConfig]):
    events: ClassVar[list[authcore.AuthEvent]] = []

    @authcore.hookimpl
    async def on_event(self, event: authcore.AuthEvent) -> None:
        type(self).events.append(event)


class Crashing(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl
    async def on_event(self, event: authcore.AuthEvent) -> None:
        raise RuntimeError("observer broke")


class Slow(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl
    async def on_event(self, event: authcore.AuthEvent) -> None:
        await asyncio.sleep(5)


class BadBase(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl
    async def on_event(self, event: authcore.AuthEvent) -> None:
        raise ExceptionGroup("many", [ValueError("x")])


OBSERVER_TYPES = {
    "key": KeyHeader,
    "table": KeyTable,
    "observer": Observer,
    "crash": Crashing,
    "slow": Slow,
    "group": BadBase,
}


@pytest.mark.parametrize("key", ["good", "unknown"])
@pytest.mark.parametrize("disturber", [None, "crash", "slow", "group"])
async def test_observer_sees_the_decision_and_cannot_change_it(key: str, disturber: str | None) -> None:
    Observer.events.clear()
    plugins: dict[str, Any] = {"k": "key", "t": "table"}
    if disturber:
        plugins["d"] = {"use": disturber, "timeout_s": 0.05}
    plugins["o"] = "observer"
    runner = await started(build_runner(OBSERVER_TYPES, plugins, {"extract_credentials": ["k"]}))
    result = await runner.authenticate(request(headers={"x-key": key}))
    expected = 200 if key == "good" else 401
    assert result.status_code == expected
    [event] = Observer.events
    assert event.kind == "decision"
    assert event.status == expected
    assert event.trace is result.trace
    if key == "good":
        assert event.identity is not None
        assert event.identity["user_id"] == "u-good"
    else:
        assert event.reason_id == "unrecognised_credentials"
