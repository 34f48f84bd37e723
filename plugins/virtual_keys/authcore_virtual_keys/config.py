"""Settings of the `virtual_keys` plugin."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from authcore import ConfigurationError

MIN_SECRET_LENGTH = 16
WELL_KNOWN_MASTER_KEYS = frozenset({"sk-1234", "sk-12345", "sk-123456", "changeme", "password", "master_key"})
"""Keys copied from documentation examples; anyone can guess them."""


class VirtualKeysConfig(BaseModel):
    """How keys are verified, hashed and cached."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    master_key: SecretStr | None = Field(
        None,
        description="The admin key (role proxy_admin): 16+ characters; `sk-1234` and other examples are refused.",
    )
    hash_secret: SecretStr | None = Field(
        None,
        description=(
            "HMAC-SHA-256 key (pepper) for stored key hashes, at least 16 characters. Required with `hash_mode: hmac`. "
            "Keep it out of the database."
        ),
    )
    hash_mode: Literal["hmac", "sha256"] = Field(
        "hmac",
        description="`hmac` (default), or `sha256` only for databases imported from LiteLLM (plain SHA-256).",
    )
    cache_ttl_s: float = Field(10.0, ge=0, le=60, description="How long a key read from the database is trusted.")
    negative_cache_ttl_s: float = Field(
        5.0, ge=0, le=60, description="How long an unknown key is remembered as unknown (saves database reads)."
    )
    negative_cache_size: int = Field(10_000, ge=0, le=1_000_000, description="Most unknown keys remembered at once.")
    create_schema: bool = Field(
        True, description="Run the plugin's database migrations at start-up (creates the tables when missing)."
    )
    validate_end_users: bool = Field(
        False,
        description=(
            "Deny (403) requests naming an end user (`user` in the body, x-litellm-end-user-id) that was never "
            "created with /customer/new. Blocked end users are denied either way."
        ),
    )


def check_secrets(config: VirtualKeysConfig) -> None:
    """Refuse settings that make the keys guessable or forgeable."""
    master = config.master_key.get_secret_value() if config.master_key is not None else None
    if master is not None:
        if not master.strip():
            raise ConfigurationError("master_key is empty; set a random value of at least 16 characters or remove it")
        if master in WELL_KNOWN_MASTER_KEYS:
            raise ConfigurationError("master_key is a well-known example value; set a random value")
        if len(master) < MIN_SECRET_LENGTH:
            raise ConfigurationError(f"master_key is shorter than {MIN_SECRET_LENGTH} characters")
    if config.hash_mode == "sha256" and config.hash_secret is not None:
        # Silently ignoring the secret would store weaker hashes than the operator believes.
        raise ConfigurationError("hash_secret is not used with hash_mode: sha256; remove one of them")
    if config.hash_mode == "hmac":
        if config.hash_secret is None:
            raise ConfigurationError(
                "hash_secret is required to store keys (HMAC-SHA-256); set it, or use hash_mode: sha256 "
                "only for a database imported from LiteLLM"
            )
        secret = config.hash_secret.get_secret_value()
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigurationError(f"hash_secret is shorter than {MIN_SECRET_LENGTH} characters")
        if master is not None and secret == master:
            raise ConfigurationError("hash_secret must differ from master_key")
