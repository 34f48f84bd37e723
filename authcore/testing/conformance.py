"""A conformance suite plugin authors run against their plugin class.

Subclass `PluginConformance` in a test module; pytest collects the inherited
checks::

    class TestMyPlugin(PluginConformance):
        plugin_class = MyPlugin
        config = {"client_secret": "test-secret-value", "issuer": "https://idp.test"}
        secret_config_fields = ("client_secret",)

The checks are plain (synchronous) test methods that run the plugin on their own
event loop, so they work with any pytest-asyncio mode, or without it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from time import perf_counter
from typing import Any, ClassVar, TypeVar

import pytest
from pydantic import BaseModel, SecretBytes, SecretStr, ValidationError

from authcore.errors import AuthcoreError, ConfigurationError
from authcore.hookspecs import DECISION_HOOKS
from authcore.loader import check_plugin_type
from authcore.models import Credentials, Identity, Reservation
from authcore.plugin import Plugin
from authcore.request import RequestContext
from authcore.resources import Resources
from authcore.result import AuthResult
from authcore.runner import HookCall, Runner
from authcore.testing.assertions import assert_denied
from authcore.testing.factories import make_identity, make_request
from authcore.testing.harness import MEMORY_DATABASE, build_runner, started_runner, type_name

T = TypeVar("T")

RequestFactory = Callable[[], RequestContext]

_RESULT_TYPES: dict[str, tuple[type, ...]] = {
    "extract_credentials": (Credentials,),
    "custom_auth": (Identity, Credentials),
    "resolve_identity": (Identity,),
    "post_checks": (),
    "reserve_budget": (Reservation,),
}

_MIN_SECRET_LENGTH = 8


def _run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    # loop_factory keeps asyncio.Runner from replacing the thread's current loop,
    # which pytest-asyncio may own.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(factory())


def _leaf_strings(value: Any) -> Iterator[str]:
    """Every string inside a config value; mapping keys (user ids, names) are not secrets."""
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, SecretBytes):
        yield value.get_secret_value().decode("latin-1")
    elif isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.decode("latin-1")
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _leaf_strings(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _leaf_strings(item)


def garbage_requests() -> dict[str, RequestFactory]:
    """Hostile or broken requests every hook must survive (a fresh request per call)."""
    chat = "/v1/chat/completions"
    return {
        "huge_header": lambda: make_request(
            headers={"authorization": "Bearer " + "A" * 65536, "x-api-key": "k" * 65536, "cookie": "c=" + "z" * 65536}
        ),
        "non_ascii_header": lambda: make_request(headers={"authorization": "Bearer ключ-🔑", "x-api-key": "café-ключ"}),
        "non_utf8_header": lambda: make_request(
            headers=[(b"authorization", b"Bearer \xff\xfe\xc3"), (b"x-api-key", b"\x80")]
        ),
        "control_chars": lambda: make_request(
            headers=[(b"authorization", b"Bearer a\x00b\x1b[31m\x7f"), (b"x-api-key", b"k\r\nx-injected: 1")]
        ),
        "empty_bearer": lambda: make_request(headers={"authorization": "Bearer "}),
        "bare_scheme": lambda: make_request(headers={"authorization": "Bearer"}),
        "empty_values": lambda: make_request(
            headers={"authorization": "", "x-api-key": "", "api-key": "", "cookie": ""}
        ),
        "wrong_scheme": lambda: make_request(headers={"authorization": "Basic !!!not-base64!!!"}),
        "duplicate_authorization": lambda: make_request(
            headers=[("authorization", "Bearer first"), ("authorization", "Bearer second")]
        ),
        "random_bytes_body": lambda: make_request(
            "POST", chat, headers={"content-type": "application/json"}, body=os.urandom(4096)
        ),
        "truncated_json_body": lambda: make_request(
            "POST", chat, headers={"content-type": "application/json"}, body=b'{"model": "gpt'
        ),
        "json_array_body": lambda: make_request("POST", chat, json=[1, "two", None]),
        "odd_json_types": lambda: make_request("POST", chat, json={"model": ["a"], "user": {"id": 1}, "metadata": 7}),
        "lying_content_length": lambda: make_request(
            "POST", chat, headers={"content-length": "99999999999999"}, body=b"{}"
        ),
        "hostile_query": lambda: make_request(
            "GET", "/v1/models", query="key=%00%ff&api_key=&key=a&key=b&token=%E2%80"
        ),
        "hostile_path": lambda: make_request("GET", "/v1/../../etc/passwd/%2e%2e/models/\x00"),
        "no_client": lambda: make_request(client=None),
        "websocket": lambda: make_request(
            path="/v1/realtime", websocket=True, subprotocols=["openai-insecure-api-key.\x00", ""]
        ),
    }


def garbage_credentials(prefix: str = "") -> dict[str, Credentials]:
    """Broken credential values, optionally behind the prefix a plugin claims."""
    values = {
        "empty": "",
        "huge": "x" * 65536,
        "non_ascii": "ключ-🔑-café",
        "lone_surrogate": "key-\ud800",
        "control_chars": "\x00\r\n\x1b[0m\x7f",
        "random_bytes": os.urandom(48).decode("latin-1"),
        "dots_only": "...",
    }
    found = {name: Credentials.of("api_key", value, "authorization") for name, value in values.items()}
    if prefix:
        found.update(
            {
                f"{prefix}{name}": Credentials.of("api_key", prefix + value, "authorization")
                for name, value in values.items()
            }
        )
    found["unknown_kind"] = Credentials.of("carrier-pigeon", "coo", "x-pigeon")
    found["basic_garbage"] = Credentials.of("basic", ":::\x00", "authorization")
    return found


class PluginConformance:
    """Checks every authcore plugin should pass. Subclass it as `Test...` and set the class attributes."""

    plugin_class: ClassVar[type[Plugin[Any]]]
    config: ClassVar[Mapping[str, Any]] = {}
    """A valid `config` block for one instance, as it would appear in `authcore.yaml`."""
    secret_config_fields: ClassVar[tuple[str, ...]] = ()
    """Top-level config keys holding secrets; their values in `config` must be 8+ characters."""
    credential_prefix: ClassVar[str] = ""
    """A prefix the plugin claims (e.g. `sk-`): garbage credentials are also tried behind it."""
    instance_name: ClassVar[str] = "under_test"
    slow_timeout_s: ClassVar[float] = 0.05
    """The instance timeout used with `slow_request()`."""
    timeout_slack_s: ClassVar[float] = 1.0
    """How long past `slow_timeout_s` a decision may take before the hook counts as blocking the loop."""

    # -- what authors may override -------------------------------------------

    def absent_credentials_request(self) -> RequestContext:
        """A request that carries none of this plugin's credentials."""
        return make_request("POST", "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": []})

    def slow_request(self) -> RequestContext | None:
        """A request that makes a hook of this plugin (as configured) take longer than `slow_timeout_s`.

        Return `None` (the default) to skip the timeout check.
        """
        return None

    def resources(self) -> Resources:
        """Shared connections the instance is started with (in-memory SQLite by default)."""
        return Resources(MEMORY_DATABASE)

    def runner_options(self) -> dict[str, Any]:
        """Extra `build_runner` arguments (`pipeline`, `routes`, `storage`...)."""
        return {}

    def identity(self) -> Identity:
        """The identity given to `post_checks` and `reserve_budget`."""
        return make_identity()

    # -- helpers --------------------------------------------------------------

    def _specs(self) -> dict[str, tuple[type[Plugin[Any]], Mapping[str, Any]]]:
        return {self.instance_name: (self.plugin_class, self.config)}

    def _validated_config(self) -> BaseModel:
        return self.plugin_class.Config.model_validate(dict(self.config))

    def _calls(self, runner: Runner) -> dict[str, HookCall]:
        return {
            stage: call for stage in DECISION_HOOKS for call in runner.stages[stage] if call.name == self.instance_name
        }

    def _started(self, **overrides: Any) -> AbstractAsyncContextManager[Runner]:
        options = {**self.runner_options(), **overrides}
        return started_runner(self._specs(), resources=self.resources(), **options)

    # -- the checks -----------------------------------------------------------

    def test_plugin_type_is_accepted(self) -> None:
        """The loader accepts the class: a Plugin subclass, current API version, strict pydantic Config."""
        check_plugin_type(type_name(self.plugin_class), self.plugin_class)

    def test_config_validates(self) -> None:
        """`config` is accepted through the same path as a configuration file."""
        try:
            build_runner(self._specs(), **self.runner_options())
        except ConfigurationError as error:
            pytest.fail(f"the configuration was refused:\n{error}", pytrace=False)

    def test_config_rejects_unknown_keys(self) -> None:
        """A misspelt setting is an error, not silently ignored."""
        with pytest.raises(ValidationError):
            self.plugin_class.Config.model_validate({**self.config, "surely_not_a_setting": True})
        with pytest.raises(ConfigurationError, match="surely_not_a_setting"):
            build_runner(
                {self.instance_name: (self.plugin_class, {**self.config, "surely_not_a_setting": True})},
                **self.runner_options(),
            )

    def test_config_json_schema_round_trips(self) -> None:
        """The schema is plain JSON and a JSON dump of the config validates back to the same config.

        Secrets dump masked, so secret fields are put back from `config` before re-validating.
        """
        model = self.plugin_class.Config
        schema = model.model_json_schema()
        assert json.loads(json.dumps(schema)) == schema
        assert schema.get("additionalProperties") is False, "the JSON schema must forbid unknown keys"
        properties = schema.get("properties", {})
        missing = [key for key in self.config if key not in properties]
        assert not missing, f"config keys missing from the JSON schema: {missing}"
        validated = self._validated_config()
        dumped = json.loads(json.dumps(validated.model_dump(mode="json")))
        for field in self.secret_config_fields:
            if field in self.config:
                dumped[field] = self.config[field]
        assert model.model_validate(dumped) == validated

    def test_secrets_are_redacted(self) -> None:
        """No secret value appears in the config's repr, str or JSON dump, nor in the instance's repr."""
        if not self.secret_config_fields:
            pytest.skip("the plugin declares no secret_config_fields")
        fields = self.plugin_class.Config.model_fields
        unknown = [field for field in self.secret_config_fields if field not in fields]
        assert not unknown, f"secret_config_fields not in {self.plugin_class.Config.__name__}: {unknown}"
        secrets = [
            (field, value) for field in self.secret_config_fields for value in _leaf_strings(self.config.get(field))
        ]
        assert secrets, "config gives no value for any secret field, so redaction cannot be checked"
        short = sorted({field for field, value in secrets if len(value) < _MIN_SECRET_LENGTH})
        assert not short, f"use test secrets of at least {_MIN_SECRET_LENGTH} characters for {short}"
        config = self._validated_config()
        instance = self.plugin_class(self.instance_name, config)
        renderings = {
            "repr(config)": repr(config),
            "str(config)": str(config),
            "config.model_dump_json()": config.model_dump_json(),
            "config.model_dump(mode='json')": json.dumps(config.model_dump(mode="json")),
            "repr(instance)": repr(instance),
            "str(instance)": str(instance),
        }
        leaks = sorted(
            {f"{field} in {where}" for where, text in renderings.items() for field, value in secrets if value in text}
        )
        assert not leaks, f"secret values are visible: {leaks} (use pydantic SecretStr)"

    def test_hooks_abstain_without_credentials(self) -> None:
        """With no credential in the request, `extract_credentials` and `custom_auth` return None,
        and a pipeline of just this plugin answers 401, not 503."""

        async def check() -> list[str]:
            problems: list[str] = []
            async with self._started() as runner:
                calls = self._calls(runner)
                for stage, args in (("extract_credentials", ()), ("custom_auth", (None,))):
                    call = calls.get(stage)
                    if call is None:
                        continue
                    try:
                        value = await call(self.absent_credentials_request(), *args)
                    except AuthcoreError as error:
                        problems.append(f"{stage} denied ({error!r}) instead of abstaining")
                        continue
                    if value is not None:
                        problems.append(f"{stage} returned {type(value).__name__} instead of None")
                result = await runner.authenticate(self.absent_credentials_request())
                if result.error is None or result.error.status_code != 401:
                    problems.append(
                        f"the pipeline answered {result.status_code}, expected 401:\n{result.trace.format()}"
                    )
            return problems

        problems = _run(check)
        assert not problems, "\n".join(problems)

    def test_garbage_input_raises_only_authcore_errors(self) -> None:
        """Hostile requests and credentials get None, a well-typed value or an AuthcoreError: never a crash."""

        async def check() -> list[str]:
            problems: list[str] = []
            async with self._started() as runner:
                calls = self._calls(runner)
                attempts: list[tuple[str, str, Callable[[], Awaitable[Any]]]] = []
                plain = Credentials.of("api_key", f"{self.credential_prefix}conformance-unknown-key", "authorization")
                for case, factory in garbage_requests().items():
                    for stage, call in calls.items():
                        attempts.append((stage, case, self._attempt(call, stage, factory, plain)))
                for case, credentials in garbage_credentials(self.credential_prefix).items():
                    for stage in ("custom_auth", "resolve_identity"):
                        if stage in calls:
                            attempt = self._attempt(calls[stage], stage, self.absent_credentials_request, credentials)
                            attempts.append((stage, f"credential:{case}", attempt))
                for stage, case, attempt in attempts:
                    problem = await self._outcome(stage, attempt)
                    if problem is not None:
                        problems.append(f"{stage} on {case}: {problem}")
            return problems

        problems = _run(check)
        assert not problems, "hooks failed on garbage input:\n" + "\n".join(problems)

    def _attempt(
        self, call: HookCall, stage: str, request: RequestFactory, credentials: Credentials
    ) -> Callable[[], Awaitable[Any]]:
        if stage in ("custom_auth", "resolve_identity"):
            return lambda: call(request(), credentials)
        if stage in ("post_checks", "reserve_budget"):
            return lambda: call(request(), self.identity())
        return lambda: call(request())

    @staticmethod
    async def _outcome(stage: str, attempt: Callable[[], Awaitable[Any]]) -> str | None:
        try:
            value = await attempt()
        except AuthcoreError:
            return None
        except TimeoutError:
            return "timed out"
        except Exception as error:  # noqa: BLE001 - reported as the failure being checked for
            return f"raised {type(error).__name__}"
        if isinstance(value, Reservation):
            await value.release()
        if value is not None and not isinstance(value, _RESULT_TYPES[stage]):
            return f"returned {type(value).__name__}"
        return None

    def test_timeout_is_honoured(self) -> None:
        """A hook slower than the instance timeout is cut off (503 plugin_timeout) without blocking the loop."""
        if self.slow_request() is None:
            pytest.skip("slow_request() is not provided")

        async def check() -> tuple[AuthResult, float]:
            async with self._started(timeout_s=self.slow_timeout_s) as runner:
                request = self.slow_request()
                assert request is not None
                start = perf_counter()
                result = await runner.authenticate(request)
                return result, perf_counter() - start

        result, elapsed = _run(check)
        limit = self.slow_timeout_s + self.timeout_slack_s
        assert elapsed < limit, f"the decision took {elapsed:.2f}s; a hook blocks the event loop past its timeout"
        assert_denied(result, 503, "plugin_timeout")

    def test_hooks_are_async_or_cpu_only(self) -> None:
        """Sync hooks block the event loop: the loader refuses them unless the class sets
        `cpu_only = True` (pure computation) or `blocking = True` (they run in a thread)."""
        try:
            build_runner(self._specs(), **self.runner_options())
        except ConfigurationError as error:
            if "is a plain function" in str(error):
                raise AssertionError(str(error)) from None
            raise
