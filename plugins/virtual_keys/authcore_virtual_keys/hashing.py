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


_BLOCK = 64
"""SHA-256 block size: HMAC pads the key to it (RFC 2104)."""
_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))


class KeyHasher:
    """Hashes raw keys to the hex token stored in the database.

    In `hmac` mode the SHA-256 states after the padded secret are computed
    once and copied per key: the same HMAC-SHA-256 as `hmac.digest`, which
    sets the key up again on every call and measured about 3x slower.
    """

    __slots__ = ("_inner", "_outer", "mode")

    def __init__(self, mode: str, secret: bytes | None) -> None:
        if mode == "hmac" and not secret:
            raise ValueError("hmac mode needs a secret")
        self.mode = mode
        self._inner: hashlib._Hash | None = None
        self._outer: hashlib._Hash | None = None
        if mode == "hmac":
            assert secret is not None
            block = (hashlib.sha256(secret).digest() if len(secret) > _BLOCK else secret).ljust(_BLOCK, b"\0")
            self._inner = hashlib.sha256(block.translate(_INNER_PAD))
            self._outer = hashlib.sha256(block.translate(_OUTER_PAD))

    def token(self, raw_key: str) -> str:
        """The stored hash of `raw_key` (64 hex characters)."""
        data = raw_key.encode("utf-8", "surrogatepass")
        inner = self._inner
        if inner is None:
            return hashlib.sha256(data).hexdigest()
        assert self._outer is not None
        inner = inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def derived_key(self, purpose: str) -> bytes | None:
        """A secret for `purpose` derived from the server secret (HMAC of a label no key can equal, since keys
        start with `sk-`); `None` in `sha256` mode, which has no secret."""
        if self._inner is None:
            return None
        return bytes.fromhex(self.token(f"authcore:{purpose}"))

    def __repr__(self) -> str:
        return f"KeyHasher({self.mode})"


def key_id(token: str) -> str:
    """The public id of a key: a prefix of its stored hash."""
    return token[:KEY_ID_LENGTH]


def is_token(value: str) -> bool:
    """Whether `value` has the shape of a stored hash (64 lowercase hex characters)."""
    return len(value) == 64 and all(char in "0123456789abcdef" for char in value)


class TokenMatcher:
    """Constant-time check of a presented key's stored hash against the hash of one configured secret.

    The request path hashes every `sk-` key anyway: comparing that hash costs
    no second digest of the presented value.
    """

    __slots__ = ("_token",)

    def __init__(self, hasher: KeyHasher, secret: str) -> None:
        self._token = hasher.token(secret)

    def matches(self, token: str) -> bool:
        # Fixed-length hex digests: the comparison reveals neither the secret's bytes nor its length.
        return hmac.compare_digest(token, self._token)

    def __repr__(self) -> str:
        return "TokenMatcher(***)"
