"""The decision trace: what each plugin did for one request."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import NamedTuple

RawStep = tuple[str, "str | None", str, "str | None", int]
"""(stage, plugin, outcome, reason_id, duration in ns), as the runner records a step."""


class TraceStep(NamedTuple):
    stage: str
    plugin: str | None
    outcome: str
    """`abstain`, `credentials`, `identity`, `pass`, `reserved`, `deny`, `error`, `timeout`, ..."""
    reason_id: str | None
    duration_us: float


class Trace:
    """Steps recorded by the runner. Holds names and reason ids only, never a secret."""

    __slots__ = ("_raw", "_request_id", "add")

    def __init__(self) -> None:
        # Plain tuples on the hot path; TraceStep objects only when someone reads them.
        raw: list[RawStep] = []
        self._raw = raw
        self._request_id: str | None = None
        self.add: Callable[[RawStep], None] = raw.append
        """Record `(stage, plugin, outcome, reason_id, duration_ns)`: the list's own `append`, no Python frame."""

    @property
    def request_id(self) -> str:
        if self._request_id is None:
            self._request_id = uuid.uuid4().hex
        return self._request_id

    @property
    def steps(self) -> list[TraceStep]:
        return [TraceStep(s, p, o, r, d / 1000) for s, p, o, r, d in self._raw]

    def to_dict(self) -> dict[str, object]:
        return {"request_id": self.request_id, "steps": [step._asdict() for step in self.steps]}

    def format(self) -> str:
        """A human-readable table, one step per line."""
        lines = [f"{'stage':<20} {'plugin':<20} {'outcome':<12} {'reason':<24} {'µs':>9}"]
        for step in self.steps:
            lines.append(
                f"{step.stage:<20} {step.plugin or '-':<20} {step.outcome:<12} "
                f"{step.reason_id or '-':<24} {step.duration_us:>9.1f}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Trace({[(s.stage, s.plugin, s.outcome, s.reason_id) for s in self.steps]})"
