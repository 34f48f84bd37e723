"""`VirtualKeysPlugin`: resolves `sk-` keys and the master key, checks them, serves the admin API."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Coroutine, Sequence
from types import MappingProxyType
from typing import Any, Final

from authcore import (
    Credentials,
    DependencyFailure,
    Forbidden,
    Identity,
    InvalidCredentials,
    InvalidRequest,
    Plugin,
    PluginContext,
    PluginRoute,
    RequestContext,
    hookimpl,
)
from authcore.body_models import UnreadableModels, body_models
from authcore.bounded import put_newest
from authcore.request import BODY_METHODS
from authcore_virtual_keys.admin import AdminApi
from authcore_virtual_keys.cache import SnapshotCache
from authcore_virtual_keys.checks import (
    EndUserCheck,
    KeyAccess,
    NamedEndUser,
    find_end_user,
    header_end_user,
)
from authcore_virtual_keys.config import VirtualKeysConfig, check_secrets
from authcore_virtual_keys.end_users import EndUserCache, EndUserRecord, end_user_from_row
from authcore_virtual_keys.hashing import KEY_PREFIX, KeyHasher, TokenMatcher
from authcore_virtual_keys.invalidation import InvalidationBus, channel_name
from authcore_virtual_keys.migrations import MIGRATIONS
from authcore_virtual_keys.records import KeySnapshot
from authcore_virtual_keys.shared_rows import SharedRows
from authcore_virtual_keys.store import KeyStore
from authcore_virtual_keys.tables import end_users

logger = logging.getLogger("authcore.virtual_keys")

MASTER_KEY_ID: Final = "master_key"
TOKENS_REMEMBERED: Final = 10_000
"""Raw keys whose hash `VirtualKeysPlugin` keeps, newest first (about 2 MB when full)."""


class _MasterKey:
    """Marks, in request state, that this instance resolved the master key."""


_MASTER = _MasterKey()


Pending = Coroutine[Any, Any, Identity]
"""What a request-path hook returns for the part that must wait; the runner awaits it."""


class VirtualKeysPlugin(Plugin[VirtualKeysConfig]):
    """LiteLLM-style virtual keys: `sk-` keys stored as HMAC-SHA-256 hashes, a master key, and `/key/*` admin routes."""

    Config = VirtualKeysConfig
    migrations = MIGRATIONS
    cpu_only = True
    """Its sync hooks compute only; what must wait is returned as a coroutine, which the runner awaits."""

    def __init__(self, name: str, config: VirtualKeysConfig) -> None:
        super().__init__(name, config)
        check_secrets(config)
        secret = config.hash_secret.get_secret_value().encode() if config.hash_secret is not None else None
        self._hasher = KeyHasher(config.hash_mode, secret if config.hash_mode == "hmac" else None)
        self._master = (
            TokenMatcher(self._hasher, config.master_key.get_secret_value()) if config.master_key is not None else None
        )
        self._store: KeyStore | None = None
        self._bus: InvalidationBus | None = None
        self._shared: SharedRows | None = None
        self._tokens: dict[str, str] = {}
        """Raw key -> its stored hash, for keys that resolved. In this process's memory only, like the request
        that carried the key; never logged, traced, shared or persisted (`security_bar.md` allows in-process)."""
        end_user_cache = EndUserCache(self._load_end_user, ttl=config.cache_ttl_s)
        self._cache = SnapshotCache(
            self._lookup,
            ttl=config.cache_ttl_s,
            negative_ttl=config.negative_cache_ttl_s,
            negative_size=config.negative_cache_size,
            end_users=end_user_cache,
        )
        self._state_key = f"authcore_virtual_keys:{name}"
        self._end_user_key = f"authcore_virtual_keys:{name}:end_user"
        self._access_groups = config.access_groups()
        self._admin = AdminApi(self, self._access_groups)
        self._end_users = EndUserCheck(
            end_user_cache, validate=config.validate_end_users, header=config.end_user_header
        )
        self._master_identity = Identity(
            auth_method="master_key", role="proxy_admin", key_id=MASTER_KEY_ID, plugin=self.name
        )

    # -- what the admin API uses --------------------------------------------

    @property
    def store(self) -> KeyStore:
        if self._store is None:
            raise DependencyFailure("The key store is not started.", reason_id="key_store_not_started")
        return self._store

    @property
    def hasher(self) -> KeyHasher:
        return self._hasher

    @property
    def cache(self) -> SnapshotCache:
        return self._cache

    async def _lookup(self, token: str, max_age_s: float) -> KeySnapshot | None:
        """A key to (re)load: a row another replica shared at most `max_age_s` ago, else the database (shared then).

        A request that waits for the read (`max_age_s` 0) goes to the database alone: a miss in Redis first would
        add a round trip to it. Background refreshes use the shared rows; they keep keys in use loaded anyway.
        """
        shared, bus = self._shared, self._bus
        if max_age_s <= 0 or shared is None or bus is None or bus.sending:
            # While a change made here is on its way out, rows shared before it still look current.
            return await self.store.lookup(token)
        snapshot, generation = await shared.get(token, max_age_s)
        if snapshot is not None:
            return snapshot
        read_at = time.monotonic()
        snapshot, row = await self.store.lookup_row(token)
        if row is not None and generation is not None:
            shared.put(token, row, generation, read_at)
        return snapshot

    async def _load_end_user(self, user_id: str) -> EndUserRecord | None:
        row = await self.store.get_row(end_users, user_id)
        return end_user_from_row(row) if row is not None else None

    # -- hooks --------------------------------------------------------------

    @hookimpl
    async def startup(self, context: PluginContext) -> None:
        store = KeyStore(context.resources.engine(), context.resources.read_engine())
        if self.config.create_schema:
            await store.create_schema()
        self._store = store
        self._admin.describe = context.describe
        redis = context.resources.redis()
        if redis is not None:
            # Without Redis (the embedded single process) changes are dropped from this process's cache only.
            prefix = context.resources.redis_prefix
            signing_key = self._hasher.derived_key("virtual_keys:shared-rows")
            if self.config.shared_cache and signing_key is None:
                # Rows in Redis are trusted only when signed, and sha256 mode has no secret to sign them with.
                logger.info("virtual keys: shared_cache needs hash_mode hmac (a secret to sign rows); not sharing")
            elif self.config.shared_cache and signing_key is not None:
                self._shared = SharedRows(
                    redis, f"{prefix}vk:{self.name}:", ttl_s=self.config.cache_ttl_s, signing_key=signing_key
                )
            bump = self._shared.bump if self._shared is not None else None
            bus = InvalidationBus(redis, channel_name(prefix, self.name), self._cache, before=bump)
            self._cache.set_publisher(bus.publish)
            self._bus = bus
            await bus.start()

    @hookimpl
    async def shutdown(self) -> None:
        if self._bus is not None:
            self._cache.set_publisher(None)
            await self._bus.stop()
            self._bus = None
        if self._shared is not None:
            await self._shared.aclose()
            self._shared = None
        self._cache.clear()
        self._tokens.clear()
        self._store = None

    @hookimpl
    def routes(self) -> Sequence[PluginRoute]:
        return self._admin.routes()

    def _access(self, snapshot: KeySnapshot) -> KeyAccess:
        return KeyAccess(snapshot, self.name, self._access_groups)

    # The two request-path hooks are plain functions that return a coroutine only for what must wait
    # (a database read, the body, an end user's row): a cached key is answered without a coroutine.

    @hookimpl
    def resolve_identity(self, request: RequestContext, credentials: Credentials) -> Identity | Pending | None:
        """The master key, or a stored `sk-` key; `None` for other credentials."""
        if credentials.kind != "api_key":
            return None
        raw = credentials.value.get_secret_value()
        # A key that resolved here before is a stored key, not the master key, and its hash is known:
        # the hash is most of what a cached key costs.
        token = self._tokens.get(raw)
        if token is None:
            master = self._master
            if master is None and not raw.startswith(KEY_PREFIX):
                return None
            # One hash serves both: the master key is compared by its hash under the same hasher.
            token = self._hasher.token(raw)
            if master is not None:
                if master.matches(token):
                    request.state[self._state_key] = _MASTER
                    return self._for_end_user(request, self._master_identity)
                if not raw.startswith(KEY_PREFIX):
                    # Not a virtual key; in particular a stored hash is never accepted as one.
                    return None
            return self._load_key(request, raw, token)
        snapshot = self._cache.fresh(token)
        if snapshot is None:
            return self._load_key(request, raw, token)
        return self._key_identity(request, snapshot)

    async def _load_key(self, request: RequestContext, raw: str, token: str) -> Identity:
        """`resolve_identity` for a key not in the cache, or seen for the first time: read it, then go on."""
        snapshot = await self._cache.get(token)
        if snapshot is None:
            raise InvalidCredentials(reason_id="unknown_key")
        # Only keys that exist: presenting made-up keys cannot push real ones out.
        put_newest(self._tokens, raw, token, TOKENS_REMEMBERED)
        found = self._key_identity(request, snapshot)
        return found if isinstance(found, Identity) else await found

    def _key_identity(self, request: RequestContext, snapshot: KeySnapshot) -> Identity | Pending:
        """The identity of a stored key, checked for expiry now, for the end user the request names."""
        access = snapshot.derived(self._state_key, self._access)
        # Checked on every request, not when the cache was filled.
        if access.expires_at is not None and time.time() >= access.expires_at:
            raise InvalidCredentials(reason_id="expired_key")
        request.state[self._state_key] = access
        return self._for_end_user(request, access.identity)

    def _for_end_user(self, request: RequestContext, identity: Identity) -> Identity | Pending:
        """`identity` for the end user the request names, found here and judged in `post_checks` (only the
        identity reaches the gateway); `request.state` keeps what was found (`None`: none named)."""
        user_id = header_end_user(request.scope["headers"], self._end_users.header)
        if user_id is None and request.method not in BODY_METHODS:
            # No end user in the headers and no body to name one: the common GET, decided without waiting.
            return identity
        return self._with_end_user(request, identity, find_end_user(request, self._end_users, user_id))

    async def _with_end_user(
        self, request: RequestContext, identity: Identity, finding: Awaitable[NamedEndUser | None]
    ) -> Identity:
        named = request.state[self._end_user_key] = await finding
        return _identity_for(identity, named)

    @hookimpl
    def post_checks(self, request: RequestContext, identity: Identity) -> Coroutine[Any, Any, None] | None:
        """Blocked key or team, deactivated user, blocked end user, and models (fallbacks included) -> 403."""
        if identity.plugin != self.name:
            return None
        # Set with the identity in `resolve_identity`: a `NamedEndUser`, or `None` when it names none.
        named = request.state.get(self._end_user_key)
        if isinstance(named, NamedEndUser):
            named.check(self._end_users)
        resolved = request.state.get(self._state_key)
        if resolved is _MASTER and identity.auth_method == "master_key":
            return None
        if not isinstance(resolved, KeyAccess):
            # An identity carrying this instance's name that it did not resolve: never trust it.
            raise Forbidden(reason_id="identity_not_resolved_here")
        if not resolved.restricts:
            resolved.check(())
            return None
        if request.method in BODY_METHODS and request.read_body is None:
            return _check_models_after_body(request, resolved)
        _check_models(request, resolved)
        return None


def _check_models(request: RequestContext, resolved: KeyAccess) -> None:
    """The models the request asks for (the body's fallbacks too) are all allowed to the key; the body is read."""
    models = request.read_models()
    if request.method in BODY_METHODS:
        try:
            fallbacks = body_models(request.read_json())
        except UnreadableModels as error:
            raise InvalidRequest(str(error), reason_id="unreadable_models", param="fallbacks") from None
        if fallbacks:
            models = (*models, *fallbacks)
    resolved.check(models)


async def _check_models_after_body(request: RequestContext, resolved: KeyAccess) -> None:
    await request.body()
    _check_models(request, resolved)


def _identity_for(identity: Identity, named: object) -> Identity:
    """`identity` for the request's end user, when it names one: its id in `end_user_id` (budgets count
    end-user spend by it), the row's budget in `limits["end_user"]`, and what the gateway must apply
    (default model and region, `end_users.DEFAULT_MODEL_FIELD`, `REGION_FIELD`) in `metadata`.
    """
    if not isinstance(named, NamedEndUser) or named.user_id is None or named.error is not None:
        return identity
    record = named.record
    if record is None or (not record.identity_metadata and not record.limits):
        return dataclasses.replace(identity, end_user_id=named.user_id)
    return dataclasses.replace(
        identity,
        end_user_id=named.user_id,
        metadata=MappingProxyType({**identity.metadata, **record.identity_metadata}),
        limits=MappingProxyType({**identity.limits, "end_user": record.limits}) if record.limits else identity.limits,
    )
