"""The lease-policy report as text: a plain table for the terminal, a GitHub markdown table."""

from __future__ import annotations

from ._figures import Goal, Report, Row

__all__ = ["markdown", "table"]

_HEADERS = (
    "trace",
    "policy",
    "ok",
    "GPU-s",
    "floor",
    "x floor",
    "FB floor",
    "x FB",
    "p50 s",
    "p95 s",
    "boots (flash)",
    "cold gens",
    "calls/gen",
    "calls/cold",
)


def _cells(row: Row) -> tuple[str, ...]:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    per_cold = row.calls_per_cold_generation
    return (
        row.trace,
        row.policy,
        f"{row.ok}/{row.requests}",
        str(row.billed_s),
        f"{row.floor_without_flashboot.total:.0f}",
        f"{row.issue_ratio:.2f}" + ("*" if row.ok < row.requests else ""),
        f"{row.floor_s:.0f}",
        f"{row.ratio:.2f}" + ("*" if row.ok < row.requests else ""),
        seconds(row.p50_s),
        seconds(row.p95_s),
        f"{row.boots} ({row.flashboots})",
        str(row.cold_generations),
        f"{row.calls_per_generation:.1f}",
        "-" if per_cold is None else f"{per_cold:.1f}",
    )


def _goal_line(goal: Goal) -> str:
    mark = "PASS" if goal.passed else "FAIL"
    measured = "n/a" if goal.measured is None else f"{goal.measured:.2f} {goal.unit}"
    return f"[{mark}] {goal.what}: measured {measured} (limit {goal.limit:g} {goal.unit})"


def _floor_note(row: Row) -> str:
    found = row.floor
    if found.rule == "batch":
        return (
            f"{row.trace} floor {found.total:.0f} s = generation {found.generation_s:.0f} s "
            f"+ one cold start per worker {found.starts_s:.0f} s "
            f"(on one worker: {found.one_worker:.0f} s)"
        )
    issue = row.floor_without_flashboot
    return (
        f"{row.trace} floor {issue.total:.0f} s = generation {issue.generation_s:.0f} s + first "
        f"cold start {issue.starts_s:.0f} s + sum of min(gap, cold start) {issue.gaps_s:.0f} s; "
        f"FB floor {found.total:.0f} s if every restart within 10 min is a "
        f"{_flashboot(row)}FlashBoot revival, as the emulator grants it (gaps {found.gaps_s:.0f} s)"
    )


def _flashboot(row: Row) -> str:
    return "" if row.floor.gaps_s == row.floor_without_flashboot.gaps_s else "cheap "


def _notes(report: Report) -> list[str]:
    notes = [f"{trace.name}: {trace.description}" for trace in report.traces]
    noted: set[str] = set()
    for row in report.rows:
        if row.trace not in noted:
            noted.add(row.trace)
            notes.append(_floor_note(row))
        if row.failures:
            kinds = ", ".join(f"{count} {kind}" for kind, count in row.failures)
            notes.append(
                f"{row.trace}/{row.policy}: {row.requests - row.ok} of {row.requests} requests "
                f"failed ({kinds}); "
                "* their work was never done, so the GPU-seconds cover less than the trace"
            )
        if row.workers_left:
            notes.append(f"{row.trace}/{row.policy}: {row.workers_left} workers never stopped")
        if row.unattributed_calls:
            notes.append(
                f"{row.trace}/{row.policy}: {row.unattributed_calls} API calls outside any request"
            )
    if report.forwarding is not None:
        fwd = report.forwarding
        notes.append(
            f"forwarding (real time, {fwd.samples} warm generations, medians): "
            f"GENERATING event {fwd.generating_ms:.2f} ms, request forwarded "
            f"{fwd.forwarded_ms:.2f} ms, fake SwarmUI (same loop) received it "
            f"{fwd.received_ms:.2f} ms, whole generation {fwd.total_ms:.2f} ms"
        )
    virtual = sum(row.virtual_s for row in report.rows)
    wall = sum(row.wall_s for row in report.rows)
    notes.append(f"replays: {virtual / 3600:.1f} h of virtual time in {wall:.1f} s of wall time")
    return notes


def table(report: Report) -> str:
    """The report as a plain-text table, with notes and the goals marked PASS/FAIL."""
    rows = [_HEADERS, *(_cells(row) for row in report.rows)]
    widths = [max(len(cells[i]) for cells in rows) for i in range(len(_HEADERS))]
    lines = ["lease policies: GPU-seconds billed vs the floor, time-to-image, API calls"]
    for cells in rows:
        parts = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        lines.append("  ".join(parts))
    lines.extend(_notes(report))
    lines.append("goals:")
    lines.extend("  " + _goal_line(goal) for goal in report.goals)
    return "\n".join(lines)


def markdown(report: Report) -> str:
    """The report as a GitHub markdown table, notes and goals (for the README's Cost section)."""
    lines = [
        "| " + " | ".join(_HEADERS) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(_HEADERS))) + "|",
    ]
    for row in report.rows:
        cells = (cell.replace("*", "\\*") for cell in _cells(row))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.extend(f"- {note}" for note in _notes(report))
    lines.append("")
    lines.extend(f"- {_goal_line(goal)}" for goal in report.goals)
    return "\n".join(lines)
