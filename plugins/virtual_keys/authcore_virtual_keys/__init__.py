"""authcore plugin: LiteLLM-style virtual API keys.

Skeleton: installable and discoverable through the `virtual_keys` entry point; it
implements no hook yet, so an instance of it abstains from every stage.
"""

from __future__ import annotations

from authcore import EmptyConfig, Plugin

__all__ = ["VirtualKeysPlugin"]


class VirtualKeysPlugin(Plugin[EmptyConfig]):
    """LiteLLM-style virtual API keys (not implemented yet)."""
