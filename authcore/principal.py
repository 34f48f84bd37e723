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
    """Scopes for Starlette's `requires()`: `authenticated`, the role, and the identity's scopes.

    The scopes are a tuple, so one `AuthCredentials` can serve every request of the same
    identity (`StarletteViews`) without one request's change reaching another.
    """
    credentials = AuthCredentials()
    role = (identity.role,) if identity.role else ()
    credentials.scopes = ("authenticated", *role, *identity.scopes)  # type: ignore[assignment]
    return credentials


class StarletteViews:
    """`request.user` and `request.auth` for an identity, remembered for the identity object.

    Plugins hand out the same `Identity` object for every request of a cached key or
    token, so both views are built once per identity instead of once per request. Kept
    by identity object (`is`), at most `size` of them: any other identity, or one with
    the same fields, is only a miss.
    """

    __slots__ = ("_known", "_size")

    def __init__(self, size: int = 1024) -> None:
        # id(identity) -> (identity, user, auth); the identity held here keeps its id from being reused.
        self._known: dict[int, tuple[Identity, AuthcoreUser, AuthCredentials]] = {}
        self._size = size

    def of(self, identity: Identity) -> tuple[Identity, AuthcoreUser, AuthCredentials]:
        """`(identity, AuthcoreUser(identity), auth_credentials(identity))`, built on the first call."""
        known = self._known.get(id(identity))
        if known is not None and known[0] is identity:
            return known
        if len(self._known) >= self._size:
            self._known.clear()
        known = self._known[id(identity)] = (identity, AuthcoreUser(identity), auth_credentials(identity))
        return known
