"""Light spans: swarmpod's own spans of a sampled trace, recorded without the SDK's per-span
machinery.

The OpenTelemetry SDK spends ~17 µs on a span (the sampler, attribute cleaning, a lock, the
processor fan-out) and ~6 µs on a span event; a warm generation makes a root, seven state spans
and an event per progress report. Under the default parent-based sampler a child of a sampled,
recording parent is always recorded and sampled with its attributes unchanged, and under
``parentbased_always_on`` so is a root or the child of a sampled remote parent: nothing is left
to decide. :class:`SpanRecorder` builds such a span itself (ids from the provider's id
generator, flags and trace state as the SDK sets them) and, when it ends, hands the same
:class:`~opentelemetry.sdk.trace.ReadableSpan` the SDK would to the same span processors.
Exporters cannot tell the difference: same name, ids, parent, attributes, events, links,
timestamps, status, resource and scope. Anything the sampler would have to decide goes to the
SDK's tracer.

Plain values (``str``, ``bool``, ``int``, ``float``) within the span limits are kept as given;
anything else (a sequence, an odd type, a full span, a length limit) goes through the SDK's own
:class:`~opentelemetry.attributes.BoundedAttributes` and
:class:`~opentelemetry.sdk.util.BoundedList`, so the edges behave as the SDK's too.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable, Mapping, Sequence
from time import time_ns
from types import TracebackType
from typing import Final

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    Event,
    ReadableSpan,
    SpanLimits,
    SpanProcessor,
    Tracer,
    TracerProvider,
    sampling,
)
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationInfo, InstrumentationScope
from opentelemetry.trace import (
    Link,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.util import types

__all__ = ["LightSpan", "SpanRecorder", "always_sampled", "children_always_sampled"]

_log = logging.getLogger(__name__)

OpenedHook = Callable[[int, str], None]
"""Told a light span's id and name when it starts (the open-span count)."""

_PLAIN: Final = frozenset({str, bool, int, float})
_UNSET: Final = Status(StatusCode.UNSET)
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_SAMPLED_RANDOM: Final = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_LOCAL_CHILDREN_SAMPLED: Final = f"localParentSampled:{sampling.ALWAYS_ON.get_description()},"
_DEFAULT_ON: Final[sampling.Sampler] = sampling.DEFAULT_ON
_SDK_METRICS: Final = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"  # the SDK counts its spans


def children_always_sampled(sampler: sampling.Sampler) -> bool:
    """Whether ``sampler`` records and samples every child of a sampled local parent, keeping
    its attributes and its parent's trace state, as the default ``parentbased_*`` samplers do.

    Read from the sampler's public description (the delegates themselves are private).
    """
    description = sampler.get_description()
    return (
        type(sampler) in (sampling.ParentBased, sampling.ParentBasedTraceIdRatio)
        and _LOCAL_CHILDREN_SAMPLED in description
    )


def always_sampled(sampler: sampling.Sampler) -> bool:
    """Whether ``sampler`` is the default ``parentbased_always_on``: a span is recorded and
    sampled unless its parent (local or remote) is not sampled."""
    description = sampler.get_description()
    return type(sampler) is sampling.ParentBased and description == _DEFAULT_ON.get_description()


