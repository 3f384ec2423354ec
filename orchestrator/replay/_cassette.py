"""Cassettes: every HTTP exchange of a recorded run, one JSON object per line.

::

    {"kind":"header","format":"swarmpod-cassette","version":1,"swarmpod":"0.1.0",
     "recorded_at":"2025-06-01T09:30:00+00:00","clock_phase":0.25,
     "settings":{"endpoint_id":"local-ep","runpod_base_url":"http://127.0.0.1:40123/v2",
                 "poll_interval_ms":500,...},
     "retry":{"attempts":4,"base_delay":0.5,"max_delay":8.0,"max_retry_after":60.0,
              "jitter":[0.371]}}
    {"kind":"generation","index":0,"at":0.0,"params":{"prompt":"a fox","seed":5},"images":1,
     "user":null,"after_progress":0,"cancel_after":null}
    {"kind":"http","seq":0,"t":0.0012,"dt":0.0031,"method":"POST",
     "url":"http://127.0.0.1:40123/v2/local-ep/run","request_headers":{"Authorization":
     "[redacted]"},"request_body":"{\\"input\\":{\\"action\\":\\"wakeup\\"}}","status":200,
     "headers":{"Content-Type":"application/json; charset=utf-8"},"body":"{\\"id\\":...}"}
    {"kind":"ws","seq":9,"t":6.2,"dt":0.001,"method":"GET",
     "url":"ws://127.0.0.1:40200/API/GenerateText2ImageWS","status":101,...,
     "messages":[{"t":6.2,"from":"client","type":"text","data":"{...}"},
                 {"t":6.4,"from":"server","type":"text","data":"{\\"gen_progress\\":...}"},
                 {"t":9.1,"from":"client","type":"close","code":1000}]}
    {"kind":"outcome","duration":98.5,"generations":[{"index":0,"state":"Done",
     "path":["Idle",...,"Done"],"cold_start":true,"images":[{"seed":5,"sha256":"…"}],
     "error":null}]}

Line 1 is the header — the settings without the API key, the retry policy with the backoff
delays it drew, and the loop clock's fraction of a second at the start — the last line the
outcome trailer; in between the generations asked for and the exchanges in the order they
started. Times are loop seconds from the start of the recording (``t``) and durations (``dt``);
a WebSocket exchange lists its messages in both directions with their times. A failed
exchange has ``"status": null`` and ``"error": {"kind": "connect"|"disconnect"|"timeout"|
"cancelled", "type": "<exception>"}``.
Bodies are stored as they were received — as text (``body``) when they are UTF-8, else as
base64 (``body_b64``) — because the replay serves them back: a cassette with images is as
large as the images. Secrets are redacted (see ``_redact.py``).

``_cassette_write.py`` writes these lines; ``_cassette_load.py`` reads them back, validating
every line and refusing a bad file with :class:`CassetteError` naming the file, the line and
the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ..errors import OrchestratorError
from ._scenario import ScenarioError

__all__ = [
    "FORMAT",
    "VERSION",
    "Cassette",
    "CassetteError",
    "ErrorFacts",
    "Exchange",
    "ExchangeError",
    "GenerationCall",
    "GenerationOutcome",
    "ImageFacts",
    "WsMessage",
]

FORMAT: Final = "swarmpod-cassette"
VERSION: Final = 1
ERROR_KINDS: Final = ("connect", "disconnect", "timeout", "cancelled")
MESSAGE_TYPES: Final = ("text", "binary", "close", "closed", "error")
FINAL_STATES: Final = ("Done", "Failed", "Cancelled")


class CassetteError(ScenarioError):
    """Raised when a cassette file cannot be used; says the file, line and reason."""


# --- the records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WsMessage:
    """One WebSocket event of a recorded exchange, as the client saw it.

    Attributes:
        t: loop seconds from the start of the recording.
        sender: ``"client"`` (swarmpod sent it) or ``"server"`` (swarmpod received it).
        type: ``text``, ``binary``, ``close`` (with ``code``), ``closed`` (the connection was
            lost without a close frame) or ``error``.
        data: the text, or the bytes of a binary message; None otherwise.
        code: the close code of a ``close``.
    """

    t: float
    sender: Literal["client", "server"]
    type: str
    data: str | bytes | None = None
    code: int | None = None


@dataclass(frozen=True)
class ExchangeError:
    """How an exchange failed on the client's side.

    Attributes:
        kind: ``connect`` (nothing reached the server), ``disconnect`` (the connection dropped),
            ``timeout`` (swarmpod gave up waiting) or ``cancelled`` (swarmpod stopped waiting).
        type: the exception's class name.
    """

    kind: str
    type: str


@dataclass(frozen=True)
class Exchange:
    """One recorded HTTP request and its answer (or a WebSocket upgrade and its messages).

    Attributes:
        seq: the order in which the requests started.
        line: the cassette line it was read from (0 before it is written).
        kind: ``http`` or ``ws``.
        t: loop seconds from the start of the recording to the request.
        dt: seconds until the answer was read (the upgrade, for a WebSocket).
        method: the HTTP method.
        url: the full URL (redacted).
        request_headers: the request headers (redacted).
        request_body: the request body, when there was one.
        status: the answer's status, None when the exchange failed.
        headers: the answer's headers, except hop-by-hop and length headers.
        body: the answer's body.
        error: how it failed, when it did.
        messages: the WebSocket messages in both directions.
    """

    seq: int
    kind: Literal["http", "ws"]
    t: float
    dt: float
    method: str
    url: str
    request_headers: Mapping[str, str] = field(default_factory=dict)
    request_body: bytes | None = None
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    error: ExchangeError | None = None
    messages: tuple[WsMessage, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class GenerationCall:
    """One ``generate()`` call of the recorded run.

    Attributes:
        index: its position among the calls, from 0.
        at: loop seconds from the start of the recording to the call.
        params: the SwarmUI parameters.
        images: how many images.
        user: the calling user.
        after_progress: progress events (of all generations) seen before the call: a call
            made in reaction to one ("start the next when the first is generating") is made
            after the same event in the replay, not merely at the same instant.
        cancel_after: seconds after the call at which the caller gave up (cancelled it), if
            it did; the replay cancels it at the same moment.
    """

    index: int
    at: float
    params: Mapping[str, Any]
    images: int
    user: str | None = None
    after_progress: int = 0
    cancel_after: float | None = None


@dataclass(frozen=True)
class ImageFacts:
    """What identifies a returned image: its seed and the SHA-256 of its bytes."""

    seed: int | None
    sha256: str


@dataclass(frozen=True)
class ErrorFacts:
    """The error a generation ended with: its class name, phase and HTTP status."""

    type: str
    phase: str | None
    status: int | None = None

    @classmethod
    def of(cls, error: OrchestratorError) -> ErrorFacts:
        """The facts of ``error``."""
        return cls(type(error).__name__, str(error.phase) if error.phase else None, error.status)


@dataclass(frozen=True)
class GenerationOutcome:
    """How one generation ended: final state, chart path, images, error."""

    index: int
    state: str
    path: tuple[str, ...] = ()
    cold_start: bool | None = None
    images: tuple[ImageFacts, ...] = ()
    error: ErrorFacts | None = None

    def differences(self, replayed: GenerationOutcome) -> list[str]:
        """How ``replayed`` differs from this (recorded) outcome, one phrase per fact."""
        found: list[str] = []
        who = f"generation {self.index}"
        for name in ("state", "path", "cold_start", "error"):
            recorded, got = getattr(self, name), getattr(replayed, name)
            if recorded != got:
                found.append(f"{who}: {name} {_show(got)}, recorded {_show(recorded)}")
        if len(self.images) != len(replayed.images):
            found.append(f"{who}: {len(replayed.images)} image(s), recorded {len(self.images)}")
        else:
            for number, (recorded_image, got_image) in enumerate(
                zip(self.images, replayed.images, strict=True)
            ):
                if recorded_image != got_image:
                    found.append(
                        f"{who}: image {number} is seed {got_image.seed} "
                        f"sha256 {got_image.sha256[:12]}, recorded seed {recorded_image.seed} "
                        f"sha256 {recorded_image.sha256[:12]}"
                    )
        return found


@dataclass(frozen=True)
class Cassette:
    """A whole recording, validated.

    Attributes:
        source: the file it was loaded from ("" when built in memory).
        swarmpod_version: the swarmpod that recorded it.
        recorded_at: the wall-clock time the recording started (ISO 8601, UTC).
        settings: the recorded Settings by attribute name, without the API key.
        retry: the RetryPolicy fields (attempts, base_delay, max_delay, max_retry_after).
        generations: the ``generate()`` calls.
        exchanges: the HTTP exchanges in the order they started.
        outcomes: how each generation ended.
        duration: loop seconds from the start to the end of the recording.
        jitter: the backoff delays the retry policy drew at random, in order (the replay
            draws them again).
        clock_phase: the fraction of a second the loop clock showed at the start; a replay
            starts at the same fraction, because aiohttp rounds timeouts above 5 s up to whole
            seconds of the loop clock.
    """

    source: str
    swarmpod_version: str
    recorded_at: str
    settings: Mapping[str, Any]
    retry: Mapping[str, float]
    generations: tuple[GenerationCall, ...]
    exchanges: tuple[Exchange, ...]
    outcomes: tuple[GenerationOutcome, ...]
    duration: float
    clock_phase: float = 0.0
    jitter: tuple[float, ...] = ()

    @property
    def runpod_base_url(self) -> str:
        """The RunPod API base URL of the recording."""
        return str(self.settings.get("runpod_base_url", ""))


def _show(value: Any) -> str:
    if isinstance(value, ErrorFacts):
        phase = f"[{value.phase}]" if value.phase else ""
        return f"{value.type}{phase}"
    if isinstance(value, tuple):
        return " → ".join(value) if value else "()"
    return repr(value)
