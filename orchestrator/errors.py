"""The exception tree of swarmpod.

Every error swarmpod raises is an :class:`OrchestratorError`. Errors carry the facts a caller
needs to decide what to do as attributes, never only in their message::

    OrchestratorError                 phase, retryable, status, worker_id, job_id
    ├── SettingsError                 a setting is missing or has a bad value (.setting, .reason)
    ├── MissingApiKeyError            no backend key and no key for the calling user
    ├── BudgetExceededError           the user spent their GPU-seconds for today (.used, .limit)
    ├── AccountError                  a user name is bad, unknown or taken; a value refused (.user)
    ├── MasterKeyError                the master key is malformed, missing or wrong (.source)
    ├── StateFileError                a SQLite file (state, accounts, models) is unusable (.file)
    ├── DatabaseError                 the state database cannot be reached or used (.database)
    │   └── SchemaTooNewError         a newer swarmpod migrated it (.found, .supported)
    ├── InvalidParameterError         a T2I parameter is out of SwarmUI's range (.parameter)
    ├── OrchestratorClosingError      shutting down while a generation waits (retryable)
    ├── TransportError                the connection failed or timed out (retryable)
    ├── RunPodError                   the RunPod API answered with an error status
    │   ├── RunPodAuthError           401 / 403: the key is wrong or lacks access (permanent)
    │   ├── RunPodNotFoundError       404: unknown endpoint or job (permanent)
    │   ├── RunPodRateLimitError      429: too many requests (retryable, .retry_after)
    │   ├── RunPodServerError         5xx: RunPod or the worker failed (retryable)
    │   └── RunPodBadRequestError     other 4xx: the request was refused (permanent)
    ├── JobError                      a RunPod job ended without the expected output
    │   ├── JobFailedError            the job ended FAILED / TIMED_OUT / CANCELLED (.job_status)
    │   └── WorkerProtocolError       the worker answered in a shape its protocol does not allow
    │       └── ProtocolMismatchError the endpoint speaks another worker protocol (.detected)
    ├── WorkerNotReadyError           no worker became ready within StartupTimeoutSec
    │   ├── NoCapacityError           ... because RunPod had no GPU (workers throttled)
    │   └── WorkerCrashLoopError      ... because the workers crash while starting (unhealthy)
    ├── GenerationTimeoutError        the generation ran past GenerationTimeoutSec
    └── SwarmUIError                  the worker's SwarmUI refused or failed (.error_id)
        ├── SwarmUISessionError       the session stayed invalid after one renewal
        ├── GenerationFailedError     SwarmUI reported a generation failure (200 with "error")
        ├── NoImagesError             the generation finished without any image
        └── ImageDecodeError          an image could not be decoded or has the wrong size

A generation the caller cancels raises the caller's own cancellation (anyio semantics), after
its worker was released; its chart ends in ``Cancelled``. Messages say what to do; they never
contain an API key or token.

Errors never change once made. Facts learnt later (the phase, the worker, the chart path) go
into a new error of the same type, made by its own constructor with :meth:`~OrchestratorError.\
in_context` and raised ``from`` the first one; several generations that share one failure
each raise their own error that way.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import Any, Self

__all__ = [
    "AccountError",
    "BudgetExceededError",
    "DatabaseError",
    "GenerationFailedError",
    "GenerationTimeoutError",
    "ImageDecodeError",
    "InvalidParameterError",
    "JobError",
    "JobFailedError",
    "MasterKeyError",
    "MissingApiKeyError",
    "NoCapacityError",
    "NoImagesError",
    "OrchestratorClosingError",
    "OrchestratorError",
    "Phase",
    "ProtocolMismatchError",
    "RunPodAuthError",
    "RunPodBadRequestError",
    "RunPodError",
    "RunPodNotFoundError",
    "RunPodRateLimitError",
    "RunPodServerError",
    "SchemaTooNewError",
    "SettingsError",
    "StateFileError",
    "SwarmUIError",
    "SwarmUISessionError",
    "TransportError",
    "WorkerCrashLoopError",
    "WorkerNotReadyError",
    "WorkerProtocolError",
    "runpod_error_for_status",
]


class Phase(enum.StrEnum):
    """The phase of a generation in which an error happened."""

    ADMISSION = "admission"
    WAKING = "waking"
    POLLING = "polling"
    READY = "ready"
    GENERATING = "generating"
    RELEASING = "releasing"


_CONTEXT = ("phase", "worker_id", "job_id", "path")
"""The facts a later layer may know better than the one that made an error."""


def _frozen_after(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap an error's ``__init__``: the error is frozen once the outermost one returns."""

    @functools.wraps(init)
    def wrapper(self: OrchestratorError, *args: Any, **kwargs: Any) -> None:
        depth = self.__dict__.get("_init_depth", 0)
        self.__dict__["_init_depth"] = depth + 1
        try:
            init(self, *args, **kwargs)
        finally:
            self.__dict__["_init_depth"] = depth
            if depth == 0:
                self.__dict__["_frozen"] = True

    return wrapper


