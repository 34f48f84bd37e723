"""resolve_identity: abstain passes the credential on, InvalidCredentials stops the chain with a fixed answer."""

from __future__ import annotations

import asyncio

import pytest
from starlette.testclient import TestClient

import authcore
from authcore.responses import REQUEST_ID_HEADER
from tests._runner_helpers import KeyHeader, app_with, build_runner, request, started


class Strict(authcore.Plugin[authcore.EmptyConfig]):
    """Owns keys starting with `sk-`: `sk-revoked` is revoked, everything else unknown."""

    @authcore.hookimpl
    async def resolve_identity(self, credentials: authcore.Credentials) -> authcore.Identity | None:
        key = credentials.reveal()
        if not key.startswith("sk-"):
            return None
        if key == "sk-revoked":
            raise authcore.InvalidCredentials("key sk-revoked was revoked yesterday", reason_id="key_revoked")
        raise authcore.InvalidCredentials("no such key", reason_id="key_unknown")


class Permissive(authcore.Plugin[authcore.EmptyConfig]):
    calls = 0

    @authcore.hookimpl
    async def resolve_identity(self, credentials: authcore.Credentials) -> authcore.Identity:
        type(self).calls += 1
        return authcore.Identity("api_key", user_id="anyone")


TYPES = {"key": KeyHeader, "strict": Strict, "permissive": Permissive}
PLUGINS = {"k": "key", "strict": "strict", "permissive": "permissive"}
PIPELINE = {"extract_credentials": ["k"], "resolve_identity": ["strict", "permissive"]}


async def test_invalid_credentials_stop_the_chain() -> None:
    Permissive.calls = 0
    runner = await started(build_runner(TYPES, PLUGINS, PIPELINE))
    result = await runner.authenticate(request(headers={"x-key": "sk-unknown"}))
    assert result.status_code == 401
    assert Permissive.calls == 0
    assert result.error is not None
    assert result.error.reason_id == "key_unknown"
    assert [(s.plugin, s.outcome) for s in result.trace.steps if s.stage == "resolve_identity"] == [("strict", "deny")]


async def test_abstaining_resolver_lets_the_next_one_decide() -> None:
    Permissive.calls = 0
    runner = await started(build_runner(TYPES, PLUGINS, PIPELINE))
    result = await runner.authenticate(request(headers={"x-key": "not-a-sk-key"}))
    assert result.allowed
    assert Permissive.calls == 1
    assert result.identity is not None
    assert result.identity.plugin == "permissive"


@pytest.mark.parametrize("key", ["sk-unknown", "sk-revoked"])
def test_invalid_body_is_fixed(key: str) -> None:
    runner = build_runner(TYPES, PLUGINS, PIPELINE)
    with TestClient(app_with(runner)) as client:
        client.portal.call(runner.startup)  # type: ignore[union-attr]
        response = client.get("/ok", headers={"x-key": key})
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "message": "Invalid credentials.",
            "type": "authentication_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    assert "revoked" not in response.text
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_unknown_and_revoked_are_byte_identical_except_request_id() -> None:
    runner = build_runner(TYPES, PLUGINS, PIPELINE)
    with TestClient(app_with(runner)) as client:
        client.portal.call(runner.startup)  # type: ignore[union-attr]
        unknown = client.get("/ok", headers={"x-key": "sk-unknown"})
        revoked = client.get("/ok", headers={"x-key": "sk-revoked"})
    assert unknown.status_code == revoked.status_code == 401
    assert unknown.content == revoked.content

    def headers(response: object) -> list[tuple[str, str]]:
        raw = response.headers.items()  # type: ignore[attr-defined]
        return sorted((k, v) for k, v in raw if k != REQUEST_ID_HEADER)

    assert headers(unknown) == headers(revoked)
    assert unknown.headers[REQUEST_ID_HEADER] != revoked.headers[REQUEST_ID_HEADER]


class Waiting(authcore.Plugin[authcore.EmptyConfig]):
    """Resolves every key after a real wait, as a database read would."""

    @authcore.hookimpl
    async def resolve_identity(self, credentials: authcore.Credentials) -> authcore.Identity:
        await asyncio.sleep(0.02)
        return authcore.Identity("api_key", user_id="waited")


class Declining(authcore.Plugin[authcore.EmptyConfig]):
    cpu_only = True

    @authcore.hookimpl
    def resolve_identity(self, credentials: authcore.Credentials) -> None:
        return None


async def test_trace_records_each_call_whether_it_returned_at_once_or_waited() -> None:
    types = {"key": KeyHeader, "declining": Declining, "waiting": Waiting}
    plugins = {"k": "key", "declining": "declining", "waiting": "waiting"}
    pipeline = {"extract_credentials": ["k"], "resolve_identity": ["declining", "waiting"]}
    runner = await started(build_runner(types, plugins, pipeline))

    result = await runner.authenticate(request(headers={"x-key": "sk-anything"}))

    assert result.identity is not None
    assert result.identity.user_id == "waited"
    steps = [(s.stage, s.plugin, s.outcome) for s in result.trace.steps]
    assert steps == [
        ("extract_credentials", "k", "credentials"),
        ("resolve_identity", "declining", "abstain"),
        ("resolve_identity", "waiting", "identity"),
        ("route", None, "pass"),
    ]
    waited = result.trace.steps[2]
    # The step that suspended is timed from its call to its answer, across the wait.
    assert waited.duration_us >= 15_000
