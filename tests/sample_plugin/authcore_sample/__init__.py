"""A third-party authcore plugin: fixed tokens from the configuration, one per user.

Enable it in `authcore.yaml`::

    plugins:
      static:
        use: sample_static_tokens
        config:
          tokens:
            alice: os.environ/ALICE_TOKEN   # a value such as "st-..."
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from authcore import Credentials, Identity, InvalidCredentials, Plugin, hookimpl


class StaticTokensConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: dict[str, SecretStr] = Field(description="User id -> that user's token.")
    prefix: str = Field("st-", min_length=1, description="Only credentials starting with this are handled here.")
    role: str | None = Field(None, description="Role given to every identity, e.g. `internal_user`.")

    @model_validator(mode="after")
    def _tokens_are_usable(self) -> StaticTokensConfig:
        values = [token.get_secret_value() for token in self.tokens.values()]
        # Messages name users only: a validation error must not echo a token.
        for user_id, value in zip(self.tokens, values, strict=True):
            if not value.startswith(self.prefix) or len(value) <= len(self.prefix):
                raise ValueError(f"the token of {user_id!r} must start with {self.prefix!r}")
        if len(set(values)) != len(values):
            raise ValueError("two users share a token")
        return self


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


class StaticTokens(Plugin[StaticTokensConfig]):
    """Resolve `api_key` credentials carrying the configured prefix to the user owning the token."""

    Config = StaticTokensConfig

    def __init__(self, name: str, config: StaticTokensConfig) -> None:
        super().__init__(name, config)
        self._digests = [(user_id, _digest(token.get_secret_value())) for user_id, token in config.tokens.items()]

    @hookimpl
    async def resolve_identity(self, credentials: Credentials) -> Identity | None:
        presented = credentials.reveal()
        if credentials.kind != "api_key" or not presented.startswith(self.config.prefix):
            return None
        digest = _digest(presented)
        owner: str | None = None
        # Compare against every token, without stopping early, so timing says nothing about which matched.
        for user_id, expected in self._digests:
            if hmac.compare_digest(digest, expected):
                owner = user_id
        if owner is None:
            raise InvalidCredentials(reason_id="unknown_token")
        return Identity(
            auth_method="static_token",
            plugin=self.name,
            user_id=owner,
            role=self.config.role,
            key_id=digest.hex()[:8],
        )
