"""The request path's shortcuts give the same answers as the plain computations they replace."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
import socket
from types import MappingProxyType

import pytest
from authcore_virtual_keys.access import AccessGroups
from authcore_virtual_keys.checks import MEMO_MODELS, KeyAccess, check_key
from authcore_virtual_keys.hashing import KeyHasher, TokenMatcher
from authcore_virtual_keys.records import KeySnapshot, ScopeRecord, TeamRecord, UserRecord
from authcore_virtual_keys.store import KeyStore
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from authcore import AuthcoreError, DependencyFailure

from .conftest import Gateway, open_gateway

KEY = "sk-" + "a" * 43


@pytest.mark.parametrize("secret", [b"s", b"pepper-4f1c9a7e2b8d6f30a5c1e9b7", b"x" * 64, b"y" * 65, bytes(range(200))])
@pytest.mark.parametrize("raw", [KEY, "sk-", "sk-\u00e9\u00df", "sk-\ud800", "plain"])
def test_hmac_token_is_hmac_sha256(secret: bytes, raw: str) -> None:
    data = raw.encode("utf-8", "surrogatepass")
    hasher = KeyHasher("hmac", secret)
    assert hasher.token(raw) == hmac.new(secret, data, hashlib.sha256).hexdigest()
    # The precomputed states are copied, never updated in place.
    assert hasher.token(raw) == hasher.token(raw)


def test_sha256_token_is_plain_sha256() -> None:
    assert KeyHasher("sha256", None).token(KEY) == hashlib.sha256(KEY.encode()).hexdigest()


@pytest.mark.parametrize("mode", ["hmac", "sha256"])
def test_master_key_matches_by_hash(mode: str) -> None:
    hasher = KeyHasher(mode, b"pepper" if mode == "hmac" else None)
    matcher = TokenMatcher(hasher, KEY)
    assert matcher.matches(hasher.token(KEY))
    assert not matcher.matches(hasher.token(KEY + "x"))
    assert not matcher.matches(hasher.token(KEY[:-1]))
    assert KEY not in repr(matcher)
    assert hasher.token(KEY) not in repr(matcher)


def _snapshot(
    models: tuple[str, ...] = (),
    *,
    blocked: bool = False,
    team: TeamRecord | None = None,
    team_id: str | None = None,
    user: UserRecord | None = None,
    org: ScopeRecord | None = None,
    org_id: str | None = None,
    project: ScopeRecord | None = None,
    project_id: str | None = None,
) -> KeySnapshot:
    return KeySnapshot(
        token="0" * 64,
        key_alias=None,
        models=models,
        allowed_routes=None,
        expires_at=None,
        blocked=blocked,
        team_id=team_id if team_id is not None else (team.team_id if team is not None else None),
        user_id=user.user_id if user is not None else None,
        org_id=org_id if org_id is not None else (org.scope_id if org is not None else None),
        project_id=project_id if project_id is not None else (project.scope_id if project is not None else None),
        metadata=MappingProxyType({}),
        limits=MappingProxyType({}),
        team=team,
        user=user,
        org=org,
        project=project,
    )


SNAPSHOTS = {
    "open": _snapshot(),
    "two_models": _snapshot(("gpt-4o", "gpt-4o-mini")),
    "prefix": _snapshot(("openai/*",)),
    "group": _snapshot(("fast",)),
    "all_team_no_team": _snapshot(("all-team-models",)),
    "all_team": _snapshot(("all-team-models",), team=TeamRecord("t", None, ("gpt-4o", "fast"), False)),
    "team_narrows": _snapshot(("*",), team=TeamRecord("t", None, ("gpt-4o",), False)),
    "blocked": _snapshot(("gpt-4o",), blocked=True),
    "team_missing": _snapshot(("gpt-4o",), team_id="gone"),
    "team_blocked": _snapshot((), team=TeamRecord("t", None, (), True)),
    "org_missing": _snapshot((), org_id="gone"),
    "org_blocked": _snapshot((), org=ScopeRecord("o", (), True)),
    "org_narrows": _snapshot(("gpt-4o", "o1"), org=ScopeRecord("o", ("o1",), False)),
    "project_narrows": _snapshot((), project=ScopeRecord("p", ("openai/*",), False)),
    "project_missing": _snapshot((), project_id="gone"),
    "user_deactivated": _snapshot((), user=UserRecord("u", None, True)),
    "user_ok": _snapshot(("gpt-4o",), user=UserRecord("u", "internal_user", False)),
}
GROUPS: AccessGroups = MappingProxyType({"fast": ("gpt-4o-mini", "groq/*")})
MODELS = ["gpt-4o", "gpt-4o-mini", "o1", "openai/gpt-4o", "openai/", "groq/llama", "fast", "GPT-4o", "x" * 300]


def _outcome(check: object) -> tuple[str, str | None, str | None]:
    try:
        check()  # type: ignore[operator]
    except AuthcoreError as error:
        return ("deny", error.reason_id, error.message)
    return ("pass", None, None)


@pytest.mark.parametrize("name", list(SNAPSHOTS))
@pytest.mark.parametrize("groups", [MappingProxyType({}), GROUPS], ids=["no_groups", "groups"])
def test_key_access_decides_as_check_key(name: str, groups: AccessGroups) -> None:
    snapshot = SNAPSHOTS[name]
    access = KeyAccess(snapshot, "keys", groups)
    assert access.identity is snapshot.identity("keys", groups)
    assert access.restricts == snapshot.restricts_models()
    requests = [(), *([model] for model in MODELS), *itertools.combinations(MODELS[:5], 2)]
    for _ in range(2):  # the second pass answers from the memo
        for models in requests:
            expected = _outcome(lambda models=models: check_key(snapshot, models, groups))
            assert _outcome(lambda models=models: access.check(models)) == expected, (name, models)


def test_key_access_memo_is_bounded() -> None:
    access = KeyAccess(SNAPSHOTS["prefix"], "keys", MappingProxyType({}))
    for index in range(MEMO_MODELS * 2):
        access.check([f"openai/m{index}"])
    access.check(["openai/" + "m" * 1000])
    assert len(access._verdicts) == MEMO_MODELS


def test_expiry_is_kept_as_posix_seconds() -> None:
    from datetime import UTC, datetime

    when = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    snapshot = _snapshot()
    expiring = dataclasses.replace(snapshot, expires_at=when)
    assert KeyAccess(expiring, "keys", MappingProxyType({})).expires_at == when.timestamp()
    assert KeyAccess(snapshot, "keys", MappingProxyType({})).expires_at is None


async def _read_pid(gw: Gateway) -> int:
    async with gw.resources.read_engine().connect() as connection:
        pid: int = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    return pid


@pytest.mark.services
async def test_a_cold_lookup_survives_a_connection_the_server_dropped(authcore_postgres_url: str) -> None:
    async with open_gateway(authcore_postgres_url) as gw:
        key = (await gw.generate(models=["gpt-4o"]))["key"]
        assert (await gw.chat(key)).status_code == 200
        pid = await _read_pid(gw)  # the connection the next lookup checks out
        async with gw.resources.engine().begin() as connection:
            assert (await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar_one()
        gw.plugin.cache.clear()
        response = await gw.chat(key)
        assert response.status_code == 200, response.text
        assert await _read_pid(gw) != pid


@pytest.mark.services
async def test_a_lookup_fails_closed_when_the_database_is_gone(authcore_postgres_url: str) -> None:
    async with open_gateway(authcore_postgres_url) as gw:
        token = gw.plugin.hasher.token((await gw.generate(models=["gpt-4o"]))["key"])
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # Nothing listens there: the first attempt and the retry both fail.
        gone = create_async_engine(make_url(authcore_postgres_url).set(port=port), isolation_level="AUTOCOMMIT")
        try:
            with pytest.raises(DependencyFailure) as caught:
                await KeyStore(gw.resources.engine(), gone).lookup(token)
            assert caught.value.reason_id == "key_store_unavailable"
            assert caught.value.status_code == 503
        finally:
            await gone.dispose()
