"""Per-run medians and p99s shared by the in-process benchmarks."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass
class Summary:
    name: str
    description: str
    run_medians_us: list[float] = field(default_factory=list)
    run_p99s_us: list[float] = field(default_factory=list)

    @property
    def median_us(self) -> float:
        return statistics.median(self.run_medians_us)

    @property
    def best_us(self) -> float:
        return min(self.run_medians_us)

    @property
    def p99_us(self) -> float:
        return statistics.median(self.run_p99s_us)


def percentile(sorted_values: list[int], fraction: float) -> int:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]