class SpanRecorder:
    """Makes :class:`LightSpan` spans and hands them, ended, to the span processors.

    Use :meth:`for_provider`, which gives one only when its spans are the SDK's spans.

    Args:
        resource: the provider's resource.
        id_generator: the provider's id generator.
        limits: the provider's span limits.
        scope: the tracer's instrumentation scope.
        info: the tracer's instrumentation info (what the SDK's spans still carry, deprecated).
        processors: every span processor of the provider, in the order they were added; each
            one's ``on_start`` must do nothing with the span (the batch and simple processors,
            :class:`~observability.OpenSpans`), as it is not called.
        opened: called with a light span's id and name when it starts (the open-span count).
        roots: whether the sampler samples every span whose parent, if any, is sampled
            (:func:`always_sampled`), so that :meth:`start_span` may make roots and children
            of remote parents too.
    """

    def __init__(
        self,
        *,
        resource: Resource,
        id_generator: IdGenerator,
        limits: SpanLimits,
        scope: InstrumentationScope,
        info: InstrumentationInfo | None,
        processors: Sequence[SpanProcessor],
        opened: OpenedHook,
        roots: bool = False,
    ) -> None:
        self.resource = resource
        self.limits = limits
        self.scope = scope
        self.info = info
        self._ids = id_generator
        self._new_span_id = id_generator.generate_span_id
        self._roots = roots
        self._processors = tuple(processors)
        self._opened = opened
        self.plain_limits = (
            limits.max_span_attribute_length is None and limits.max_attribute_length is None
        )

    @classmethod
    def for_provider(
        cls,
        provider: TracerProvider,
        tracer: trace.Tracer,
        limits: SpanLimits,
        processors: Sequence[SpanProcessor],
        opened: OpenedHook,
    ) -> SpanRecorder | None:
        """A recorder for ``provider``'s spans, or None when its sampler may decide otherwise
        for a child of a sampled span than "record and sample", or ``tracer`` (made by
        ``provider``) is not the SDK's, or the SDK counts its own spans in metrics (the SDK
        path is used then)."""
        sampler = provider.sampler
        sdk_metrics = os.environ.get(_SDK_METRICS, "").strip().lower() == "true"
        if not isinstance(tracer, Tracer) or sdk_metrics or not children_always_sampled(sampler):
            return None
        info = tracer.instrumentation_info
        return cls(
            resource=provider.resource,
            id_generator=provider.id_generator,
            limits=limits,
            scope=InstrumentationScope(info.name, info.version, info.schema_url),
            info=info,
            processors=processors,
            opened=opened,
            roots=always_sampled(sampler),
        )

    def start_span(
        self,
        name: str,
        context: Context | None,
        attributes: Mapping[str, types.AnyValue],
        start_time: int,
    ) -> LightSpan | None:
        """The span the tracer's ``start_span(name, context, ...)`` would make, or None when
        the sampler has a decision to make (the caller asks the tracer then).

        ``context`` holds the parent (default: the current context); a span without a valid
        parent starts a trace of its own.
        """
        parent = trace.get_current_span(context).get_span_context()
        if parent.is_valid:
            if not parent.trace_flags.sampled or (parent.is_remote and not self._roots):
                return None
            return self.start_child(name, parent, attributes, start_time)
        if not self._roots:
            return None
        ids = self._ids
        flags = _SAMPLED_RANDOM if ids.is_trace_id_random() else _SAMPLED
        own = SpanContext(ids.generate_trace_id(), ids.generate_span_id(), False, flags)
        span = LightSpan(self, name, own, None, attributes, start_time)
        self._opened(own.span_id, name)
        return span

    def start_child(
        self,
        name: str,
        parent: SpanContext,
        attributes: Mapping[str, types.AnyValue],
        start_time: int,
    ) -> LightSpan:
        """A recording span, child of ``parent`` (which must be sampled, and local unless the
        sampler samples every child of a sampled parent), started at ``start_time``."""
        flags = _SAMPLED_RANDOM if parent.trace_flags.random_trace_id else _SAMPLED
        context = SpanContext(
            parent.trace_id,
            self._new_span_id(),
            is_remote=False,
            trace_flags=flags,
            trace_state=parent.trace_state,
        )
        span = LightSpan(self, name, context, parent, attributes, start_time)
        self._opened(context.span_id, name)
        return span

    def finish(self, span: ReadableSpan) -> None:
        """Give an ended span to every processor."""
        for processor in self._processors:
            processor.on_end(span)


def _plain(attributes: Mapping[str, types.AnyValue]) -> bool:
    for key, value in attributes.items():
        if type(value) not in _PLAIN or type(key) is not str or not key:
            return False
    return True


