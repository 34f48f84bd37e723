"""authcore plugin: Custom auth hooks for enterprise integrations.

Skeleton: installable and discoverable through the `enterprise_custom` entry point; it
implements no hook yet, so an instance of it abstains from every stage.
"""

from __future__ import annotations

from authcore import EmptyConfig, Plugin

__all__ = ["EnterpriseCustomPlugin"]


class EnterpriseCustomPlugin(Plugin[EmptyConfig]):
    """Custom auth hooks for enterprise integrations (not implemented yet)."""
