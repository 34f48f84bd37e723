"""Extraction and custom_auth: abstaining, ambiguity, and the custom_auth escape hatch."""

from __future__ import annotations

import pytest

import authcore
from authcore.request import RequestContext
from tests._runner_helpers import KeyHeader, KeyTable, build_runner, request, started


class Abstain(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl
    async def extract_credentials(self, request: RequestContext) -> authcore.Credentials | None:
        return None


class Fixed(authcore.Plugin[authcore.EmptyConfig]):
    """Always extracts the value of `x-other` (or nothing)."""

    @authcore.hookimpl
    async def extract_credentials(self, request: RequestContext) -> authcore.Credentials | None:
        value = request.headers.get("x-other")
        return authcore.Credentials.of("api_key", value, "x-other") if value else None


class Seen(authcore.Plugin[authcore.EmptyConfig]):
    """A resolver that records the credentials it was given and accepts all of them."""

    seen: list[authcore.Credentials]

    @authcore.hookimpl
    async def resolve_identity(self, credentials: authcore.Credentials) -> authcore.Identity:
        type(self).seen.append(credentials)
        return authcore.Identity("api_key", user_id=credentials.reveal())


TYPES = {"key": KeyHeader, "table": KeyTable, "abstain": Abstain, "other": Fixed, "seen": Seen}


async def test_all_extractors_abstain_is_401_no_credentials_with_bearer_challenge() -> None:
    runner = await started(
        build_runner(TYPES, {"a": "abstain", "b": "key", "t": "table"}, {"extract_credentials": ["a", "b"]})
    )
    result = await runner.authenticate(request())
    assert result.error is not None
    assert result.status_code == 401
    assert result.error.reason_id == "no_credentials"
    assert result.error.response_headers()["www-authenticate"] == "Bearer"
    assert [step.outcome for step in result.trace.steps if step.stage == "extract_credentials"] == [
        "abstain",
        "abstain",
    ]


async def test_credentials_present_but_every_resolver_abstains_is_401() -> None:
    runner = await started(build_runner(TYPES, {"k": "key", "t": "table"}, {"extract_credentials": ["k"]}))
    result = await runner.authenticate(request(headers={"x-key": "nobody-owns-this"}))
    assert result.status_code == 401
    assert isinstance(result.error, authcore.InvalidCredentials)
    assert result.identity is None


async def test_known_key_is_allowed_and_identity_attributed_to_instance() -> None:
    runner = await started(build_runner(TYPES, {"k": "key", "t": "table"}, {"extract_credentials": ["k"]}))
    result = await runner.authenticate(request(headers={"x-key": "good"}))
    assert result.allowed
    assert result.identity is not None
    assert result.identity.user_id == "u-good"
    assert result.identity.plugin == "t"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"x-key": "good", "x-other": "good"}, 200),
        ({"x-key": "good", "x-other": "different"}, 400),
        ({"x-other": "good"}, 200),
    ],
    ids=["equal-values-merge", "different-values-ambiguous", "second-only"],
)
async def test_two_extractors(headers: dict[str, str], status: int) -> None:
    Seen.seen = []
    runner = await started(
        build_runner(TYPES, {"k": "key", "o": "other", "s": "seen"}, {"extract_credentials": ["k", "o"]})
    )
    result = await runner.authenticate(request(headers=headers))
    assert result.status_code == status
    if status == 400:
        assert isinstance(result.error, authcore.MalformedCredentials)
        assert result.error.reason_id == "ambiguous_credentials"
        assert Seen.seen == []
    else:
        assert len(Seen.seen) == 1


async def test_equal_values_keep_the_first_extractors_credentials() -> None:
    Seen.seen = []
    runner = await started(
        build_runner(TYPES, {"o": "other", "k": "key", "s": "seen"}, {"extract_credentials": ["o", "k"]})
    )
    result = await runner.authenticate(request(headers={"x-key": "same", "x-other": "same"}))
    assert result.allowed
    assert [c.source for c in Seen.seen] == ["x-other"]


