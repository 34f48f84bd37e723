"""The testing kit plugin authors rely on: requests, runners, the app client and the assertions."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from starlette.types import Message, Receive, Scope, Send

import authcore.loader
from authcore import Credentials, Identity, InvalidCredentials, Plugin, hookimpl
from authcore.errors import ConfigurationError
from authcore.testing import (
    app_client,
    assert_allowed,
    assert_denied,
    build_runner,
    make_identity,
    make_request,
    started_runner,
)

KEY = "kit-key-0123456789"


class OneKey(Plugin):  # type: ignore[type-arg]
    """Accepts exactly `KEY` as a bearer key."""

    @hookimpl
    async def resolve_identity(self, credentials: Credentials) -> Identity | None:
        if credentials.kind != "api_key":
            return None
        if credentials.reveal() != KEY:
            raise InvalidCredentials(reason_id="unknown_kit_key")
        return Identity(auth_method="api_key", user_id="kit-user", key_id="kitkey01")


# -- make_request / make_identity ---------------------------------------------


async def test_make_request_body_is_readable_and_replayed_to_the_app() -> None:
    request = make_request("POST", "/v1/chat/completions", json={"model": "gpt-4o"})
    assert await request.json() == {"model": "gpt-4o"}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["content-length"] == str(len(await request.body()))
    assert await request.requested_models() == ("gpt-4o",)
    receive = request.replay_receive()
    assert await receive() == {"type": "http.request", "body": b'{"model": "gpt-4o"}', "more_body": False}
    assert (await receive())["type"] == "http.disconnect"


async def test_make_request_raw_body_query_and_duplicate_headers() -> None:
    request = make_request(
        "put", "/a/b?x=1&x=2", headers=[("X-Dup", "one"), ("x-dup", "two"), ("x-name", "ключ")], body=b"\x00\xff"
    )
    assert (request.method, request.path, request.query.getlist("x")) == ("PUT", "/a/b", ["1", "2"])
    assert request.headers.getlist("x-dup") == ["one", "two"]
    assert (b"x-name", "ключ".encode()) in request.raw_headers
    assert await request.body() == b"\x00\xff"
    assert request.client_host == "127.0.0.1"


async def test_make_request_websocket() -> None:
    request = make_request(path="/v1/realtime", websocket=True, subprotocols=["realtime", "openai-insecure-api-key.k"])
    assert request.is_websocket
    assert request.scope["subprotocols"] == ["realtime", "openai-insecure-api-key.k"]
    assert request.headers["sec-websocket-protocol"] == "realtime, openai-insecure-api-key.k"
    assert await request.body() == b""


def test_make_request_refuses_json_and_body_together() -> None:
    with pytest.raises(ValueError, match="not both"):
        make_request("POST", json={}, body=b"{}")


def test_make_identity_defaults_and_overrides() -> None:
    identity = make_identity(role="proxy_admin", models=["gpt-4o"])
    assert (identity.auth_method, identity.plugin, identity.is_admin, identity.models) == (
        "api_key",
        "test",
        True,
        ("gpt-4o",),
    )


# -- build_runner / started_runner ----------------------------------------------


def test_build_runner_reads_no_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**_: object) -> object:
        raise AssertionError("build_runner read the installed entry points")

    monkeypatch.setattr(authcore.loader, "entry_points", refuse)
    runner = build_runner({"kit": (OneKey, {})})
    assert [(instance.name, type(instance).__name__) for instance in runner.instances] == [
        ("headers", "HeaderCredentials"),
        ("kit", "OneKey"),
    ]
    assert not runner.started


def test_build_runner_does_not_load_installed_but_unlisted_plugins() -> None:
    script = textwrap.dedent(
        """
        import sys
        from authcore.testing import build_runner
        from authcore.plugin import Plugin

        class Nothing(Plugin):
            pass

        runner = build_runner({"n": (Nothing, {})})
        print(sorted(instance.name for instance in runner.instances), "authcore_sample" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)  # noqa: S603
    assert done.stdout.strip() == "['headers', 'n'] False"


def test_build_runner_validates_like_a_config_file() -> None:
    with pytest.raises(ConfigurationError, match="max_body_bytes"):
        build_runner({}, max_body_bytes=0)
    with pytest.raises(ConfigurationError, match="not defined under plugins"):
        build_runner({"kit": (OneKey, {})}, pipeline={"resolve_identity": ["ghost"]})
    with pytest.raises(ConfigurationError, match=r"kit\.config\.surprise"):
        build_runner({"kit": (OneKey, {"surprise": 1})})


