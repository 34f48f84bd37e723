"""The authcore plugin conformance suite, run against `BudgetsPlugin` (in-process store, in-memory SQLite)."""

from __future__ import annotations

from typing import Any, ClassVar

from authcore_budgets import BudgetsPlugin
from budget_helpers import PRICES

from authcore.testing.conformance import PluginConformance


class TestBudgetsConformance(PluginConformance):
    plugin_class = BudgetsPlugin
    config: ClassVar[dict[str, Any]] = {
        "prices": PRICES,
        "global_budget": 1,
        "soft_budget_webhook_url": "http://127.0.0.1:9/hook?token=conformance-secret-4d1",
    }
    secret_config_fields = ("soft_budget_webhook_url",)
