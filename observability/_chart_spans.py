"""The span listener: one span per chart state visited, opened on entry and ended on exit.

Attached to a python-statemachine chart when it is built, it stays silent until
:meth:`ChartSpans.start` gives it a root span; from then on every state entered opens a child
span named ``Phase:detail`` (``Waking:runpod``, ``Generating:sdxl``) with ``swarmpod.phase``,
and every state left ends it. Final states end theirs on entry. Substates (the lease chart's
Warm → Idle/Busy) nest under their parent state's span. :meth:`close` ends whatever is still
open, so no span outlives its chart.

Given a :class:`~observability._light_span.SpanRecorder` (configured telemetry has one), the
state spans of a sampled root are light spans: the same spans for every exporter, made at a
fraction of the SDK's cost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanContext, Tracer
from opentelemetry.util.types import AttributeValue

from ._clock import span_time_ns
from ._light_span import SpanRecorder

__all__ = ["ChartSpans", "PhaseNamer", "span_attributes"]

PhaseNamer = Callable[[str], str]
"""Gives the span name of a state from its display name (``"Waking"`` → ``"Waking:runpod"``)."""

_PRIMITIVES = (str, bool, int, float)


def span_attributes(values: Mapping[str, Any], *, prefix: str = "") -> dict[str, AttributeValue]:
    """Span-safe attributes: primitives kept, enums and other objects as text, None dropped."""
    attributes: dict[str, AttributeValue] = {}
    for key, value in values.items():
        if value is None:
            continue
        if not isinstance(value, _PRIMITIVES):
            value = getattr(value, "value", None) or str(value)
        attributes[prefix + key] = value
    return attributes


class ChartSpans:
    """Listener that turns a chart's state visits into child spans of one root span.

    Args:
        tracer: where spans are made.
        clock_ns: span timestamps (default: the loop clock anchored to the wall clock).
        recorder: makes the state spans of a sampled root without the SDK (the tracer's
            provider's recorder: :attr:`Telemetry.span_recorder`); None = through ``tracer``.
    """

    def __init__(
        self,
        tracer: Tracer,
        clock_ns: Callable[[], int] = span_time_ns,
        recorder: SpanRecorder | None = None,
    ) -> None:
        self._tracer = tracer
        self._clock_ns = clock_ns
        self._recorder = recorder
        self._light: tuple[SpanRecorder, SpanContext] | None = None
        self._root: Span | None = None
        self._recording = False
        self._namer: PhaseNamer = str
        self._open: dict[str, Span] = {}
        self._root_context: Context | None = None

    @property
    def root(self) -> Span | None:
        """The root span, once started."""
        return self._root

    @property
    def recording(self) -> bool:
        """Whether spans are being recorded (started, with a recording root)."""
        return self._recording

    @property
    def current(self) -> Span | None:
        """The innermost open state span (events go there), else the root."""
        if self._open:
            return next(reversed(self._open.values()))
        return self._root

    def start(self, root: Span, chart: Any = None, namer: PhaseNamer | None = None) -> None:
        """Arm the listener: states entered from now on open children of ``root``.

        The ``chart``'s active states (entered before, e.g. the initial one) open theirs now;
        without a chart (armed before the chart is built) nothing is open yet.
        """
        self._root = root
        self._namer = namer or str
        self._recording = root.is_recording()
        if not self._recording:
            return
        self._root_context = trace.set_span_in_context(root)
        root_span_context = root.get_span_context()
        if self._recorder is not None and root_span_context.trace_flags.sampled:
            self._light = (self._recorder, root_span_context)
        active = chart.configuration if chart is not None else ()
        for state in sorted(active, key=lambda s: s.parent is not None):
            self._enter(state, "")

    def on_enter_state(self, state: Any, event: Any) -> None:
        if self._recording:
            self._enter(state, str(event))

    def on_exit_state(self, state: Any) -> None:
        if self._recording:
            opened = self._open.pop(str(state.id), None)
            if opened is not None:
                opened.end(end_time=self._clock_ns())

    def add_event(self, name: str, attributes: Mapping[str, AttributeValue]) -> None:
        """Add a span event (a poll, a progress update, a retry) to the current state's span."""
        span = self.current
        if span is not None:
            span.add_event(name, attributes, timestamp=self._clock_ns())

    def close(self) -> None:
        """End every state span still open (innermost first); the root is the owner's."""
        now = self._clock_ns()
        for key in reversed(list(self._open)):
            self._open.pop(key).end(end_time=now)

    def _enter(self, state: Any, event: str) -> None:
        parent_state = state.parent
        parent = self._open.get(str(parent_state.id)) if parent_state is not None else None
        name = str(state.name)
        now = self._clock_ns()
        attributes = {"swarmpod.phase": name, "swarmpod.event": event}
        span: Span
        if self._light is not None:
            recorder, root_span_context = self._light
            span = recorder.start_child(
                self._namer(name),
                parent.get_span_context() if parent is not None else root_span_context,
                attributes,
                now,
            )
        else:
            span = self._tracer.start_span(
                self._namer(name),
                context=(
                    trace.set_span_in_context(parent) if parent is not None else self._root_context
                ),
                start_time=now,
                attributes=attributes,
            )
        if state.final:
            span.end(end_time=now)
        else:
            self._open[str(state.id)] = span
