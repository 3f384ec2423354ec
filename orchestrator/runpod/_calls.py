"""One record per HTTP attempt, and which attempts may be repeated safely."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ApiCall",
    "RetryNotice",
    "may_reask_undecodable",
    "may_retry_status",
    "may_retry_transport",
]

# POST /run and /runsync create a job. Repeating one whose request may have reached RunPod
# (a 500, a read timeout, a dropped connection) can create a duplicate job, the concern raised
# in review of runpod/runpod-python PR #515; only answers that say "not processed" are retried.
_CREATES_JOB = frozenset({"run", "runsync"})
_NOT_PROCESSED = frozenset({429, 502, 503, 504})
# GET /stream is a cursor: each answer carries outputs that are never sent again. An answer
# lost on the way (a dropped connection, an unreadable body) cannot be asked for again; the
# caller must hear that it may have lost outputs.
_CURSOR = frozenset({"stream"})


@dataclass(frozen=True)
class ApiCall:
    """One HTTP attempt against the RunPod API (for metrics, spans and benchmarks).

    Attributes:
        route: the API route (``run``, ``status``, ``purge-queue``, ...), without the job id.
        method: ``GET`` or ``POST``.
        status: the HTTP status, or None when no answer arrived.
        attempt: 1 for the first try, 2 for the first retry, ...
        duration_s: loop time from sending to the end of the answer (or the failure).
        job_id: the job the call was about, when there was one.
        error: a short description of what went wrong (never a body or a key), else None.
    """

    route: str
    method: str
    status: int | None
    attempt: int
    duration_s: float
    job_id: str | None
    error: str | None


@dataclass(frozen=True)
class RetryNotice:
    """A failed RunPod call about to be tried again (for spans and logs).

    Attributes:
        route: the API route.
        failure: what went wrong, in a few words (``HTTP 503``, ``ServerDisconnectedError``).
        attempt: the attempt that failed (1 for the first).
        delay_s: how long until the next attempt.
    """

    route: str
    failure: str
    attempt: int
    delay_s: float


def may_retry_status(route: str, status: int) -> bool:
    """Whether an answer with ``status`` on ``route`` may be retried (429/5xx rules)."""
    if route in _CREATES_JOB:
        return status in _NOT_PROCESSED
    return status == 429 or status >= 500


def may_retry_transport(route: str, *, nothing_sent: bool) -> bool:
    """Whether a connection failure or timeout on ``route`` may be retried."""
    return nothing_sent or route not in _CREATES_JOB | _CURSOR


def may_reask_undecodable(route: str) -> bool:
    """Whether a 2xx answer that did not decode may be asked for again on ``route``.

    Not where a job may already exist (``/run``, ``/runsync``), nor on a cursor (``/stream``),
    whose lost outputs a second request would not return.
    """
    return route not in _CREATES_JOB | _CURSOR
