"""The lifecycle report of a recorded run: one bar per phase visit, totals equal to the ledger.

A mixed workload runs against the emulator with spans going to a JSON-lines trace file; the
report made from that file must draw every phase visit and show the emulator's billed total.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_cost_attribution import mixed_workload

from observability import Telemetry, read_trace_file, write_report
from orchestrator.emulator import EndpointConfig

pytestmark = pytest.mark.anyio


class Bars(HTMLParser):
    """Counts the phase bars (``class="bar"``) and checks the page is well nested."""

    def __init__(self) -> None:
        super().__init__()
        self.bars = 0
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if ("class", "bar") in attrs:
            self.bars += 1
        if tag not in {"meta", "br", "hr", "img", "link", "input", "rect", "line", "path"}:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if ("class", "bar") in attrs:
            self.bars += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in {"rect", "line", "path"}:
            return
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1:]}>"
        self.open.pop()


async def test_the_report_of_a_recorded_run_draws_every_phase_and_matches_the_ledger(
    tmp_path: Path,
) -> None:
    trace_file = tmp_path / "trace.jsonl"
    telemetry = Telemetry.configure(otlp=False, trace_file=trace_file)
    endpoint = EndpointConfig(protocol="v2", cold_start_s=75.0)
    orch, billed, _ = await mixed_workload(
        endpoint, MaxWorkers=2, IdleTimeoutSec=60, telemetry=telemetry
    )
    telemetry.shutdown()

    summary = write_report(trace_file, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    spans = read_trace_file(trace_file)
    phases = [s for s in spans if "swarmpod.phase" in s.attributes]
    parser = Bars()
    parser.feed(page)
    parser.close()
    assert parser.bars == len(phases) == summary.phase_bars
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert summary.gpu_seconds_billed == pytest.approx(billed, rel=0.01)
    assert summary.gpu_seconds_attributed == pytest.approx(billed, rel=0.01)
    assert summary.generations == len(orch.costs.generations)
    shown = f"{summary.gpu_seconds_attributed:,.0f}"
    assert shown in page or shown.replace(",", "") in page
