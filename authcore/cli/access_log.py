"""uvicorn's access log without query strings: a `?key=` must never reach a log file."""

from __future__ import annotations

import copy
import logging
from typing import Any

from uvicorn.config import LOGGING_CONFIG

# Position of the request target in uvicorn's access-log record arguments:
# (client_addr, method, full_path, http_version, status_code).
_PATH_ARG = 2


class DropQueryString(logging.Filter):
    """Rewrite the logged request target to its path; the query string is replaced by `?…`."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or len(args) <= _PATH_ARG:
            return True
        target = args[_PATH_ARG]
        if isinstance(target, str):
            path, mark, _query = target.partition("?")
            if mark:
                record.args = (*args[:_PATH_ARG], f"{path}?…", *args[_PATH_ARG + 1 :])
        return True


def logging_config() -> dict[str, Any]:
    """uvicorn's default logging configuration with `DropQueryString` on the access handler."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["drop_query_string"] = {"()": f"{__name__}.DropQueryString"}
    config["handlers"]["access"]["filters"] = ["drop_query_string"]
    return config
