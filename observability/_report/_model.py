"""The report's data model: the spans of a trace file read as workers, generations and costs.

The spans it reads (see the producers in :mod:`observability`):

- ``Generation:<model>``: a generation's root; its children with ``swarmpod.phase`` are the
  states it visited.
- ``Lease:<endpoint>`` / ``Worker:<endpoint>``: a worker's root, with ``swarmpod.gpu_seconds.
  billed``; its children with ``swarmpod.phase`` are its states (``Idle``/``Busy`` nested in
  ``Warm``).
- ``Cost:generation`` / ``Cost:unattributed``: a settled cost, GPU-seconds by phase and USD.

Any other span is ignored. Spans are sorted first, so the same spans in any order give the same
model.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from .._trace_file import SpanRecord

__all__ = [
    "ANONYMOUS",
    "COST_PARTS",
    "COST_PREFIX",
    "GENERATION_PREFIX",
    "UNATTRIBUTED",
    "WORKER_PREFIXES",
    "CostLine",
    "ReportSummary",
    "Row",
    "Run",
    "Visit",
    "cold",
    "cost_lines",
    "cost_seconds",
    "generation_id",
    "model_of",
    "number",
    "outcome",
    "prompt_of",
    "user_of",
    "worker_of",
]

GENERATION_PREFIX: Final = "Generation:"
WORKER_PREFIXES: Final = ("Lease:", "Worker:")
COST_PREFIX: Final = "Cost:"
UNATTRIBUTED: Final = "(unattributed)"
ANONYMOUS: Final = "(anonymous)"
DEFAULT_MODEL: Final = "(default model)"

COST_PARTS: Final = (
    ("boot", "swarmpod.gpu_seconds.boot"),
    ("execution", "swarmpod.gpu_seconds.execution"),
    ("idle tail", "swarmpod.gpu_seconds.idle_tail"),
)
"""The parts of a cost: their names and the attribute holding each one's GPU-seconds."""

_MAX_NESTING: Final = 16


@dataclass(frozen=True)
class ReportSummary:
    """The headline figures of a report.

    Attributes:
        generations: generation roots in the file.
        failed: those whose outcome is ``failed``.
        cancelled: those whose outcome is ``cancelled``.
        workers: worker (lease) roots.
        cold_starts: generations that waited for a worker to boot.
        gpu_seconds_attributed: GPU-seconds of every ``Cost:*`` span (boot + execution + idle
            tail).
        gpu_seconds_billed: the billed seconds estimated on the worker roots; equal to the
            attributed seconds once every worker's bill is settled.
        cost_usd: USD of every ``Cost:*`` span.
        phase_bars: phase bars drawn on the timeline (one per state visited).
    """

    generations: int = 0
    failed: int = 0
    cancelled: int = 0
    workers: int = 0
    cold_starts: int = 0
    gpu_seconds_attributed: float = 0.0
    gpu_seconds_billed: float = 0.0
    cost_usd: float = 0.0
    phase_bars: int = 0


# --- what a span says -----------------------------------------------------------------------


def number(span: SpanRecord, name: str) -> float:
    """A numeric attribute, 0 when absent."""
    return span.attr_float(name) or 0.0


def cost_seconds(span: SpanRecord) -> float:
    """The GPU-seconds of a ``Cost:*`` span, all parts."""
    return math.fsum(number(span, attribute) for _, attribute in COST_PARTS)


def cold(root: SpanRecord) -> bool:
    """Whether a generation waited for a worker to boot."""
    return root.attr_bool("swarmpod.cold_start")


def user_of(span: SpanRecord) -> str:
    """The user a generation or cost belongs to."""
    return span.attr_str("swarmpod.user") or ANONYMOUS


def model_of(span: SpanRecord) -> str:
    """The model a generation asked for."""
    return span.attr_str("swarmpod.model") or DEFAULT_MODEL


def prompt_of(root: SpanRecord) -> str | None:
    """A generation's prompt, when its span carries it."""
    return root.attr_str("swarmpod.prompt") or None


def generation_id(root: SpanRecord) -> str:
    """A generation's id (its root span id when the span carries none)."""
    return root.attr_str("swarmpod.generation.id") or root.span_id


def outcome(root: SpanRecord) -> str:
    """``succeeded``, ``failed``, ``cancelled`` (or ``unknown``)."""
    return root.attr_str("swarmpod.outcome") or ("failed" if root.is_error else "unknown")


def worker_of(span: SpanRecord) -> str:
    """The worker that served a generation or cost (``—`` for none)."""
    return span.attr_str("swarmpod.worker.id") or "—"


# --- rows: a generation or a worker and the states it visited -------------------------------


@dataclass(frozen=True)
class Visit:
    """One state visited: a phase span, and whether states nest in it (Warm)."""

    span: SpanRecord
    phase: str
    has_children: bool


@dataclass(frozen=True)
class Row:
    """A generation or a worker: its root span and the states it visited, in order."""

    root: SpanRecord
    visits: tuple[Visit, ...]

    @property
    def is_generation(self) -> bool:
        """A generation's row (else a worker's)."""
        return self.root.name.startswith(GENERATION_PREFIX)

    def phase_seconds(self) -> dict[str, float]:
        """Seconds per phase (innermost states only), in the order first visited."""
        seconds: dict[str, float] = {}
        for visit in self.visits:
            if not visit.has_children:
                seconds[visit.phase] = seconds.get(visit.phase, 0.0) + visit.span.duration_s
        return seconds


_Children = Mapping[tuple[str, str], Sequence[SpanRecord]]


def _order(span: SpanRecord) -> tuple[int, int, str, str, str]:
    return (span.start_ns, span.end_ns, span.trace_id, span.span_id, span.name)


