"""authcore plugin: spend limits that hold across replicas, with reservation and settlement.

Before the upstream call the most a request can cost is reserved against every
budget that applies, atomically (all or none); when the response ends the hold
is settled to the actual cost, or released. See the package README.
"""

from __future__ import annotations

from authcore_budgets.config import BudgetsConfig, ModelPrice
from authcore_budgets.plugin import BudgetsPlugin

__all__ = ["BudgetsConfig", "BudgetsPlugin", "ModelPrice"]
