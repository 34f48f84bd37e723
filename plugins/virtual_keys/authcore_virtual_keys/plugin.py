"""`VirtualKeysPlugin`: resolves `sk-` keys and the master key, checks them, serves the admin API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from authcore import (
    Credentials,
    DependencyFailure,
    Forbidden,
    Identity,
    InvalidCredentials,
    Plugin,
    PluginContext,
    PluginRoute,
    RequestContext,
    hookimpl,
)
from authcore_virtual_keys.access import UnreadableModels, body_models
from authcore_virtual_keys.admin import AdminApi
from authcore_virtual_keys.cache import SnapshotCache
from authcore_virtual_keys.checks import EndUserCheck, InvalidRequest, check_key
from authcore_virtual_keys.config import VirtualKeysConfig, check_secrets
from authcore_virtual_keys.hashing import KEY_PREFIX, KeyHasher, SecretMatcher
from authcore_virtual_keys.invalidation import InvalidationBus, channel_name
from authcore_virtual_keys.records import KeySnapshot
from authcore_virtual_keys.store import KeyStore

MASTER_KEY_ID: Final = "master_key"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _MasterKey:
    """Marks, in request state, that this instance resolved the master key."""


_MASTER = _MasterKey()


class VirtualKeysPlugin(Plugin[VirtualKeysConfig]):
    """LiteLLM-style virtual keys: `sk-` keys stored as HMAC-SHA-256 hashes, a master key, and `/key/*` admin routes."""

    Config = VirtualKeysConfig

    def __init__(self, name: str, config: VirtualKeysConfig) -> None:
        super().__init__(name, config)
        check_secrets(config)
        secret = config.hash_secret.get_secret_value().encode() if config.hash_secret is not None else None
        self._hasher = KeyHasher(config.hash_mode, secret if config.hash_mode == "hmac" else None)
        self._master = SecretMatcher(config.master_key.get_secret_value()) if config.master_key is not None else None
        self._store: KeyStore | None = None
        self._bus: InvalidationBus | None = None
        self._cache = SnapshotCache(
            self._lookup,
            ttl=config.cache_ttl_s,
            negative_ttl=config.negative_cache_ttl_s,
            negative_size=config.negative_cache_size,
        )
        self._state_key = f"authcore_virtual_keys:{name}"
        self._access_groups = config.access_groups()
        self._admin = AdminApi(self, self._access_groups)
        self._end_users = EndUserCheck(lambda: self.store, validate=config.validate_end_users)

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

    async def _lookup(self, token: str) -> KeySnapshot | None:
        return await self.store.lookup(token)

    # -- hooks --------------------------------------------------------------

    @hookimpl
    async def startup(self, context: PluginContext) -> None:
        store = KeyStore(context.resources.engine())
        if self.config.create_schema:
            await store.create_schema()
        self._store = store
        redis = context.resources.redis()
        if redis is not None:
            # Without Redis (the embedded single process) changes are dropped from this process's cache only.
            bus = InvalidationBus(redis, channel_name(context.resources.redis_prefix, self.name), self._cache)
            self._cache.set_publisher(bus.publish)
            self._bus = bus
            await bus.start()

    @hookimpl
    async def shutdown(self) -> None:
        if self._bus is not None:
            self._cache.set_publisher(None)
            await self._bus.stop()
            self._bus = None
        self._cache.clear()
        self._store = None

    @hookimpl
    def routes(self) -> Sequence[PluginRoute]:
        return self._admin.routes()

    @hookimpl
    async def resolve_identity(self, request: RequestContext, credentials: Credentials) -> Identity | None:
        """The master key, or a stored `sk-` key; `None` for other credentials."""
        if credentials.kind != "api_key":
            return None
        raw = credentials.reveal()
        if self._master is not None and self._master.matches(raw):
            request.state[self._state_key] = _MASTER
            return Identity(auth_method="master_key", role="proxy_admin", key_id=MASTER_KEY_ID, plugin=self.name)
        if not raw.startswith(KEY_PREFIX):
            # Not a virtual key; in particular a stored hash is never accepted as one.
            return None
        snapshot = await self._cache.get(self._hasher.token(raw))
        if snapshot is None:
            raise InvalidCredentials(reason_id="unknown_key")
        # Checked on every request, not when the cache was filled.
        if snapshot.expires_at is not None and snapshot.expired(datetime.now(UTC)):
            raise InvalidCredentials(reason_id="expired_key")
        request.state[self._state_key] = snapshot
        return snapshot.identity(self.name, self._access_groups)

    @hookimpl
    async def post_checks(self, request: RequestContext, identity: Identity) -> None:
        """Blocked key or team, deactivated user, blocked end user, and models (fallbacks included) -> 403."""
        if identity.plugin != self.name:
            return
        await self._end_users(request)
        resolved = request.state.get(self._state_key)
        if resolved is _MASTER and identity.auth_method == "master_key":
            return
        if not isinstance(resolved, KeySnapshot):
            # An identity carrying this instance's name that it did not resolve: never trust it.
            raise Forbidden(reason_id="identity_not_resolved_here")
        models: list[str] = []
        if resolved.restricts_models():
            models.extend(await request.requested_models())
            if request.method in _BODY_METHODS:
                try:
                    models.extend(body_models(await request.json()))
                except UnreadableModels as error:
                    raise InvalidRequest(str(error), reason_id="unreadable_models", param="fallbacks") from None
        check_key(resolved, models, self._access_groups)
