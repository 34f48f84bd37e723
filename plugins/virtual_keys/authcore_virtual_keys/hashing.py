"""Key generation and the one-way hash under which keys are stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "sk-"
KEY_BYTES = 32
"""Random bytes per generated key (256 bits)."""
KEY_ID_LENGTH = 12
"""Hex characters of the hash used as the public key id in identities, traces and logs."""


def generate_key() -> str:
    """A new raw key: `sk-` and 43 url-safe characters."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


class KeyHasher:
    """Hashes raw keys to the hex token stored in the database."""

    __slots__ = ("_secret", "mode")

    def __init__(self, mode: str, secret: bytes | None) -> None:
        if mode == "hmac" and not secret:
            raise ValueError("hmac mode needs a secret")
        self.mode = mode
        self._secret = secret

    def token(self, raw_key: str) -> str:
        """The stored hash of `raw_key` (64 hex characters)."""
        data = raw_key.encode("utf-8", "surrogatepass")
        if self.mode == "hmac":
            assert self._secret is not None
            return hmac.digest(self._secret, data, "sha256").hex()
        return hashlib.sha256(data).hexdigest()

    def __repr__(self) -> str:
        return f"KeyHasher({self.mode})"


def key_id(token: str) -> str:
    """The public id of a key: a prefix of its stored hash."""
    return token[:KEY_ID_LENGTH]


def is_token(value: str) -> bool:
    """Whether `value` has the shape of a stored hash (64 lowercase hex characters)."""
    return len(value) == 64 and all(char in "0123456789abcdef" for char in value)


class SecretMatcher:
    """Constant-time check of a presented value against one configured secret."""

    __slots__ = ("_digest",)

    def __init__(self, secret: str) -> None:
        self._digest = hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()

    def matches(self, presented: str) -> bool:
        # Comparing fixed-length digests hides the secret's length as well as its bytes.
        candidate = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        return hmac.compare_digest(candidate, self._digest)

    def __repr__(self) -> str:
        return "SecretMatcher(***)"
