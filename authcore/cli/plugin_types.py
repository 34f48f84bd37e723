"""Importing installed plugin types one by one, for listings and diagnostics."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint

from authcore import hookspecs
from authcore.errors import ConfigurationError
from authcore.loader import ENTRY_POINT_GROUP, InstalledPlugin, PluginType, check_plugin_type

HOOK_NAMES: tuple[str, ...] = tuple(
    name for name, value in vars(hookspecs).items() if callable(value) and hasattr(value, "authcore_spec")
)
"""Every hook of the contract, in declaration order."""


@dataclass(frozen=True, slots=True)
class LoadedType:
    """One installed plugin type: its class, or why it could not be used."""

    row: InstalledPlugin
    plugin_type: PluginType | None
    error: str | None

    @property
    def hooks(self) -> list[str]:
        if self.plugin_type is None:
            return []
        return [name for name in HOOK_NAMES if hasattr(getattr(self.plugin_type, name, None), "authcore_impl")]


def load_type(row: InstalledPlugin) -> LoadedType:
    """Import the entry point; an import or contract failure becomes `error`, never an exception."""
    try:
        loaded = EntryPoint(row.name, row.value, ENTRY_POINT_GROUP).load()
        return LoadedType(row, check_plugin_type(row.name, loaded), None)
    except ConfigurationError as error:
        return LoadedType(row, None, str(error))
    except Exception as error:  # noqa: BLE001 - shown in the listing, not raised
        return LoadedType(row, None, f"failed to import: {type(error).__name__}: {error}")
