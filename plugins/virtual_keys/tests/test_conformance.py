"""The authcore plugin conformance suite, run against `VirtualKeysPlugin`."""

from __future__ import annotations

from typing import Any, ClassVar

from authcore_virtual_keys import VirtualKeysPlugin

from authcore.testing.conformance import PluginConformance

from .conftest import HASH_SECRET, MASTER_KEY


class TestVirtualKeysConformance(PluginConformance):
    plugin_class = VirtualKeysPlugin
    config: ClassVar[dict[str, Any]] = {"master_key": MASTER_KEY, "hash_secret": HASH_SECRET}
    secret_config_fields = ("master_key", "hash_secret")
    credential_prefix = "sk-"
