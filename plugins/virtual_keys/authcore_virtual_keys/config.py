"""Settings of the `virtual_keys` plugin."""

from __future__ import annotations

from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

from authcore import ConfigurationError
from authcore.credentials import KEY_HEADERS
from authcore_virtual_keys.access import SPECIAL_NAMES, AccessGroups, listed

GroupMember = Annotated[str, StringConstraints(min_length=1, max_length=255)]
MIN_SECRET_LENGTH = 16
WELL_KNOWN_MASTER_KEYS = frozenset({"sk-1234", "sk-12345", "sk-123456", "changeme", "password", "master_key"})
"""Keys copied from documentation examples; anyone can guess them."""


CREDENTIAL_HEADERS = frozenset(
    {b"authorization", b"proxy-authorization", b"cookie", b"x-litellm-api-key", *KEY_HEADERS}
)
"""Headers that carry keys (the built-in extractor's, and the usual others): never an end user id."""


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
    shared_cache: bool = Field(
        True,
        description=(
            "With Redis: background refreshes share the key rows they read (for `cache_ttl_s`), so replicas "
            "using one key read it from the database about once per refresh between them, not once each. Requests "
            "never wait for Redis (a request that needs a key goes to the database). Redis failing only sends "
            "refreshes to the database. Without Redis there is nothing to share."
        ),
    )
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

    end_user_header: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$",
        description=(
            "Another header naming the end user (LiteLLM's `user_header_name`), read after x-litellm-customer-id "
            "and x-litellm-end-user-id and before the body's `user`."
        ),
    )

    model_access_groups: dict[GroupMember, Annotated[list[GroupMember], Field(min_length=1)]] = Field(
        default_factory=dict,
        description=(
            "Access groups: a name usable in the `models` list of a key, team, organization or project, standing for "
            "these model names or `prefix/*` patterns. Groups do not nest."
        ),
    )

    @field_validator("end_user_header")
    @classmethod
    def _not_a_credential_header(cls, value: str | None) -> str | None:
        # The end user id lands in identities, logs and the ledger: a credential header would put the key there.
        if value is not None and value.lower().encode() in CREDENTIAL_HEADERS:
            raise ValueError(f"{value!r} carries credentials; name another header for the end user")
        return value

    @field_validator("model_access_groups")
    @classmethod
    def _groups(cls, groups: dict[str, list[str]]) -> dict[str, list[str]]:
        members = {member for listed_models in groups.values() for member in listed_models}
        for name, listed_models in groups.items():
            if name in SPECIAL_NAMES or "*" in name:
                raise ValueError(f"access group name {name!r} is reserved or a pattern")
            special = SPECIAL_NAMES.intersection(listed_models)
            if special:
                raise ValueError(f"access group {name!r} lists {sorted(special)[0]!r}; list models or 'prefix/*'")
            # A name that is also a model (or matched by a pattern) would be ambiguous, and would let groups nest.
            if listed(name, members):
                raise ValueError(f"access group name {name!r} is also listed as a model; groups do not nest")
        return groups

    def access_groups(self) -> AccessGroups:
        """The groups as a read-only mapping of tuples, for the checks."""
        return MappingProxyType({name: tuple(models) for name, models in self.model_access_groups.items()})


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
