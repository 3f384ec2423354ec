"""Logging: trace ids in every record, and secrets redacted before anything is written.

swarmpod logs through standard :mod:`logging` with the seed's tags (``[RunPodServerless]`` for
the engine, ``[RunPodApiClient]`` for RunPod calls). :func:`configure_logging` installs one
handler whose records carry ``trace_id``/``span_id`` of the span current when they were
logged and pass a :class:`RedactingFilter` first: every secret swarmpod was given
(:func:`register_secret`: RunPod keys, API tokens, worker tokens) and anything shaped like one
(``rpa_…``, ``sp_…``, ``Bearer …``) becomes ``[REDACTED]``, in the message, its arguments and
the traceback.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from typing import Final, TextIO

from opentelemetry import trace

__all__ = [
    "REDACTED",
    "RedactingFilter",
    "TraceContextFilter",
    "configure_logging",
    "redact",
    "register_secret",
]

REDACTED: Final = "[REDACTED]"
LOG_FORMAT: Final = (
    "%(asctime)s %(levelname)-7s %(name)s trace=%(trace_id)s span=%(span_id)s %(message)s"
)
_SHAPES: Final = re.compile(
    r"(?P<bearer>(?i:bearer)\s+)[A-Za-z0-9._~+/=-]{6,}"
    r"|\brpa_[A-Za-z0-9]{6,}"
    r"|\bsp_[A-Za-z0-9_-]{10,}"
)
_MIN_SECRET_LENGTH: Final = 6  # shorter values would redact ordinary words

_MAX_SECRETS: Final = 4096  # the oldest are forgotten first (shapes still catch keys)

_lock = threading.Lock()
_secrets: dict[str, None] = {}  # insertion-ordered: a bounded registry
_pattern: re.Pattern[str] | None = None
_dirty = False


def register_secret(value: str) -> None:
    """Redact ``value`` from every log record from now on (a key, a token).

    Cheap: the matcher is rebuilt at the next redaction, not at each registration. The
    registry keeps the newest 4096 secrets; long-lived ones (RunPod keys, API tokens) are
    registered again whenever they are loaded.
    """
    global _dirty
    if len(value) < _MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets[value] = None
        if len(_secrets) > _MAX_SECRETS:
            del _secrets[next(iter(_secrets))]
        _dirty = True


def _matcher() -> re.Pattern[str] | None:
    global _pattern, _dirty
    if _dirty:
        with _lock:
            ordered = sorted(_secrets, key=len, reverse=True)
            _dirty = False
        # Compiled outside the lock: a log record written meanwhile (a finalizer run by the
        # garbage collector, say) redacts with the previous matcher instead of deadlocking.
        _pattern = re.compile("|".join(re.escape(secret) for secret in ordered))
    return _pattern


def redact(text: str) -> str:
    """``text`` with every registered secret and secret-shaped word replaced.

    >>> redact("calling with rpa_ABCDEF123456 and Bearer abc.def-ghi")
    'calling with [REDACTED] and Bearer [REDACTED]'
    """
    pattern = _matcher()
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return _SHAPES.sub(lambda m: (m.group("bearer") or "") + REDACTED, text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (arguments merged in) and traceback, redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the raw parts, redacted
            message = f"{record.msg} {record.args}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` (hex, ``-`` outside a span) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        else:
            record.trace_id = record.span_id = "-"
        return True


def configure_logging(
    level: int | str = logging.INFO, *, stream: TextIO | None = None
) -> logging.Handler:
    """Log to ``stream`` (stderr) with trace ids, every record redacted; returns the handler.

    Replaces a handler an earlier call installed, so calling it twice does not log twice.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name("swarmpod")
    handler.addFilter(TraceContextFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "swarmpod"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