class OrchestratorError(Exception):
    """Root of every error raised by swarmpod. Immutable once made.

    Attributes:
        message: the human-readable text (also ``str(error)``).
        phase: the generation phase in which it happened, when known.
        retryable: whether the same call may succeed if tried again.
        status: the HTTP status that caused it, when there was one.
        worker_id: the RunPod worker involved, when known.
        job_id: the RunPod job involved, when known.
        path: the generation chart's states visited until the error (the engine's error).
    """

    retryable_default: bool = False
    _made_with: tuple[tuple[Any, ...], dict[str, Any]]

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        error = super().__new__(cls, *args)
        error.__dict__["_made_with"] = (args, kwargs)
        return error

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _frozen_after(cls.__dict__["__init__"])  # type: ignore[method-assign]

    def __init__(
        self,
        message: str,
        *,
        phase: Phase | None = None,
        retryable: bool | None = None,
        status: int | None = None,
        worker_id: str | None = None,
        job_id: str | None = None,
        path: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.phase = phase
        self.retryable = self.retryable_default if retryable is None else retryable
        self.status = status
        self.worker_id = worker_id
        self.job_id = job_id
        self.path = tuple(path)

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_frozen") and not name.startswith("__"):
            raise AttributeError(
                f"{type(self).__name__} is immutable: use in_context() for a new error"
            )
        super().__setattr__(name, value)

    def in_context(
        self,
        *,
        phase: Phase | None = None,
        worker_id: str | None = None,
        job_id: str | None = None,
        path: tuple[str, ...] = (),
    ) -> Self:
        """This error with facts it did not know yet, as a new error of the same type.

        Known facts are kept (never overwritten). The new error is made by the type's own
        constructor from the arguments this one was made with; raise it ``from`` this one.
        Returns ``self`` when nothing new is known.

        >>> first = TransportError("the worker went away")
        >>> later = first.in_context(phase=Phase.GENERATING, worker_id="w1")
        >>> (later.phase, later.worker_id, first.phase, type(later) is type(first))
        (<Phase.GENERATING: 'generating'>, 'w1', None, True)
        """
        offered = {"phase": phase, "worker_id": worker_id, "job_id": job_id, "path": path}
        new = {
            name: value
            for name, value in offered.items()
            if value not in (None, ()) and getattr(self, name) in (None, ())
        }
        if not new:
            return self
        args, kwargs = self._made_with
        return type(self)(*args, **{**kwargs, **new})

    def again(self) -> Self:
        """A new error of the same type with the same facts, for another caller of a failure
        several share (a wake-up or lease that failed for every generation waiting on it);
        raise it ``from`` this one."""
        args, kwargs = self._made_with
        return type(self)(*args, **kwargs)

    def facts(self) -> dict[str, Any]:
        """The error's facts as a flat dict (for spans, logs and JSON answers)."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "phase": str(self.phase) if self.phase else None,
            "retryable": self.retryable,
            "status": self.status,
            "worker_id": self.worker_id,
            "job_id": self.job_id,
        }

    def __repr__(self) -> str:
        known = {k: v for k, v in self.facts().items() if v is not None and k != "type"}
        inner = ", ".join(f"{k}={v!r}" for k, v in known.items())
        return f"{type(self).__name__}({inner})"


class SettingsError(OrchestratorError, ValueError):
    """Raised when a setting is missing or has a value it cannot take."""

    def __init__(
        self, setting: str, reason: str, *, source: str | None = None, **context: Any
    ) -> None:
        where = f" (from {source})" if source else ""
        super().__init__(f"Setting {setting}{where}: {reason}", **context)
        self.setting = setting
        self.reason = reason
        self.source = source


class MissingApiKeyError(OrchestratorError):
    """Raised when neither the backend nor the calling user has a RunPod API key."""

    def __init__(self, user: str | None = None, **context: Any) -> None:
        who = f" for user '{user}'" if user else ""
        context.setdefault("phase", Phase.ADMISSION)
        super().__init__(
            f"No RunPod API key{who}. Set the backend's RunPodApiKey setting (or RUNPOD_API_KEY), "
            "or add your own key under User Settings → API Keys (key type runpod_api).",
            **context,
        )
        self.user = user


class BudgetExceededError(OrchestratorError):
    """Raised when a user has spent their daily GPU-seconds (``DailyGpuSecondsPerUser``).

    Attributes:
        user: the user refused.
        used_s: GPU-seconds the user spent today (UTC day).
        limit_s: the daily budget.
        resets_at: when the budget resets (ISO 8601, UTC midnight).
    """

    def __init__(
        self, user: str, *, used_s: float, limit_s: float, resets_at: str, **context: Any
    ) -> None:
        context.setdefault("phase", Phase.ADMISSION)
        super().__init__(
            f"User '{user}' has used {used_s:.0f} of their {limit_s:.0f} GPU-seconds for today; "
            f"new generations are refused until {resets_at}. Ask an admin to raise "
            "DailyGpuSecondsPerUser if you need more.",
            retryable=False,
            **context,
        )
        self.user = user
        self.used_s = used_s
        self.limit_s = limit_s
        self.resets_at = resets_at


class AccountError(OrchestratorError):
    """Raised when an account change is refused: the user name is not allowed, unknown or
    taken, or a value given for the user is (an empty RunPod key, a too-long token label);
    also when a user's stored RunPod key was altered in the database and cannot be used.

    Attributes:
        user: the user name concerned.
    """

    def __init__(self, message: str, *, user: str, **context: Any) -> None:
        super().__init__(message, **context)
        self.user = user


class MasterKeyError(OrchestratorError):
    """Raised at start when the master key that encrypts the RunPod keys is malformed, its key
    file is missing or unreadable, or it is not the key the database's keys were encrypted
    with. The message names where the key came from, never the key.

    Attributes:
        source: where the key came from (``env SWARMPOD_MASTER_KEY`` or ``key file <path>``).
    """

    def __init__(self, message: str, *, source: str, **context: Any) -> None:
        super().__init__(message, **context)
        self.source = source


class TransportError(OrchestratorError):
    """Raised when a connection to RunPod or a worker failed or timed out."""

    retryable_default = True


class RunPodError(OrchestratorError):
    """Raised when the RunPod API answered with an error status.

    Attributes:
        route: the API route that failed (``run``, ``status``, ...).
    """

    def __init__(self, message: str, *, route: str, status: int, **kwargs: Any) -> None:
        super().__init__(message, status=status, **kwargs)
        self.route = route


class RunPodAuthError(RunPodError):
    """Raised on 401/403: the API key is wrong, expired, or not allowed on this endpoint."""


class RunPodNotFoundError(RunPodError):
    """Raised on 404: the endpoint id or the job id is unknown (or the job has expired)."""


class RunPodRateLimitError(RunPodError):
    """Raised on 429 after the retries ran out. ``retry_after`` is RunPod's hint in seconds."""

    retryable_default = True

    def __init__(
        self, message: str, *, route: str, status: int, retry_after: float | None, **kwargs: Any
    ) -> None:
        super().__init__(message, route=route, status=status, **kwargs)
        self.retry_after = retry_after


class RunPodServerError(RunPodError):
    """Raised on 5xx after the retries ran out."""

    retryable_default = True


class RunPodBadRequestError(RunPodError):
    """Raised on any other 4xx: the request itself was refused."""


def runpod_error_for_status(
    status: int, route: str, *, retry_after: float | None = None, job_id: str | None = None
) -> RunPodError:
    """Build the typed error for a failed RunPod API call (the body is never trusted)."""
    if status in (401, 403):
        return RunPodAuthError(
            f"RunPod refused the API key ({status} on /{route}). Check that the key is valid "
            "and allowed on this endpoint (a read-only or restricted key cannot run jobs).",
            route=route,
            status=status,
            job_id=job_id,
        )
    if status == 404:
        what = f"job {job_id}" if job_id else "endpoint"
        return RunPodNotFoundError(
            f"RunPod does not know this {what} (404 on /{route}). Check EndpointId; "
            "job results expire 30 min after completion.",
            route=route,
            status=status,
            job_id=job_id,
        )
    if status == 429:
        return RunPodRateLimitError(
            f"RunPod rate-limited /{route} (429) and retries ran out; slow down or raise the "
            "endpoint's limits.",
            route=route,
            status=status,
            retry_after=retry_after,
            job_id=job_id,
        )
    if status >= 500:
        return RunPodServerError(
            f"RunPod answered {status} on /{route} and retries ran out; RunPod or the worker "
            "is failing, try again later.",
            route=route,
            status=status,
            job_id=job_id,
        )
    return RunPodBadRequestError(
        f"RunPod refused the request to /{route} ({status}).",
        route=route,
        status=status,
        job_id=job_id,
    )


class JobError(OrchestratorError):
    """Raised when a RunPod job ended without the output swarmpod needs."""


class JobFailedError(JobError):
    """Raised when a job ended FAILED, TIMED_OUT or CANCELLED.

    Attributes:
        job_status: the terminal RunPod status.
        error_text: the job's ``error`` as RunPod returned it (may be a JSON string).
    """

    def __init__(
        self, message: str, *, job_status: str, error_text: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.job_status = job_status
        self.error_text = error_text


class WorkerProtocolError(JobError):
    """Raised when a worker's output does not match its protocol (too old, malformed)."""


class ProtocolMismatchError(WorkerProtocolError):
    """Raised when the endpoint's workers speak another protocol than the one asked for.

    A v1 worker asked for a lease answers ``Unknown action: lease`` (worker-protocols.md); a v2
    worker asked for a wake-up answers ``Unknown action: wakeup``. ``WorkerProtocol = auto``
    catches this and switches to the protocol the worker speaks.

    Attributes:
        detected: the protocol the worker showed it speaks (``"v1"`` or ``"v2"``).
    """

    def __init__(self, *, detected: str, **kwargs: Any) -> None:
        kwargs.setdefault("phase", Phase.POLLING)
        if detected == "v2":
            message = (
                "The endpoint's worker speaks protocol v2 (leases), not v1: it answered "
                "'Unknown action: wakeup'. Set WorkerProtocol = auto or v2."
            )
        else:
            message = (
                f"The endpoint's worker speaks protocol {detected}, not leases (v2): it answered "
                "'Unknown action: lease'. Set WorkerProtocol = auto or v1, or update the worker "
                "image to 2.x."
            )
        super().__init__(message, **kwargs)
        self.detected = detected


class WorkerNotReadyError(OrchestratorError):
    """Raised when no worker became ready within the startup timeout.

    Attributes:
        timeout_s: the startup timeout that ran out.
        last_status: the last RunPod status seen for the wake-up job.
    """

    retryable_default = True
    advice = (
        "Check the endpoint's max workers and GPU availability in the RunPod console (IN_QUEUE "
        "means no worker started; unhealthy workers mean the image crashes at start), or raise "
        "StartupTimeoutSec for slow first installs."
    )

    def __init__(self, timeout_s: float, *, last_status: str | None = None, **kwargs: Any) -> None:
        seen = f" (wake-up job last seen {last_status})" if last_status else ""
        super().__init__(f"Worker not ready within {timeout_s:g} s{seen}. {self.advice}", **kwargs)
        self.timeout_s = timeout_s
        self.last_status = last_status


class NoCapacityError(WorkerNotReadyError):
    """Raised when no worker became ready because RunPod had no GPU for the endpoint: its
    workers stayed throttled (``/health``) until the startup timeout."""

    advice = (
        "RunPod has no GPU for this endpoint right now: its workers stayed throttled. Allow "
        "more GPU types on the endpoint, or try again later."
    )


class WorkerCrashLoopError(WorkerNotReadyError):
    """Raised when no worker became ready because the endpoint's workers crash while starting
    (``unhealthy`` in ``/health``) until the startup timeout."""

    advice = (
        "The endpoint's workers crash while starting (unhealthy): read the worker logs in the "
        "RunPod console (image, start command, model downloads, GPU memory)."
    )


class GenerationTimeoutError(OrchestratorError):
    """Raised when a generation ran longer than GenerationTimeoutSec."""

    retryable_default = True

    def __init__(self, timeout_s: float, **kwargs: Any) -> None:
        super().__init__(
            f"Generation did not finish within {timeout_s:g} s (GenerationTimeoutSec). "
            "Lower steps/images or raise GenerationTimeoutSec.",
            **kwargs,
        )
        self.timeout_s = timeout_s


class SwarmUIError(OrchestratorError):
    """Raised when the worker's SwarmUI answered with an error.

    Attributes:
        route: the SwarmUI API route.
        error_id: SwarmUI's ``error_id`` when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        route: str | None = None,
        error_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("phase", Phase.GENERATING)
        super().__init__(message, **kwargs)
        self.route = route
        self.error_id = error_id


class SwarmUISessionError(SwarmUIError):
    """Raised when SwarmUI still rejects the session after one renewal."""

    retryable_default = True


class GenerationFailedError(SwarmUIError):
    """Raised when SwarmUI reports a failed generation; the message is SwarmUI's own text."""


class NoImagesError(SwarmUIError):
    """Raised when a generation finished without returning any image."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            "No images returned from the worker. Check the model name and the worker's "
            "SwarmUI logs (the backend may have refused or failed the request).",
            **kwargs,
        )


class ImageDecodeError(SwarmUIError):
    """Raised when a returned image is not a decodable image of the requested size."""


class StateFileError(OrchestratorError):
    """Raised at start when one of swarmpod's SQLite files (the state file, the accounts or
    the model catalogs) cannot be used: it is not a database, is damaged, or cannot be opened
    or written. swarmpod never overwrites it; the message says what to do.

    Attributes:
        file: the file.
        reason: what is wrong, in SQLite's words.
    """

    def __init__(self, message: str, *, file: str, reason: str, **context: Any) -> None:
        context.setdefault("phase", Phase.ADMISSION)
        super().__init__(message, retryable=False, **context)
        self.file = file
        self.reason = reason


class DatabaseError(OrchestratorError):
    """Raised when the state database (a SQLite file, or PostgreSQL with ``DatabaseUrl``)
    cannot be reached or used: a connection refused, a query that failed. The message names
    the database without its password.

    Attributes:
        database: the database, as swarmpod shows it (``PostgreSQL postgresql://user@host/db``).
        reason: what went wrong, in the driver's words.
    """

    retryable_default = True

    def __init__(self, message: str, *, database: str, reason: str, **context: Any) -> None:
        context.setdefault("phase", Phase.ADMISSION)
        super().__init__(message, **context)
        self.database = database
        self.reason = reason


class SchemaTooNewError(DatabaseError):
    """Raised at start when a newer swarmpod migrated the database past the versions this one
    knows: it is left untouched, and this swarmpod refuses to use it.

    Attributes:
        component: the part of the schema (``journal``, ``accounts``, ...).
        found: its version in the database.
        supported: the newest version this swarmpod knows.
    """

    def __init__(
        self,
        message: str,
        *,
        database: str,
        component: str,
        found: int,
        supported: int,
        **context: Any,
    ) -> None:
        context.setdefault("retryable", False)
        super().__init__(message, database=database, reason="schema too new", **context)
        self.component = component
        self.found = found
        self.supported = supported


class InvalidParameterError(OrchestratorError, ValueError):
    """Raised before any RunPod call when a T2I parameter is outside what SwarmUI accepts; the
    message is SwarmUI's own text for it (``Invalid value for parameter Steps: ...``).

    Attributes:
        parameter: the parameter's SwarmUI id (``steps``, ``width``, ...).
        value: the value refused, as text (shortened).
    """

    def __init__(self, message: str, *, parameter: str, value: str, **context: Any) -> None:
        context.setdefault("phase", Phase.ADMISSION)
        super().__init__(message, retryable=False, **context)
        self.parameter = parameter
        self.value = value


class OrchestratorClosingError(OrchestratorError):
    """Raised into a generation still waiting for a worker when the orchestrator (or its pool)
    shuts down; nothing was generated and no worker is held for it. Retry on a running
    orchestrator.
    """

    retryable_default = True

    def __init__(self, message: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("phase", Phase.ADMISSION)
        super().__init__(
            message
            or "swarmpod is shutting down: this generation was still waiting for a worker and "
            "did not start. Send it again once swarmpod runs.",
            **kwargs,
        )


OrchestratorError.__init__ = _frozen_after(OrchestratorError.__init__)  # type: ignore[method-assign]
