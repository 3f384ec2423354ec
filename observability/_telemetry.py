"""Where spans and metrics go: one :class:`Telemetry` per process (or per test).

>>> telemetry = Telemetry.configure(in_memory=True, otlp=False)
>>> with telemetry.tracer.start_as_current_span("hello"):
...     pass
>>> [span.name for span in telemetry.finished_spans()]
['hello']
>>> telemetry.shutdown()

Exporters: OTLP/HTTP protobuf (the standard ``OTEL_EXPORTER_OTLP_*`` variables; Jaeger listens
on :4318), the console, a JSON-lines span file (``swarmpod report`` reads it) and in-memory for
tests. Every exporter but the in-memory one runs behind a batch processor on its own thread, so
exporting never blocks the event loop; :meth:`Telemetry.shutdown` flushes them, so the last
spans of a run are never lost.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    InMemoryMetricReader,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer
from opentelemetry.util.types import AttributeValue

from ._light_span import SpanRecorder
from ._metrics import Instruments

__all__ = ["OpenSpans", "Telemetry", "otlp_configured"]

INSTRUMENTATION: Final = "swarmpod"
_OTLP_VARIABLES: Final = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_default: Telemetry | None = None


class OpenSpans(SpanProcessor):
    """Counts the spans started and not ended yet (a span left open is a bug).

    A dict's single-key set and pop are atomic in CPython, and :meth:`names` copies under
    retry, so no lock is taken on a span's path."""

    def __init__(self) -> None:
        self._open: dict[int, str] = {}

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        self._open[span.context.span_id] = span.name

    def opened(self, span_id: int, name: str) -> None:
        """A span started without the SDK (a light span)."""
        self._open[span_id] = name

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None:
            self._open.pop(span.context.span_id, None)

    def names(self) -> list[str]:
        """Names of the spans still open."""
        while True:
            try:
                return sorted(self._open.copy().values())
            except RuntimeError:  # changed size during the copy: another thread ended one
                continue


