"""authcore plugin: Spend limits and rate limits with reservation and settlement.

Skeleton: installable and discoverable through the `budgets` entry point; it
implements no hook yet, so an instance of it abstains from every stage.
"""

from __future__ import annotations

from authcore import EmptyConfig, Plugin

__all__ = ["BudgetsPlugin"]


class BudgetsPlugin(Plugin[EmptyConfig]):
    """Spend limits and rate limits with reservation and settlement (not implemented yet)."""
