"""Insertion-ordered dicts used as bounded caches: the newest entry last, the oldest dropped first."""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def put_newest(entries: dict[K, V], key: K, value: V, limit: int) -> None:
    """Store `value` under `key` as the newest entry, then drop the oldest until at most `limit` remain."""
    entries.pop(key, None)
    entries[key] = value
    while len(entries) > limit:
        del entries[next(iter(entries))]