def otlp_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the standard variables ask for OTLP export (``OTEL_EXPORTER_OTLP_ENDPOINT``...)."""
    env = os.environ if environ is None else environ
    return any(env.get(name) for name in _OTLP_VARIABLES)


class Telemetry:
    """A tracer and a meter with their exporters, and the swarmpod instruments.

    Make one with :meth:`configure`; :meth:`disabled` (the default of an Orchestrator without
    one) uses the process's global providers, which record nothing unless the application
    configured OpenTelemetry itself.

    Attributes:
        tracer: makes swarmpod's spans.
        meter: makes its metrics.
        instruments: the histograms, counters and gauges (:class:`Instruments`).
        memory: the in-memory span exporter, when asked for.
        metric_reader: the in-memory metric reader, when asked for.
        span_recorder: makes the chart-state spans without the SDK's per-span work (configured
            telemetry whose sampler samples every child of a sampled span; else None).
    """

    def __init__(
        self,
        tracer: Tracer,
        meter: Meter,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        memory: InMemorySpanExporter | None = None,
        metric_reader: InMemoryMetricReader | None = None,
    ) -> None:
        self.tracer = tracer
        self.meter = meter
        self.instruments = Instruments(meter)
        self.memory = memory
        self.metric_reader = metric_reader
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._open = OpenSpans()
        self.span_recorder: SpanRecorder | None = None
        if tracer_provider is not None:
            tracer_provider.add_span_processor(self._open)

    def _record_light_spans(
        self, provider: TracerProvider, limits: SpanLimits, processors: Sequence[SpanProcessor]
    ) -> None:
        """Let state spans skip the SDK: ``processors`` are all that ``provider`` was given
        before this object added its :class:`OpenSpans`, none of which acts on a span's start."""
        self.span_recorder = SpanRecorder.for_provider(
            provider,
            self.tracer,
            limits,
            [*processors, self._open],
            self._open.opened,
        )

    def __repr__(self) -> str:
        owned = self._tracer_provider is not None
        return f"Telemetry({'configured' if owned else 'global providers'})"

    @classmethod
    def disabled(cls) -> Telemetry:
        """Telemetry through the global providers (no-ops unless the application set them)."""
        return cls(trace.get_tracer(INSTRUMENTATION), metrics.get_meter(INSTRUMENTATION))

    @classmethod
    def default(cls) -> Telemetry:
        """The process's telemetry: the one configured with ``make_global=True``, else one
        through the global providers (made once, so its instruments are made once)."""
        global _default
        if _default is None:
            _default = cls.disabled()
        return _default

    @classmethod
    def configure(
        cls,
        *,
        service_name: str = "swarmpod",
        otlp: bool | None = None,
        console: bool = False,
        trace_file: str | os.PathLike[str] | None = None,
        in_memory: bool = False,
        span_exporters: Sequence[SpanExporter] = (),
        metric_readers: Sequence[MetricReader] = (),
        environ: Mapping[str, str] | None = None,
        make_global: bool = False,
    ) -> Telemetry:
        """Build the providers and exporters.

        Args:
            service_name: the resource's ``service.name``.
            otlp: export OTLP/HTTP protobuf (spans and metrics); None = when the standard
                ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``..._TRACES_ENDPOINT`` variable is set.
            console: print spans (and metrics at shutdown) to stdout.
            trace_file: append spans as JSON lines to this file (``swarmpod report`` reads it).
            in_memory: keep spans and metrics in memory (:meth:`finished_spans`, tests).
            span_exporters: further span exporters (each behind a batch processor).
            metric_readers: further metric readers.
            environ: the environment the OTLP exporters read (default ``os.environ``).
            make_global: make it :meth:`default`, what orchestrators and the service use when
                given none, until it is shut down. (OpenTelemetry's own global providers are
                left alone: they can be set once per process and never reset.)
        """
        env = os.environ if environ is None else environ
        resource = Resource.create({"service.name": service_name})
        limits = SpanLimits()  # from the OTEL_*_LIMIT variables, as the provider's default
        tracer_provider = TracerProvider(resource=resource, span_limits=limits)
        processors: list[SpanProcessor] = []
        exporters: list[SpanExporter] = list(span_exporters)
        readers: list[MetricReader] = list(metric_readers)
        use_otlp = otlp_configured(env) if otlp is None else otlp
        if use_otlp:
            try:  # the `otlp` extra
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                    OTLPMetricExporter,
                )
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ModuleNotFoundError:
                from orchestrator._extras import MissingExtraError  # only now: no import cycle

                raise MissingExtraError(
                    "otlp", "OTLP export", "opentelemetry.exporter.otlp.proto.http"
                ) from None

            exporters.append(OTLPSpanExporter())
            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        if console:
            exporters.append(ConsoleSpanExporter())
            readers.append(
                PeriodicExportingMetricReader(
                    ConsoleMetricExporter(), export_interval_millis=3_600_000
                )
            )
        if trace_file is not None:
            from ._trace_file import JsonLinesSpanExporter

            exporters.append(JsonLinesSpanExporter(Path(trace_file)))
        processors.extend(BatchSpanProcessor(exporter) for exporter in exporters)
        memory: InMemorySpanExporter | None = None
        metric_reader: InMemoryMetricReader | None = None
        if in_memory:
            memory = InMemorySpanExporter()
            processors.append(SimpleSpanProcessor(memory))
            metric_reader = InMemoryMetricReader()
            readers.append(metric_reader)
        for processor in processors:
            tracer_provider.add_span_processor(processor)
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        made = cls(
            tracer_provider.get_tracer(INSTRUMENTATION),
            meter_provider.get_meter(INSTRUMENTATION),
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            memory=memory,
            metric_reader=metric_reader,
        )
        made._record_light_spans(tracer_provider, limits, processors)
        if make_global:
            global _default
            _default = made
        return made

    def start_span(
        self,
        name: str,
        *,
        context: otel_context.Context | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        start_time: int | None = None,
    ) -> trace.Span:
        """A span, as ``tracer.start_span`` makes it (a light one when the sampler has nothing
        to decide: see :attr:`span_recorder`).

        Args:
            name: the span's name.
            context: where its parent is (default: the current context).
            attributes: its first attributes.
            start_time: its start, ns since the epoch (default: now).
        """
        recorder = self.span_recorder
        if recorder is not None:
            started = time.time_ns() if start_time is None else start_time
            span = recorder.start_span(name, context, attributes or {}, started)
            if span is not None:
                return span
        return self.tracer.start_span(
            name, context=context, attributes=attributes, start_time=start_time
        )

    def open_spans(self) -> list[str]:
        """Names of the spans started and not ended (configured telemetry only)."""
        return self._open.names()

    def finished_spans(self) -> tuple[ReadableSpan, ...]:
        """Spans ended so far (in-memory telemetry only; empty otherwise)."""
        return tuple(self.memory.get_finished_spans()) if self.memory is not None else ()

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Export every span and metric recorded so far; False if an exporter timed out."""
        ok = True
        if self._tracer_provider is not None:
            ok = self._tracer_provider.force_flush(int(timeout_s * 1000)) and ok
        if self._meter_provider is not None:
            ok = self._meter_provider.force_flush(int(timeout_s * 1000)) and ok
        return ok

    def shutdown(self) -> None:
        """Flush and stop every exporter (the last spans of a run are written, not lost)."""
        global _default
        if _default is self:
            _default = None
        if self._tracer_provider is not None:
            self._tracer_provider.shutdown()
        if self._meter_provider is not None:
            self._meter_provider.shutdown()
