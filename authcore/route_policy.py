"""Which routes skip authentication and which need an admin: decided on the raw path."""

from __future__ import annotations

from collections.abc import Iterable

from authcore.errors import Forbidden
from authcore.models import Identity

READ_METHODS = frozenset({"GET", "HEAD"})
ADMIN_ROLE = "proxy_admin"
ADMIN_VIEWER_ROLE = "proxy_admin_viewer"


def check_patterns(patterns: Iterable[str]) -> None:
    """Raise `ValueError` for a pattern that is not `/exact` or `/prefix/*` (for config validators)."""
    for pattern in patterns:
        if not pattern.startswith("/"):
            raise ValueError(f"route pattern {pattern!r} must start with '/'")
        if "*" in pattern[:-1] or (pattern.endswith("*") and not pattern.endswith("/*")):
            raise ValueError(f"route pattern {pattern!r}: '*' is only allowed as a final '/*'")


class RoutePatterns:
    """Exact paths and `/prefix/*` patterns. `/a/*` matches `/a` and everything under `/a/`."""

    __slots__ = ("_exact", "_prefixes")

    def __init__(self, patterns: Iterable[str]) -> None:
        exact: set[str] = set()
        prefixes: list[str] = []
        for pattern in patterns:
            if pattern.endswith("/*"):
                exact.add(pattern[:-2] or "/")
                prefixes.append(pattern[:-1])
            else:
                exact.add(pattern)
        self._exact = frozenset(exact)
        self._prefixes = tuple(prefixes)

    def __bool__(self) -> bool:
        return bool(self._exact)

    def matches(self, path: str) -> bool:
        return path in self._exact or (bool(self._prefixes) and path.startswith(self._prefixes))


class RoutePolicy:
    """Public routes skip the pipeline; admin routes need `proxy_admin` (viewers may read)."""

    __slots__ = ("_any_admin", "admin", "public")

    def __init__(self, public: Iterable[str], admin: Iterable[str]) -> None:
        self.public = RoutePatterns(public)
        self.admin = RoutePatterns(admin)
        # Decided once: `RoutePatterns.__bool__` is a Python call per request otherwise.
        self._any_admin = bool(self.admin)

    def check(self, method: str, path: str, identity: Identity) -> None:
        """Raise `Forbidden` when the identity may not use this route."""
        if identity.allowed_routes is not None and not RoutePatterns(identity.allowed_routes).matches(path):
            raise Forbidden("This credential is not allowed to call this route.", reason_id="route_not_allowed")
        if self._any_admin and self.admin.matches(path):
            role = identity.role
            if role == ADMIN_ROLE or (role == ADMIN_VIEWER_ROLE and method in READ_METHODS):
                return
            raise Forbidden("This route is for proxy admins only.", reason_id="admin_only")