# -- custom_auth ----------------------------------------------------------------------------------------


class CustomIdentity(authcore.Plugin[authcore.EmptyConfig]):
    calls: list[authcore.Credentials | None]

    @authcore.hookimpl
    async def custom_auth(
        self, request: RequestContext, credentials: authcore.Credentials | None
    ) -> authcore.Identity | None:
        type(self).calls.append(credentials)
        if request.headers.get("x-custom") == "yes":
            return authcore.Identity("custom", user_id="custom-user")
        return None


class CustomSwap(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl
    async def custom_auth(self, credentials: authcore.Credentials | None) -> authcore.Credentials | None:
        return authcore.Credentials.of("api_key", "swapped", "custom")


class NeverResolve(authcore.Plugin[authcore.EmptyConfig]):
    called = 0

    @authcore.hookimpl
    async def resolve_identity(self, credentials: authcore.Credentials) -> authcore.Identity | None:
        type(self).called += 1
        return authcore.Identity("api_key", user_id="resolver")


class CheckLog(authcore.Plugin[authcore.EmptyConfig]):
    log: list[str]

    @authcore.hookimpl
    async def post_checks(self, identity: authcore.Identity) -> None:
        type(self).log.append(f"check:{identity.user_id}")

    @authcore.hookimpl
    async def reserve_budget(self, identity: authcore.Identity) -> authcore.Reservation | None:
        type(self).log.append(f"reserve:{identity.user_id}")
        return None


CUSTOM_TYPES = {
    "custom": CustomIdentity,
    "swap": CustomSwap,
    "never": NeverResolve,
    "checklog": CheckLog,
    "seen": Seen,
    "key": KeyHeader,
}


async def test_custom_identity_skips_resolve_but_checks_and_reserve_still_run() -> None:
    CustomIdentity.calls, CheckLog.log, NeverResolve.called = [], [], 0
    runner = await started(
        build_runner(CUSTOM_TYPES, {"c": "custom", "n": "never", "l": "checklog"}, {"extract_credentials": []})
    )
    result = await runner.authenticate(request(headers={"x-custom": "yes"}))
    assert result.allowed
    assert result.identity is not None
    assert result.identity.user_id == "custom-user"
    assert result.identity.plugin == "c"
    assert NeverResolve.called == 0
    assert CheckLog.log == ["check:custom-user", "reserve:custom-user"]
    assert CustomIdentity.calls == [None]  # called even though no credential was extracted


async def test_custom_auth_abstaining_without_credentials_is_401() -> None:
    CustomIdentity.calls = []
    runner = await started(build_runner(CUSTOM_TYPES, {"c": "custom", "n": "never"}, {"extract_credentials": []}))
    result = await runner.authenticate(request())
    assert result.status_code == 401
    assert result.error is not None
    assert result.error.reason_id == "no_credentials"


async def test_custom_credentials_replace_the_extracted_ones() -> None:
    Seen.seen = []
    runner = await started(
        build_runner(CUSTOM_TYPES, {"k": "key", "w": "swap", "s": "seen"}, {"extract_credentials": ["k"]})
    )
    result = await runner.authenticate(request(headers={"x-key": "original"}))
    assert result.allowed
    assert [c.reveal() for c in Seen.seen] == ["swapped"]


async def test_first_non_none_custom_auth_wins() -> None:
    CustomIdentity.calls = []
    runner = await started(
        build_runner(
            CUSTOM_TYPES,
            {"w": "swap", "c": "custom", "s": "seen"},
            {"extract_credentials": [], "custom_auth": ["w", "c"]},
        )
    )
    result = await runner.authenticate(request(headers={"x-custom": "yes"}))
    assert result.allowed
    assert result.identity is not None
    assert result.identity.user_id == "swapped"
    assert CustomIdentity.calls == []  # never reached: the swap decided first
