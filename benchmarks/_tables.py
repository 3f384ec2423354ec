"""The lease-policy report as text: plain tables for the terminal, GitHub markdown for the
README. One table per trace and regime: each policy's median and worst over the seeds."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ._figures import Run, Summary
from ._forwarding import Forwarding
from ._goals import Goal
from ._traces import Trace

__all__ = ["Report", "markdown", "table"]

_REGIMES = {"flashboot": "FlashBoot granted", "cold": "FlashBoot never (every start cold)"}
_HEADERS = (
    "policy",
    "failed",
    "GPU-s",
    "x floor",
    "worst",
    "p50 +s",
    "worst",
    "p95 +s",
    "worst",
    "calls/gen",
    "calls/cold",
    "worst",
    "frontier",
)


@dataclass(frozen=True)
class Report:
    """Everything one run of the benchmark measured.

    Attributes:
        runs: one per trace, regime, seed and policy.
        summaries: one per trace, regime and policy (over the seeds).
        goals: issue 15's goals, judged.
        checks: the floor checks over every run (all must be 0).
        forwarding: the real-time forwarding measurement (None when skipped).
        traces: one trace per name, as a description (the interactive one of the first seed).
        seeds: the seeds replayed.
    """

    runs: tuple[Run, ...]
    summaries: tuple[Summary, ...]
    goals: tuple[Goal, ...]
    checks: tuple[Goal, ...]
    forwarding: Forwarding | None
    traces: tuple[Trace, ...]
    seeds: tuple[int, ...]


def _seconds(value: float) -> str:
    return "-" if value == float("inf") else f"{value:.1f}"


def _cells(summary: Summary) -> tuple[str, ...]:
    per_cold = summary.calls_per_cold
    failed = f"{summary.failed.median:g}"
    if summary.failed.worst > summary.failed.median:
        failed += f" ({summary.failed.worst:g})"
    return (
        summary.policy,
        failed,
        f"{summary.billed_s.median:.0f}",
        f"{summary.ratio.median:.2f}",
        f"{summary.ratio.worst:.2f}",
        _seconds(summary.added_p50_s.median),
        _seconds(summary.added_p50_s.worst),
        _seconds(summary.added_p95_s.median),
        _seconds(summary.added_p95_s.worst),
        f"{summary.calls_per_generation.median:.1f}",
        "-" if per_cold is None else f"{per_cold.median:.1f}",
        "-" if per_cold is None else f"{per_cold.worst:.1f}",
        "yes" if summary.on_frontier else "beaten by " + ", ".join(summary.beaten_by),
    )


def _blocks(report: Report) -> list[tuple[str, list[Summary]]]:
    blocks: dict[tuple[str, str], list[Summary]] = {}
    for summary in report.summaries:
        blocks.setdefault((summary.trace, summary.regime), []).append(summary)
    titled = []
    for (trace, regime), rows in blocks.items():
        runs = [r for r in report.runs if r.trace == trace and r.regime == regime]
        floors = sorted({round(r.floor.total_s) for r in runs})
        first = runs[0]
        title = (
            f"{trace}, {_REGIMES[regime]}: cost floor {statistics.median(floors):.0f} GPU-s "
            f"(seeds: {floors[0]}-{floors[-1]}), latency floor p50 +{first.floor_p50_s:.1f} s "
            f"p95 +{first.floor_p95_s:.1f} s"
        )
        titled.append((title, rows))
    return titled


def _goal_line(goal: Goal) -> str:
    mark = "PASS" if goal.passed else "MISS"
    measured = "n/a" if goal.measured is None else f"{goal.measured:.2f} {goal.unit}"
    line = f"[{mark}] {goal.what}: {measured} (limit {goal.limit:g} {goal.unit})"
    if goal.reason:
        line += f" — {goal.reason}"
    return line


def _notes(report: Report) -> list[str]:
    seeds = report.seeds
    notes = [f"{trace.name}: {trace.description}" for trace in report.traces]
    notes.append(
        f"seeds {seeds[0]}-{seeds[-1]} ({len(seeds)}): each seeds the endpoint's start draws "
        "(and the interactive trace's arrivals); figures are the median and the worst over them"
    )
    notes.append(
        "x floor: GPU-s over the cost floor (the clairvoyant at the latency floor, from the "
        "seed's own draws); p50/p95 +s: time-to-image minus generation time; calls: every "
        "RunPod API request the emulator served, over all requests / over the cold generations"
    )
    failed = [r for r in report.runs if r.failures]
    for run in failed[:8]:
        kinds = ", ".join(f"{count} {kind}" for kind, count in run.failures)
        notes.append(
            f"{run.trace}/{run.regime}/seed {run.seed}/{run.policy}: "
            f"{run.requests - run.ok} of {run.requests} failed ({kinds})"
        )
    if len(failed) > 8:
        notes.append(f"... {len(failed) - 8} more runs with failed requests")
    if report.forwarding is not None:
        fwd = report.forwarding
        notes.append(
            f"forwarding (real time, {fwd.samples} warm generations, medians): "
            f"GENERATING event {fwd.generating_ms:.2f} ms, request forwarded "
            f"{fwd.forwarded_ms:.2f} ms, fake SwarmUI (same loop) received it "
            f"{fwd.received_ms:.2f} ms, whole generation {fwd.total_ms:.2f} ms"
        )
    virtual = sum(run.virtual_s for run in report.runs)
    wall = sum(run.wall_s for run in report.runs)
    notes.append(
        f"{len(report.runs)} replays: {virtual / 3600:.0f} h of virtual time in "
        f"{wall:.0f} s of wall time"
    )
    return notes


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i in (0, len(row) - 1) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def table(report: Report) -> str:
    """The report as plain-text tables, notes, the floor checks and the goals."""
    lines = ["lease policies: GPU-seconds over the cost floor, added latency, RunPod calls"]
    for title, rows in _blocks(report):
        lines += ["", title]
        lines += _aligned([_HEADERS, *(_cells(row) for row in rows)])
    lines.append("")
    lines.extend(_notes(report))
    lines.append("floor checks (every run):")
    lines.extend("  " + _goal_line(check) for check in report.checks)
    lines.append("goals:")
    lines.extend("  " + _goal_line(goal) for goal in report.goals)
    return "\n".join(lines)


def markdown(report: Report) -> str:
    """The report as GitHub markdown tables, notes, checks and goals."""
    lines: list[str] = []
    for title, rows in _blocks(report):
        lines += [f"**{title}**", ""]
        lines.append("| " + " | ".join(_HEADERS) + " |")
        lines.append(
            "|" + "|".join("---" if i == 0 else "---:" for i in range(len(_HEADERS))) + "|"
        )
        lines.extend("| " + " | ".join(_cells(row)) + " |" for row in rows)
        lines.append("")
    lines.extend(f"- {note}" for note in _notes(report))
    lines.append("")
    lines.extend(f"- {_goal_line(check)}" for check in report.checks)
    lines.extend(f"- {_goal_line(goal)}" for goal in report.goals)
    return "\n".join(lines)
