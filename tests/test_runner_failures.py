"""Raise = deny, timeout = deny, wrong type = deny: nothing a plugin does by accident lets a request through."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

import authcore
from authcore.request import RequestContext
from tests._runner_helpers import KeyHeader, build_runner, request, started

STAGES = ["extract_credentials", "custom_auth", "resolve_identity", "post_checks", "reserve_budget"]


class Canary(BaseException):
    """A BaseException that is not one of the process/loop signals."""


def make_type(stage: str, action: Any, *, blocking: bool = False, is_async: bool = True) -> type[Any]:
    """A plugin type implementing `stage` by calling `action()` (raise, sleep or return)."""

    async def async_hook(self: Any, request: RequestContext) -> Any:
        result = action()
        if asyncio.iscoroutine(result):
            return await result
        return result

    def sync_hook(self: Any, request: RequestContext) -> Any:
        return action()

    hook: Any = async_hook if is_async else sync_hook

    hook.__name__ = stage
    return type(
        f"Plugin_{stage}",
        (authcore.Plugin,),
        {stage: authcore.hookimpl(hook), "blocking": blocking, "cpu_only": not is_async and not blocking},
    )


class Allow(authcore.Plugin[authcore.EmptyConfig]):
    """Would allow anything that reaches it."""

    @authcore.hookimpl
    async def resolve_identity(self, credentials: authcore.Credentials) -> authcore.Identity:
        return authcore.Identity("api_key", user_id="allowed")


async def run_stage(stage: str, plugin_type: type[Any], timeout_s: float = 1.0) -> authcore.AuthResult:
    runner = await started(
        build_runner(
            {"key": KeyHeader, "allow": Allow, "under_test": plugin_type},
            {"k": "key", "x": {"use": "under_test", "timeout_s": timeout_s}, "allow": "allow"},
            {"extract_credentials": ["x", "k"] if stage == "extract_credentials" else ["k"]},
        )
    )
    return await runner.authenticate(request(headers={"x-key": "anything"}))


def raiser(error: BaseException) -> Any:
    def action() -> None:
        raise error

    return action


ERRORS: list[tuple[authcore.AuthcoreError, int, dict[str, str]]] = [
    (authcore.MalformedCredentials("bad"), 400, {}),
    (authcore.MissingCredentials(), 401, {"www-authenticate": "Bearer"}),
    (authcore.InvalidCredentials(reason_id="expired"), 401, {"www-authenticate": 'Bearer error="invalid_token"'}),
    (authcore.Forbidden("no"), 403, {}),
    (authcore.PayloadTooLarge(), 413, {}),
    (authcore.RateLimited(retry_after=2.5), 429, {"retry-after": "3"}),
    (authcore.BudgetExceeded(), 429, {"retry-after": "1"}),
    (authcore.DependencyFailure(), 503, {"retry-after": "1"}),
]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize(("error", "status", "headers"), ERRORS, ids=[type(e[0]).__name__ for e in ERRORS])
async def test_authcore_errors_deny_with_their_status(
    stage: str, error: authcore.AuthcoreError, status: int, headers: dict[str, str]
) -> None:
    result = await run_stage(stage, make_type(stage, raiser(error)))
    assert result.status_code == status
    assert result.error is error
    assert result.identity is None
    for name, value in headers.items():
        assert result.error.response_headers()[name] == value


UNEXPECTED = [RuntimeError("boom"), KeyError("sk-canary-0042"), Canary("odd"), ValueError(), AttributeError("x")]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("error", UNEXPECTED, ids=[type(e).__name__ for e in UNEXPECTED])
async def test_unexpected_exceptions_are_503_plugin_error(stage: str, error: BaseException) -> None:
    result = await run_stage(stage, make_type(stage, raiser(error)))
    assert result.status_code == 503
    assert isinstance(result.error, authcore.PluginFailure)
    assert result.error.reason_id == "plugin_error"
    assert result.error.response_headers()["retry-after"] == "1"
    assert ("x", "error", "plugin_error") in [(s.plugin, s.outcome, s.reason_id) for s in result.trace.steps]


@pytest.mark.parametrize("stage", STAGES)
async def test_sync_plugin_exceptions_deny_too(stage: str) -> None:
    result = await run_stage(stage, make_type(stage, raiser(RuntimeError("x")), is_async=False))
    assert result.status_code == 503
    assert result.error is not None
    assert result.error.reason_id == "plugin_error"


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(1), asyncio.CancelledError()])
async def test_process_signals_are_not_swallowed(error: BaseException) -> None:
    with pytest.raises(type(error)):
        await run_stage("resolve_identity", make_type("resolve_identity", raiser(error)))


WRONG: list[object] = [True, False, "allow", {}, {"user_id": "x"}, 1, object()]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("value", WRONG, ids=[repr(v)[:12] for v in WRONG])
async def test_wrong_return_type_is_503_contract_violation(stage: str, value: object) -> None:
    result = await run_stage(stage, make_type(stage, lambda: value))
    assert result.status_code == 503
    assert result.error is not None
    assert result.error.reason_id == "contract_violation"
    assert result.identity is None


async def test_identity_from_extractor_is_a_contract_violation_not_an_allow() -> None:
    identity = authcore.Identity("api_key", user_id="smuggled")
    result = await run_stage("extract_credentials", make_type("extract_credentials", lambda: identity))
    assert result.status_code == 503
    assert result.error is not None
    assert result.error.reason_id == "contract_violation"


# -- timeouts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
async def test_async_plugin_past_its_timeout_is_503_plugin_timeout(stage: str) -> None:
    started_at = time.perf_counter()
    result = await run_stage(stage, make_type(stage, lambda: asyncio.sleep(5)), timeout_s=0.05)
    elapsed = time.perf_counter() - started_at
    assert result.status_code == 503
    assert result.error is not None
    assert result.error.reason_id == "plugin_timeout"
    assert elapsed < 1.0


async def test_blocking_sync_plugin_past_its_timeout_is_503() -> None:
    started_at = time.perf_counter()
    result = await run_stage(
        "resolve_identity",
        make_type("resolve_identity", lambda: time.sleep(0.5), blocking=True, is_async=False),
        timeout_s=0.05,
    )
    elapsed = time.perf_counter() - started_at
    assert result.status_code == 503
    assert result.error is not None
    assert result.error.reason_id == "plugin_timeout"
    assert elapsed < 0.4


async def test_blocking_sync_plugin_within_its_timeout_decides() -> None:
    identity = authcore.Identity("api_key", user_id="threaded")
    result = await run_stage(
        "resolve_identity", make_type("resolve_identity", lambda: identity, blocking=True, is_async=False)
    )
    assert result.allowed
    assert result.identity is not None
    assert result.identity.user_id == "threaded"


@pytest.mark.parametrize("stage", STAGES)
async def test_fast_plugin_with_tiny_timeout_still_passes(stage: str) -> None:
    result = await run_stage(stage, make_type(stage, lambda: None), timeout_s=1e-6)
    assert result.allowed, result.trace


class SwallowsCancel(authcore.Plugin[authcore.EmptyConfig]):
    """Catches the cancellation its timeout sends and answers anyway: a late answer must not count."""

    @authcore.hookimpl
    async def resolve_identity(self, credentials: authcore.Credentials) -> authcore.Identity:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(5)
        return authcore.Identity("api_key", user_id="late")


async def test_plugin_that_swallows_its_timeout_is_still_denied() -> None:
    result = await run_stage("resolve_identity", SwallowsCancel, timeout_s=0.05)
    assert result.status_code == 503
    assert result.error is not None
    assert result.error.reason_id == "plugin_timeout"


class OddIdentity(authcore.Plugin[authcore.EmptyConfig]):
    """Returns an Identity whose route list is not strings: the route check itself breaks."""

    @authcore.hookimpl
    async def resolve_identity(self) -> authcore.Identity:
        return authcore.Identity("api_key", user_id="odd", allowed_routes=(42,))  # type: ignore[arg-type]


async def test_fault_outside_a_plugin_call_still_denies_with_503() -> None:
    result = await run_stage("resolve_identity", OddIdentity)
    assert result.status_code == 503
    assert result.identity is None
    assert result.error is not None
    assert result.error.reason_id == "internal_error"


@pytest.mark.parametrize("is_async", [True, False], ids=["async", "sync"])
async def test_a_plugin_exception_is_not_chained_to_the_deny(is_async: bool) -> None:
    secret = "sk-CANARY-in-an-exception-message"
    result = await run_stage(
        "resolve_identity", make_type("resolve_identity", raiser(RuntimeError(secret)), is_async=is_async)
    )

    assert result.error is not None
    assert result.error.reason_id == "plugin_error"
    # Whoever logs the deny with its traceback must not print the plugin's message along with it.
    import traceback

    printed = "".join(traceback.format_exception(result.error))
    assert secret not in printed
    assert "RuntimeError" not in printed
