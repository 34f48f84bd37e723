"""A canary secret, in a header or in the config, never leaks into traces, reprs, logs, bodies or dumps."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr
from starlette.testclient import TestClient

import authcore
from authcore.config import parse_config
from authcore.loader import mapping_resolver
from authcore.request import RequestContext
from authcore.runner import Runner
from tests._runner_helpers import KeyHeader, app_with, build_runner, request, started

CANARY = "sk-canary-5f0e1d2c3b4a"
ENV_CANARY = "env-canary-9a8b7c6d"


class Leaky(authcore.Plugin[authcore.EmptyConfig]):
    """Crashes with the credential in its exception message, at the stage named by `x-stage`."""

    @authcore.hookimpl
    async def resolve_identity(self, request: RequestContext, credentials: authcore.Credentials) -> authcore.Identity:
        if request.headers.get("x-stage") == "resolve":
            raise KeyError(credentials.reveal())
        return authcore.Identity("api_key", user_id="u1", key_id="hash-prefix")

    @authcore.hookimpl
    async def post_checks(self, request: RequestContext) -> None:
        if request.headers.get("x-stage") == "check":
            raise RuntimeError(f"lookup failed for {request.headers['x-key']}")


class Secretive(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_secret: SecretStr
    issuer: str = "https://idp"


class UsesSecret(authcore.Plugin[Secretive]):
    Config = Secretive

    @authcore.hookimpl
    async def post_checks(self) -> None:
        raise RuntimeError(f"idp rejected {self.config.client_secret.get_secret_value()}")


def assert_clean(*texts: str) -> None:
    for text in texts:
        assert CANARY not in text
        assert ENV_CANARY not in text


@pytest.mark.parametrize("stage", ["resolve", "check", "none"])
async def test_trace_reprs_and_logs_never_hold_the_credential(stage: str, caplog: pytest.LogCaptureFixture) -> None:
    runner = await started(
        build_runner(
            {"key": KeyHeader, "leaky": Leaky},
            {"k": "key", "l": "leaky"},
            {"extract_credentials": ["k"]},
            log_decisions=True,
        )
    )
    req = request(headers={"x-key": CANARY, "x-stage": stage, "authorization": f"Bearer {CANARY}"})
    with caplog.at_level(logging.DEBUG):
        result = await runner.authenticate(req)
    assert result.status_code == (200 if stage == "none" else 503)
    credentials = authcore.Credentials.of("api_key", CANARY, "x-key")
    texts = [
        result.trace.format(),
        json.dumps(result.trace.to_dict()),
        repr(result.trace),
        repr(result),
        repr(req),
        repr(credentials),
        str(credentials),
        repr(result.error),
        str(result.error),
    ]
    texts += [record.getMessage() for record in caplog.records]
    texts += [str(record.exc_info) + str(record.args) for record in caplog.records]
    assert any("decision status=" in record.getMessage() for record in caplog.records)
    assert_clean(*texts)


def test_http_error_bodies_never_hold_the_credential(caplog: pytest.LogCaptureFixture) -> None:
    runner = build_runner(
        {"key": KeyHeader, "leaky": Leaky}, {"k": "key", "l": "leaky"}, {"extract_credentials": ["k"]}
    )
    with caplog.at_level(logging.DEBUG), TestClient(app_with(runner)) as client:
        client.portal.call(runner.startup)  # type: ignore[union-attr]
        for stage in ("resolve", "check"):
            response = client.get("/ok", headers={"x-key": CANARY, "x-stage": stage})
            assert response.status_code == 503
            assert_clean(response.text, str(response.headers))
    assert_clean(*(record.getMessage() for record in caplog.records))


@pytest.mark.parametrize("reference", ["os.environ/AC_CANARY", "${AC_CANARY}"])
async def test_config_secrets_stay_out_of_dumps_logs_and_errors(
    reference: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AC_CANARY", ENV_CANARY)
    monkeypatch.setenv("AC_DB", f"sqlite+aiosqlite:///{ENV_CANARY}.db")
    data: dict[str, Any] = {
        "plugins": {"s": {"use": "secretive", "config": {"client_secret": reference}}},
        "pipeline": {"extract_credentials": ["k"]},
        "storage": {"database_url": "os.environ/AC_DB", "redis_url": "redis://:${AC_CANARY}@127.0.0.1:6379/0"},
        "log_decisions": True,
    }
    data["plugins"]["k"] = {"use": "key"}
    data["plugins"]["l"] = {"use": "leaky"}
    config = parse_config(data)
    runner = Runner.from_config(config, mapping_resolver({"secretive": UsesSecret, "key": KeyHeader, "leaky": Leaky}))
    settings = runner.instances[0].config
    assert isinstance(settings, Secretive)
    assert settings.client_secret.get_secret_value() == ENV_CANARY  # the plugin does get the real value
    await started(runner)
    with caplog.at_level(logging.DEBUG):
        result = await runner.authenticate(request(headers={"x-key": "whatever"}))
    assert result.status_code == 503
    assert_clean(
        repr(config),
        str(config),
        config.model_dump_json(),
        json.dumps(config.model_dump(mode="json")),
        repr(settings),
        settings.model_dump_json(),
        repr(runner.instances),
        repr(result),
        result.trace.format(),
        *(record.getMessage() for record in caplog.records),
    )
