"""authcore plugin: JWT verification and claim mapping.

Skeleton: installable and discoverable through the `jwt` entry point; it
implements no hook yet, so an instance of it abstains from every stage.
"""

from __future__ import annotations

from authcore import EmptyConfig, Plugin

__all__ = ["JWTPlugin"]


class JWTPlugin(Plugin[EmptyConfig]):
    """JWT verification and claim mapping (not implemented yet)."""