def _visits(parent: SpanRecord, children: _Children, depth: int = 0) -> list[Visit]:
    if depth >= _MAX_NESTING:
        return []
    visits: list[Visit] = []
    for child in children.get((parent.trace_id, parent.span_id), ()):
        phase = child.attr_str("swarmpod.phase")
        if phase is None:
            continue
        nested = _visits(child, children, depth + 1)
        visits.append(Visit(child, phase, bool(nested)))
        visits.extend(nested)
    return visits


@dataclass(frozen=True)
class Run:
    """The spans of a file, sorted, with the rows and costs the report shows."""

    spans: tuple[SpanRecord, ...]
    generations: tuple[Row, ...]
    workers: tuple[Row, ...]
    costs: tuple[SpanRecord, ...]

    @classmethod
    def of(cls, spans: Iterable[SpanRecord]) -> Run:
        """Read ``spans`` (in any order)."""
        ordered = tuple(sorted(spans, key=_order))
        children: defaultdict[tuple[str, str], list[SpanRecord]] = defaultdict(list)
        for span in ordered:
            if span.parent_span_id is not None and span.parent_span_id != span.span_id:
                children[(span.trace_id, span.parent_span_id)].append(span)

        def rows(*prefixes: str) -> tuple[Row, ...]:
            roots = (span for span in ordered if span.name.startswith(prefixes))
            return tuple(Row(root, tuple(_visits(root, children))) for root in roots)

        costs = tuple(span for span in ordered if span.name.startswith(COST_PREFIX))
        return cls(ordered, rows(GENERATION_PREFIX), rows(*WORKER_PREFIXES), costs)

    @property
    def rows(self) -> tuple[Row, ...]:
        """Workers first, then generations."""
        return self.workers + self.generations

    @property
    def empty(self) -> bool:
        """Nothing the report can show."""
        return not (self.generations or self.workers or self.costs)

    @property
    def origin_ns(self) -> int:
        """The first start among the rows (time 0 of the timeline)."""
        starts = [row.root.start_ns for row in self.rows]
        starts += [visit.span.start_ns for row in self.rows for visit in row.visits]
        return min(starts, default=0)

    @property
    def end_ns(self) -> int:
        """The last end among the rows (the timeline's right edge)."""
        return max(
            [row.root.end_ns for row in self.rows]
            + [visit.span.end_ns for row in self.rows for visit in row.visits]
        )

    @property
    def phase_bars(self) -> int:
        """Bars the timeline draws: one per state visited."""
        return sum(len(row.visits) for row in self.rows)

    def stray_phases(self) -> int:
        """Phase spans whose generation or worker root is not in the file."""
        drawn = {(v.span.trace_id, v.span.span_id) for row in self.rows for v in row.visits}
        phases = {(s.trace_id, s.span_id) for s in self.spans if "swarmpod.phase" in s.attributes}
        return len(phases - drawn)

    def other_spans(self) -> int:
        """Spans the report does not show (HTTP requests and the like)."""
        shown = {(s.trace_id, s.span_id) for s in self.costs}
        shown |= {(r.root.trace_id, r.root.span_id) for r in self.rows}
        shown |= {(v.span.trace_id, v.span.span_id) for r in self.rows for v in r.visits}
        return sum(
            (s.trace_id, s.span_id) not in shown and "swarmpod.phase" not in s.attributes
            for s in self.spans
        )

    def summary(self) -> ReportSummary:
        """The headline figures."""
        outcomes = [outcome(row.root) for row in self.generations]
        return ReportSummary(
            generations=len(self.generations),
            failed=outcomes.count("failed"),
            cancelled=outcomes.count("cancelled"),
            workers=len(self.workers),
            cold_starts=sum(cold(row.root) for row in self.generations),
            gpu_seconds_attributed=math.fsum(cost_seconds(span) for span in self.costs),
            gpu_seconds_billed=math.fsum(
                number(row.root, "swarmpod.gpu_seconds.billed") for row in self.workers
            ),
            cost_usd=math.fsum(number(span, "swarmpod.cost_usd") for span in self.costs),
            phase_bars=self.phase_bars,
        )


# --- costs grouped by user or model --------------------------------------------------------


@dataclass(frozen=True)
class CostLine:
    """GPU-seconds by part and USD of a group of Cost spans (a user, a model)."""

    name: str
    count: int
    parts: tuple[float, ...]
    usd: float

    @classmethod
    def of(cls, name: str, spans: Sequence[SpanRecord]) -> CostLine:
        """The line of ``spans`` under ``name``."""
        parts = tuple(
            math.fsum(number(span, attribute) for span in spans) for _, attribute in COST_PARTS
        )
        usd = math.fsum(number(span, "swarmpod.cost_usd") for span in spans)
        return cls(name, len(spans), parts, usd)

    @property
    def total(self) -> float:
        """GPU-seconds, all parts."""
        return math.fsum(self.parts)


def cost_lines(costs: Sequence[SpanRecord], key: Literal["user", "model"]) -> list[CostLine]:
    """``costs`` by user or model, largest first, the unattributed ones last."""
    groups: defaultdict[str, list[SpanRecord]] = defaultdict(list)
    for span in costs:
        attributed = span.name == f"{COST_PREFIX}generation"
        name = (user_of(span) if key == "user" else model_of(span)) if attributed else UNATTRIBUTED
        groups[name].append(span)
    lines = [CostLine.of(name, spans) for name, spans in groups.items()]
    return sorted(lines, key=lambda c: (c.name == UNATTRIBUTED, -c.total, -c.usd, c.name))
