"""The plugin's Alembic history, run by the core runner (`authcore.migrations`) on the shared engine.

Run at start-up when `create_schema` is set, and by `authcore migrate`. The
revision is kept in `budgets_alembic_version`, apart from other plugins' histories.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from authcore.migrations import Migrations

VERSION_TABLE: Final = "budgets_alembic_version"
SCRIPT_LOCATION: Final = str(Path(__file__).parent)
ADVISORY_LOCK_ID: Final = 0x6275645F6D6967  # "bud_mig"
"""Postgres advisory lock held while upgrading, so concurrent start-ups migrate one at a time."""

MIGRATIONS: Final = Migrations(SCRIPT_LOCATION, VERSION_TABLE, ADVISORY_LOCK_ID)

head = MIGRATIONS.head
upgrade = MIGRATIONS.upgrade
current = MIGRATIONS.current
