"""The tracing flags the commands that generate share, and the telemetry made from them."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from rich.markup import escape

from observability import Telemetry, otlp_configured

from ..errors import SettingsError
from ._console import console

__all__ = ["collector_unreachable", "configure_telemetry", "tracing_flags"]

_DEFAULT_OTLP: Final = "http://localhost:4318"
_PROBE_TIMEOUT_S: Final = 1.0


def _collector_url(environ: Mapping[str, str]) -> str:
    """Where the OTLP exporter would send spans (the standard variables, else Jaeger's port)."""
    return (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or _DEFAULT_OTLP
    )


def collector_unreachable(url: str, *, timeout_s: float = _PROBE_TIMEOUT_S) -> str | None:
    """Why nothing listens at the OTLP collector ``url`` (None when a connection opens).

    The exporter retries an unreachable collector for its whole timeout per signal when the
    command ends, logging each attempt: one connection attempt up front spares every command
    that wait and those warnings.
    """
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout_s):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


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
    otlp = bool(args.otlp) or otlp_configured()
    if otlp:
        url = _collector_url(os.environ)
        why = collector_unreachable(url)
        if why is not None:
            console.print(
                f"[yellow]OTLP collector at {escape(url)} unreachable ({escape(why)}): spans and "
                "metrics are not exported this run[/]",
                soft_wrap=True,
            )
            otlp = False
    try:
        return Telemetry.configure(
            otlp=otlp,
            console=args.console_spans,
            trace_file=args.trace_file,
            make_global=True,
        )
    except OSError as exc:
        raise SettingsError(
            "--trace-file", f"cannot write {args.trace_file}: {exc.strerror}", source="command line"
        ) from None
