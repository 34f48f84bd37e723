"""Starlette's `request.user` / `request.auth` view of an authcore identity."""

from __future__ import annotations

from starlette.authentication import AuthCredentials, BaseUser

from authcore.models import Identity


class AuthcoreUser(BaseUser):
    """`request.user` for an authenticated request; `.identity` is the full principal."""

    __slots__ = ("_identity",)

    def __init__(self, identity: Identity) -> None:
        self._identity = identity

    @property
    def identity(self) -> Identity:  # type: ignore[override]
        """The full principal. Starlette types this as a plain id; `identity_id` gives that."""
        return self._identity

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        identity = self.identity
        return identity.user_id or identity.key_alias or identity.key_id or identity.team_id or ""

    @property
    def identity_id(self) -> str:
        return self.identity.user_id or self.identity.key_id or ""

    def __repr__(self) -> str:
        return f"AuthcoreUser({self.display_name!r}, plugin={self.identity.plugin!r})"


def auth_credentials(identity: Identity) -> AuthCredentials:
    """Scopes for Starlette's `requires()`: `authenticated`, the role, and the identity's scopes."""
    scopes = ["authenticated"]
    if identity.role:
        scopes.append(identity.role)
    scopes.extend(identity.scopes)
    return AuthCredentials(scopes)
