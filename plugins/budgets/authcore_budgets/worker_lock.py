"""Without Redis, exactly one process may own the budget counters: it holds an exclusive file lock.

`authcore serve --workers 4` on the embedded default would otherwise give each
worker its own counters and multiply every budget by four. The second worker
to start finds the lock taken and refuses to start, with a message saying why.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path

from sqlalchemy.engine import URL

from authcore import ConfigurationError


def default_lock_path(database_url: URL) -> Path | None:
    """Next to the SQLite file; in the temp directory for another database; `None` for in-memory SQLite."""
    if database_url.get_backend_name() == "sqlite":
        database = database_url.database
        if not database or database == ":memory:" or database.startswith("file::memory:"):
            return None
        return Path(f"{database}.budgets.lock")
    where = database_url.render_as_string(hide_password=True)
    digest = hashlib.sha256(where.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"authcore-budgets-{digest}.lock"


class WorkerLock:
    """An exclusive, non-blocking `flock`; the kernel drops it when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigurationError(
                f"budgets: another process already owns the in-process budget counters (lock {self.path}). "
                "Several workers or replicas without Redis would each count spend separately and multiply every "
                "budget. Run one worker, or set storage.redis_url so all workers share the counters."
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
