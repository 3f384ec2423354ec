"""The server span of one API request: continues the caller's W3C trace (``traceparent``), and
whatever the request starts (a generation) becomes its child: one request, one trace."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import propagate
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ._clock import span_time_ns
from ._telemetry import Telemetry

__all__ = ["RequestSpan", "request_span"]


class RequestSpan:
    """The span of one request, told how it was answered."""

    def __init__(self, span: Span) -> None:
        self._span = span

    def answered(self, status: int) -> None:
        """The HTTP status the request got (5xx marks the span as an error)."""
        self._span.set_attribute("http.response.status_code", status)
        if status >= 500:
            self._span.set_status(Status(StatusCode.ERROR))


@contextmanager
def request_span(
    telemetry: Telemetry, method: str, path: str, headers: Mapping[str, str]
) -> Iterator[RequestSpan]:
    """A server span around one request, current while it runs, continuing ``traceparent``."""
    with telemetry.tracer.start_as_current_span(
        f"{method} {path}",
        context=propagate.extract(headers),
        kind=SpanKind.SERVER,
        start_time=span_time_ns(),
        end_on_exit=False,
        attributes={"http.request.method": method, "url.path": path},
    ) as span:
        try:
            yield RequestSpan(span)
        finally:
            span.end(end_time=span_time_ns())
