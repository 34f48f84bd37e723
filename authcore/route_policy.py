"""Which routes skip authentication and which need an admin: decided on the raw path."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

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


PLAIN: Final = 0
PUBLIC: Final = 1
ADMIN: Final = 2
MAX_REMEMBERED_PATHS = 4096
"""Paths whose kind `RoutePolicy.kinds` keeps; others are matched on every request."""


class RoutePolicy:
    """Public routes skip the pipeline; admin routes need `proxy_admin` (viewers may read)."""

    __slots__ = ("admin", "kinds", "public")

    def __init__(self, public: Iterable[str], admin: Iterable[str]) -> None:
        self.public = RoutePatterns(public)
        self.admin = RoutePatterns(admin)
        self.kinds: dict[str, int] = {}
        """Path -> `PLAIN`, `PUBLIC` or `ADMIN`, as `kind` found it: a gateway serves a few paths over and over."""

    def kind(self, path: str) -> int:
        """`PUBLIC` (public wins), `ADMIN` or `PLAIN`; remembered for the first `MAX_REMEMBERED_PATHS` paths."""
        kind = self.kinds.get(path)
        if kind is None:
            kind = PUBLIC if self.public.matches(path) else ADMIN if self.admin.matches(path) else PLAIN
            # Bounded: clients choose paths, and an unbounded dict would be theirs to grow.
            if len(self.kinds) < MAX_REMEMBERED_PATHS:
                self.kinds[path] = kind
        return kind

    def check(self, method: str, path: str, identity: Identity, kind: int | None = None) -> None:
        """Raise `Forbidden` when the identity may not use this route (`kind`: `self.kind(path)`, if known)."""
        if identity.allowed_routes is not None and not RoutePatterns(identity.allowed_routes).matches(path):
            raise Forbidden("This credential is not allowed to call this route.", reason_id="route_not_allowed")
        if (self.kind(path) if kind is None else kind) == ADMIN:
            role = identity.role
            if role == ADMIN_ROLE or (role == ADMIN_VIEWER_ROLE and method in READ_METHODS):
                return
            raise Forbidden("This route is for proxy admins only.", reason_id="admin_only")
