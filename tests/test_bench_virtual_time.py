"""The virtual-time benchmark's workloads run, and cover the emulated time they claim.

Their wall-clock time is what ``make bench`` reports; no test asserts it.
"""

from __future__ import annotations

import pytest

from benchmarks.virtual_time import WORKLOADS, measure


@pytest.mark.parametrize(
    ("name", "at_least_s"),
    [
        ("emulator: wake-up with a 120 s cold start", 120.0),
        ("engine: generation with a 120 s cold start", 120.0),
        ("replay: the 90 s cold-start cassette", 90.0),
        ("replay: the ten-minute scenario", 420.0),
    ],
)
def test_each_workload_covers_its_emulated_minutes(name: str, at_least_s: float) -> None:
    (workload,) = [w for w in WORKLOADS if w.name == name]
    assert measure(workload).virtual_s >= at_least_s
