"""Shared test setup: `pytester` runs the bundled pytest plugin in throwaway projects."""

pytest_plugins = ("pytester",)
