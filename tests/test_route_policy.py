"""Public and admin routes, decided on the raw path, and the memory of paths already decided."""

from __future__ import annotations

import pytest

from authcore.errors import Forbidden
from authcore.models import Identity
from authcore.route_policy import ADMIN, MAX_REMEMBERED_PATHS, PLAIN, PUBLIC, RoutePolicy

USER = Identity("api_key", role="internal_user")
ADMIN_USER = Identity("api_key", role="proxy_admin")
VIEWER = Identity("api_key", role="proxy_admin_viewer")


def test_kinds_of_exact_and_prefix_patterns() -> None:
    policy = RoutePolicy(["/health", "/docs/*"], ["/key/*", "/health"])

    assert policy.kind("/health") == PUBLIC  # public wins over admin
    assert policy.kind("/docs") == PUBLIC
    assert policy.kind("/docs/api") == PUBLIC
    assert policy.kind("/key/generate") == ADMIN
    assert policy.kind("/keys") == PLAIN
    assert policy.kind("/v1/chat/completions") == PLAIN


def test_remembered_kinds_are_bounded_by_the_number_of_paths() -> None:
    policy = RoutePolicy([], ["/key/*"])

    for index in range(MAX_REMEMBERED_PATHS + 50):
        assert policy.kind(f"/client/chosen/{index}") == PLAIN

    assert len(policy.kinds) == MAX_REMEMBERED_PATHS
    # Past the bound, paths are still decided correctly, just not remembered.
    assert policy.kind("/key/delete") == ADMIN
    assert "/key/delete" not in policy.kinds


def test_admin_route_needs_an_admin_and_viewers_may_read() -> None:
    policy = RoutePolicy([], ["/key/*"])

    policy.check("POST", "/key/generate", ADMIN_USER)
    policy.check("GET", "/key/info", VIEWER)
    with pytest.raises(Forbidden) as viewer_write:
        policy.check("POST", "/key/generate", VIEWER)
    with pytest.raises(Forbidden) as user_read:
        policy.check("GET", "/key/info", USER, policy.kind("/key/info"))

    assert viewer_write.value.reason_id == "admin_only"
    assert user_read.value.reason_id == "admin_only"
    policy.check("POST", "/v1/chat/completions", USER)


def test_allowed_routes_of_the_identity_are_enforced_on_any_route() -> None:
    policy = RoutePolicy([], [])
    narrow = Identity("api_key", allowed_routes=("/v1/chat/*",))

    policy.check("POST", "/v1/chat/completions", narrow, PLAIN)
    with pytest.raises(Forbidden) as denied:
        policy.check("POST", "/v1/embeddings", narrow, PLAIN)

    assert denied.value.reason_id == "route_not_allowed"
