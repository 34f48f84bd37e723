"""`request.user` / `request.auth` for an identity, and their reuse across requests."""

from __future__ import annotations

import gc

import pytest

from authcore import Identity
from authcore.principal import AuthcoreUser, StarletteViews, auth_credentials


def test_scopes_are_authenticated_role_then_the_identitys() -> None:
    identity = Identity(auth_method="jwt", role="internal_user", scopes=("read", "write"))
    assert list(auth_credentials(identity).scopes) == ["authenticated", "internal_user", "read", "write"]
    assert list(auth_credentials(Identity(auth_method="custom")).scopes) == ["authenticated"]


def test_shared_scopes_cannot_be_changed_by_one_request() -> None:
    """One `AuthCredentials` serves every request of an identity, so an app must not be able to grow it."""
    credentials = StarletteViews().of(Identity(auth_method="api_key", role="internal_user"))[2]
    with pytest.raises(AttributeError):
        credentials.scopes.append("proxy_admin")  # type: ignore[attr-defined]
    assert "proxy_admin" not in credentials.scopes


def test_the_same_identity_object_gets_the_same_views() -> None:
    views = StarletteViews()
    identity = Identity(auth_method="api_key", key_id="k1", role="internal_user")
    first = views.of(identity)
    assert views.of(identity) is first
    _, user, credentials = first
    assert isinstance(user, AuthcoreUser)
    assert user.identity is identity
    assert "internal_user" in credentials.scopes


def test_an_equal_identity_is_not_taken_for_the_remembered_one() -> None:
    """Kept by object: another identity, even with equal fields, gets views of its own."""
    views = StarletteViews()
    one = Identity(auth_method="api_key", key_id="k1")
    other = Identity(auth_method="api_key", key_id="k1")
    assert views.of(one)[1].identity is one
    assert views.of(other)[1].identity is other


def test_a_collected_identity_whose_id_is_reused_gets_its_own_views() -> None:
    """The memo holds the identity it was built for, so its id cannot pass to a new object meanwhile."""
    views = StarletteViews(size=4)
    for index in range(50):
        identity = Identity(auth_method="api_key", key_id=f"k{index}", role="internal_user" if index % 2 else None)
        _, user, credentials = views.of(identity)
        assert user.identity is identity
        assert ("internal_user" in credentials.scopes) == bool(index % 2)
        del identity, user, credentials
        gc.collect()
    assert len(views._known) <= 4