class LightSpan(Span):
    """A recording span made by a :class:`SpanRecorder` (see the module's docstring).

    It behaves as the SDK's span for every call of the :class:`opentelemetry.trace.Span`
    interface; it is used from one thread (the event loop's), so it takes no lock.
    """

    __slots__ = (
        "_attributes",
        "_context",
        "_end",
        "_events",
        "_links",
        "_name",
        "_parent",
        "_recorder",
        "_start",
        "_status",
    )

    def __init__(
        self,
        recorder: SpanRecorder,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: Mapping[str, types.AnyValue],
        start_time: int,
    ) -> None:
        self._recorder = recorder
        self._name = name
        self._context = context
        self._parent = parent
        self._start = start_time
        self._end: int | None = None
        self._status = _UNSET
        self._events: list[Event] | BoundedList[Event] = []
        self._links: BoundedList[Link] | tuple[()] = ()
        limits = recorder.limits
        self._attributes: dict[str, types.AnyValue] | BoundedAttributes
        if (
            recorder.plain_limits
            and len(attributes) <= (limits.max_span_attributes or 0)
            and _plain(attributes)
        ):
            self._attributes = dict(attributes)
        else:
            self._attributes = self._bounded(attributes)

    def __repr__(self) -> str:
        return f'LightSpan(name="{self._name}", context={self._context})'

    @property
    def name(self) -> str:
        """The span's name."""
        return self._name

    def get_span_context(self) -> SpanContext:
        """Its ids and flags."""
        return self._context

    def is_recording(self) -> bool:
        """Whether it is still open."""
        return self._end is None

    def end(self, end_time: int | None = None) -> None:
        """End it (at ``end_time``, else now) and hand it to the span processors."""
        if self._end is not None:
            _log.warning("Calling end() on an ended span.")
            return
        end = self._end = end_time if end_time is not None else time_ns()
        recorder = self._recorder
        recorder.finish(
            ReadableSpan(
                name=self._name,
                context=self._context,
                parent=self._parent,
                resource=recorder.resource,
                attributes=self._attributes,
                events=self._events,  # bounded as the SDK's by add_event
                links=self._links,
                kind=SpanKind.INTERNAL,
                instrumentation_info=recorder.info,
                status=self._status,
                start_time=self._start,
                end_time=end,
                instrumentation_scope=recorder.scope,
            )
        )

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        """Set one attribute (moved last when it was set before, as the SDK does)."""
        self.set_attributes({key: value})

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        """Set attributes (each moved last when it was set before, as the SDK does)."""
        if self._end is not None:
            _log.warning("Setting attribute on ended span.")
            return
        current = self._attributes
        if isinstance(current, dict):
            room = (self._recorder.limits.max_span_attributes or 0) - len(current)
            if self._recorder.plain_limits and len(attributes) <= room and _plain(attributes):
                for key, value in attributes.items():
                    current.pop(key, None)
                    current[key] = value
                return
            current = self._attributes = self._bounded(current)
        for key, value in attributes.items():  # BoundedAttributes cleans, bounds and moves it
            current[key] = value

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        """An event at ``timestamp`` (else now)."""
        if self._end is not None:
            _log.warning("Tried calling _add_event on an ended span.")
            return
        limits = self._recorder.limits
        kept: types.Attributes
        if (
            attributes
            and self._recorder.plain_limits
            and len(attributes) <= (limits.max_event_attributes or 0)
            and _plain(attributes)
        ):
            kept = dict(attributes)
        else:
            kept = BoundedAttributes(
                limits.max_event_attributes,
                attributes,
                max_value_len=limits.max_attribute_length,
                immutable=True,
            )
        event = Event(name, kept, timestamp)
        events = self._events
        if isinstance(events, list) and len(events) >= (limits.max_events or 0):
            events = self._events = BoundedList.from_seq(limits.max_events, events)
        events.append(event)

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        """A link to another span (kept when its context is valid or says something)."""
        if not (context and (context.is_valid or attributes or context.trace_state)):
            return
        if self._end is not None:
            _log.warning("Tried calling _add_link on an ended span.")
            return
        limits = self._recorder.limits
        if not isinstance(self._links, BoundedList):
            self._links = BoundedList(limits.max_links)
        self._links.append(
            Link(
                context,
                BoundedAttributes(
                    limits.max_link_attributes,
                    attributes,
                    max_value_len=limits.max_attribute_length,
                    immutable=True,
                ),
            )
        )

    def update_name(self, name: str) -> None:
        """Rename it."""
        if self._end is not None:
            _log.warning("Tried calling update_name on an ended span.")
            return
        self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """Set its status (UNSET is ignored, and so is anything once it is OK)."""
        if self._end is not None:
            _log.warning("Tried calling set_status on an ended span.")
            return
        code = status.status_code if isinstance(status, Status) else status
        if self._status.status_code is StatusCode.OK or code is StatusCode.UNSET:
            return
        if isinstance(status, Status):
            if description is not None:
                _log.warning(
                    "Description %s ignored. Use either `Status` or `(StatusCode, Description)`",
                    description,
                )
            self._status = status
        else:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """An ``exception`` event with the semantic-convention attributes."""
        kind = type(exception)
        module = kind.__module__
        described: dict[str, types.AnyValue] = {
            "exception.type": (
                f"{module}.{kind.__qualname__}"
                if module and module != "builtins"
                else kind.__qualname__
            ),
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            described.update(attributes)
        self.add_event("exception", described, timestamp)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """End it; an exception leaving the block is recorded and sets status ERROR."""
        if exc_val is not None and self.is_recording():
            self.record_exception(exc_val, escaped=True)
            self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        super().__exit__(exc_type, exc_val, exc_tb)

    def _bounded(self, attributes: Mapping[str, types.AnyValue]) -> BoundedAttributes:
        limits = self._recorder.limits
        return BoundedAttributes(
            limits.max_span_attributes,
            attributes,
            immutable=False,
            max_value_len=limits.max_span_attribute_length,
        )
