"""The lifecycle report: one self-contained HTML page from the spans of a trace file.

``swarmpod report`` reads a JSON-lines trace file (:func:`read_trace_file`) and writes a page
with a summary, a timeline of workers and generations by phase, the cold-start histogram, the
cost split by user and model, the slowest generations and the failures.

One job per module: :mod:`._model` reads the spans as rows and costs, :mod:`._text` words and
figures (labels, times), :mod:`._layout` the charts' geometry, :mod:`._svg` draws the charts,
:mod:`._html` puts the page together. The page has inline CSS and inline SVG only: no script,
no font and no URL, so it opens offline and prints. Every text that comes from a span is
escaped, and the same spans always give the same page.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .._trace_file import SpanRecord, read_trace_file
from ._html import render_page
from ._model import ReportSummary as ReportSummary
from ._model import Run

__all__ = ["ReportSummary", "build_report", "write_report"]


def build_report(spans: Sequence[SpanRecord], *, title: str = "swarmpod lifecycle report") -> str:
    """The report page (HTML5, self-contained) for ``spans``."""
    return render_page(Run.of(spans), title)


def write_report(trace_file: Path, output: Path) -> ReportSummary:
    """Read ``trace_file``, write its report to ``output`` (UTF-8, parents made), sum it up.

    Raises:
        ValueError: the trace file holds a line that is not a span record.
        OSError: a file cannot be read or written.
    """
    run = Run.of(read_trace_file(trace_file))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_page(run, "swarmpod lifecycle report"), encoding="utf-8")
    return run.summary()
