"""The tracing flags the commands that generate share, and the telemetry made from them."""

from __future__ import annotations

import argparse
from pathlib import Path

from observability import Telemetry

from ..errors import SettingsError

__all__ = ["configure_telemetry", "tracing_flags"]


def tracing_flags() -> argparse.ArgumentParser:
    """A parent parser with ``--trace-file``, ``--otlp`` and ``--console-spans``."""
    traced = argparse.ArgumentParser(add_help=False)
    tracing = traced.add_argument_group("tracing")
    tracing.add_argument(
        "--trace-file",
        type=Path,
        metavar="FILE",
        help="append every span as a JSON line to FILE (swarmpod report FILE reads it)",
    )
    tracing.add_argument(
        "--otlp",
        action="store_true",
        help="export spans and metrics over OTLP/HTTP (also on when OTEL_EXPORTER_OTLP_ENDPOINT "
        "is set; default endpoint http://localhost:4318, Jaeger's)",
    )
    tracing.add_argument("--console-spans", action="store_true", help="print spans to stdout")
    return traced


def configure_telemetry(args: argparse.Namespace) -> Telemetry | None:
    """The process's telemetry from the tracing flags (None for commands without them)."""
    if not hasattr(args, "otlp"):
        return None
    try:
        return Telemetry.configure(
            otlp=True if args.otlp else None,
            console=args.console_spans,
            trace_file=args.trace_file,
            make_global=True,
        )
    except OSError as exc:
        raise SettingsError(
            "--trace-file", f"cannot write {args.trace_file}: {exc.strerror}", source="command line"
        ) from None
