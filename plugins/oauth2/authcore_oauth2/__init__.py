"""authcore plugin: OAuth2 token introspection (RFC 7662).

Skeleton: installable and discoverable through the `oauth2_introspection` entry point; it
implements no hook yet, so an instance of it abstains from every stage.
"""

from __future__ import annotations

from authcore import EmptyConfig, Plugin

__all__ = ["OAuth2IntrospectionPlugin"]


class OAuth2IntrospectionPlugin(Plugin[EmptyConfig]):
    """OAuth2 token introspection (RFC 7662) (not implemented yet)."""
