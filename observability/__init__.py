"""Tracing, metrics, logs, cost attribution and lifecycle reports of swarmpod.

- :class:`Telemetry`: the tracer and meter with their exporters (OTLP/HTTP, console,
  JSON-lines file, in-memory).
- :class:`ChartSpans`: the listener that makes one span per chart state visited.
- :class:`CostLedger`: every worker's estimated bill, shared among the generations it served.
- :func:`configure_logging`: trace ids in log records, secrets redacted.
- :func:`write_report`: a self-contained HTML lifecycle report from a trace file.
"""

from ._chart_spans import ChartSpans as ChartSpans
from ._chart_spans import span_attributes as span_attributes
from ._clock import span_time_ns as span_time_ns
from ._cost import CostLedger as CostLedger
from ._cost import EndpointBilling as EndpointBilling
from ._cost import GenerationCost as GenerationCost
from ._cost import WorkerBill as WorkerBill
from ._cost_spans import end_worker_span as end_worker_span
from ._cost_spans import record_cost_span as record_cost_span
from ._generation_trace import GenerationTrace as GenerationTrace
from ._generation_trace import GenerationTraces as GenerationTraces
from ._logs import REDACTED as REDACTED
from ._logs import RedactingFilter as RedactingFilter
from ._logs import TraceContextFilter as TraceContextFilter
from ._logs import configure_logging as configure_logging
from ._logs import redact as redact
from ._logs import register_secret as register_secret
from ._metrics import Instruments as Instruments
from ._metrics import PoolReading as PoolReading
from ._report import ReportSummary as ReportSummary
from ._report import build_report as build_report
from ._report import write_report as write_report
from ._request_span import RequestSpan as RequestSpan
from ._request_span import request_span as request_span
from ._runpod_calls import record_api_call as record_api_call
from ._runpod_calls import record_retry as record_retry
from ._runpod_calls import record_settled as record_settled
from ._telemetry import OpenSpans as OpenSpans
from ._telemetry import Telemetry as Telemetry
from ._telemetry import otlp_configured as otlp_configured
from ._trace_file import JsonLinesSpanExporter as JsonLinesSpanExporter
from ._trace_file import SpanEventRecord as SpanEventRecord
from ._trace_file import SpanRecord as SpanRecord
from ._trace_file import read_trace_file as read_trace_file
from ._worker_trace import WorkerTrace as WorkerTrace
from ._worker_trace import WorkerTraces as WorkerTraces

__all__ = [
    "REDACTED",
    "ChartSpans",
    "CostLedger",
    "EndpointBilling",
    "GenerationCost",
    "GenerationTrace",
    "GenerationTraces",
    "Instruments",
    "JsonLinesSpanExporter",
    "OpenSpans",
    "PoolReading",
    "RedactingFilter",
    "ReportSummary",
    "RequestSpan",
    "SpanEventRecord",
    "SpanRecord",
    "Telemetry",
    "TraceContextFilter",
    "WorkerBill",
    "WorkerTrace",
    "WorkerTraces",
    "build_report",
    "configure_logging",
    "end_worker_span",
    "otlp_configured",
    "read_trace_file",
    "record_api_call",
    "record_cost_span",
    "record_retry",
    "record_settled",
    "redact",
    "register_secret",
    "request_span",
    "span_attributes",
    "span_time_ns",
    "write_report",
]
