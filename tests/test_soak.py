"""The soak harness at CI size (``make soak`` runs it at any size): generations in bursts with
5 % faults of every kind the emulator scripts; each ends Done or a typed error, the clean burst
after the faults is at least 95 % Done, no worker bills at the end, memory and descriptors stay
flat."""

from __future__ import annotations

import pytest

from benchmarks.soak import FAULTS, SoakConfig, run_soak

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_a_v2_soak_with_every_fault_kind_holds() -> None:
    report = await run_soak(SoakConfig(generations=440, clean=30, seed=1, protocol="v2"))
    assert not report.problems(), report.render()
    assert set(report.faults) == set(FAULTS)  # every kind was armed at least once
    assert sum(report.outcomes.values()) == 440 and report.outcomes["Done"] < 440
    assert sum(report.clean_outcomes.values()) == 30
    assert report.open_ledger == 0 and report.billed_s > 0


async def test_a_v1_soak_holds() -> None:
    report = await run_soak(SoakConfig(generations=200, clean=20, seed=2, protocol="v1"))
    assert not report.problems(), report.render()
    assert not any(kind.startswith("lease.") for kind in report.faults)


def test_a_report_names_what_fell_short() -> None:
    from benchmarks.soak import SoakReport

    report = SoakReport(SoakConfig())
    report.outcomes.update({"Done": 8, "hung": 1, "untyped:RuntimeError": 1})
    report.clean_outcomes.update({"Done": 9, "TransportError": 1})
    report.open_ledger = 2
    report.rss = [100 * 2**20] * 4 + [200 * 2**20] * 4
    report.fds = [10] * 4 + [40] * 4
    problems = "\n".join(report.problems())
    for says in ("hung", "untyped:RuntimeError", "90% Done", "2 worker(s)", "RSS", "fds"):
        assert says in problems
    assert "FAILS" in report.render()