def test_build_runner_settings_reach_the_config() -> None:
    runner = build_runner(
        {"kit": (OneKey, {})},
        pipeline={"extract_credentials": []},
        routes={"public": ["/open"]},
        timeout_s=0.25,
        max_body_bytes=1024,
    )
    assert [instance.name for instance in runner.instances] == ["kit"]
    assert runner.config.plugins["kit"].timeout_s == 0.25
    assert runner.config.max_body_bytes == 1024
    assert runner.policy.public.matches("/open")


async def test_started_runner_starts_and_shuts_down() -> None:
    async with started_runner({"kit": (OneKey, {})}) as runner:
        assert runner.started
        assert runner.resources is not None
        assert runner.resources.database_backend == "sqlite"
        assert_allowed(await runner.authenticate(make_request(headers={"authorization": f"Bearer {KEY}"})))
    assert not runner.started


# -- app_client -----------------------------------------------------------------


async def test_app_client_echoes_the_identity() -> None:
    async with started_runner({"kit": (OneKey, {})}) as runner, app_client(runner) as client:
        allowed = await client.post("/v1/anything", headers={"authorization": f"Bearer {KEY}"}, json={"a": 1})
        missing = await client.get("/v1/anything")
        wrong = await client.delete("/v1/anything", headers={"authorization": "Bearer nope"})
        public = await client.get("/health/live")
    assert allowed.status_code == 200
    assert allowed.json()["identity"]["user_id"] == "kit-user"
    assert allowed.json()["identity"]["plugin"] == "kit"
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "missing_api_key")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_api_key")
    assert public.json() == {"identity": None}


async def test_app_client_with_a_custom_app_sees_the_body() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        message: Message = await receive()
        body = json.dumps({"body": message["body"].decode(), "user": scope["user"].display_name}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    async with started_runner({"kit": (OneKey, {})}) as runner, app_client(runner, app=app) as client:
        response = await client.post("/v1/x", headers={"authorization": f"Bearer {KEY}"}, content=b"payload")
    assert response.json() == {"body": "payload", "user": "kit-user"}


async def test_app_client_with_an_unstarted_runner_fails_closed() -> None:
    async with app_client(build_runner({"kit": (OneKey, {})})) as client:
        response = await client.get("/v1/x", headers={"authorization": f"Bearer {KEY}"})
    assert response.status_code == 503


# -- assertions -----------------------------------------------------------------


async def test_assert_denied_and_assert_allowed() -> None:
    async with started_runner({"kit": (OneKey, {})}) as runner:
        denied = await runner.authenticate(make_request(headers={"authorization": "Bearer wrong"}))
        allowed = await runner.authenticate(make_request(headers={"authorization": f"Bearer {KEY}"}))
    error = assert_denied(denied, 401, "unknown_kit_key")
    assert error.status_code == 401
    assert_denied(denied, 401)
    with pytest.raises(AssertionError, match=r"expected a deny with 403.*denied 401 reason_id='unknown_kit_key'"):
        assert_denied(denied, 403)
    with pytest.raises(AssertionError, match=r"(?s)reason_id='revoked'.*resolve_identity\s+kit\s+deny"):
        assert_denied(denied, 401, "revoked")
    with pytest.raises(AssertionError, match="expected a 401 deny, but the request was allowed"):
        assert_denied(allowed, 401)
    with pytest.raises(AssertionError, match="expected the request to be allowed"):
        assert_allowed(denied)
    identity = assert_allowed(allowed)
    assert identity is not None
    assert identity.user_id == "kit-user"


# -- the pytest plugin ----------------------------------------------------------


def test_pytest_plugin_imports_nothing_heavy() -> None:
    heavy = ["sqlalchemy", "httpx", "redis", "asyncpg", "authcore.runner", "authcore.testing.harness"]
    script = f"import sys, authcore.testing.pytest_plugin; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)  # noqa: S603
    assert done.stdout.strip() == "[]"


UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
# The runs below go through a subprocess: an in-process run drops the modules it
# imported (asyncpg, redis) and re-importing their C extensions crashes.


def test_unreachable_service_skips(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHCORE_TEST_REDIS_URL", UNREACHABLE_REDIS)
    monkeypatch.delenv("AUTHCORE_REQUIRE_SERVICES", raising=False)
    pytester.makepyfile("def test_needs_redis(authcore_redis_prefix):\n    raise AssertionError('ran')\n")
    result = pytester.runpytest_subprocess("-rs", "-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*Redis at redis://127.0.0.1:1/0 is unreachable*"])


def test_unreachable_service_fails_when_services_are_required(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHCORE_TEST_DATABASE_URL", "postgresql://postgres:hunter2-secret@127.0.0.1:1/test")
    monkeypatch.setenv("AUTHCORE_REQUIRE_SERVICES", "1")
    pytester.makepyfile("def test_needs_postgres(authcore_postgres_url):\n    raise AssertionError('ran')\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*Postgres at postgresql://127.0.0.1:1/test is unreachable*"])
    assert "hunter2-secret" not in result.stdout.str()
