"""Makes aioresponses work on the installed aiohttp, only where it does not already.

aioresponses 0.7.9 builds its canned ``ClientResponse`` objects by hand and breaks on aiohttp
3.14 in two ways (pnuckowski/aioresponses#289; upstream fixes in PRs #288 and #292, not
released at the time of writing):

- ``ClientResponse.__init__`` requires a ``stream_writer`` keyword (the request's writer, read
  only for ``output_size``): every mocked request raises ``TypeError``;
- the body's ``StreamReader`` sits on a protocol without an HTTP parser, and aiohttp 3.14's
  flow control calls ``parser.pause_reading()`` once a body passes the reader's high-water
  mark (128 KiB for aioresponses' 64 KiB limit): an ``AssertionError`` for large bodies.

:func:`ensure_aioresponses_compat` *probes* the installed pair — it builds a canned response
with a 128 KiB + 1 body and reads it back — and patches only what the probe shows broken.
Once an aioresponses release fixes either problem, its probe passes and that patch is never
applied again: nothing to remove by hand. The patches replace two names in
``aioresponses.core`` for the whole process (the default response class and the body
reader factory); the probe runs again after patching, and a pair that still fails raises.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

import aiohttp
from yarl import URL

from .._extras import import_extra

__all__ = ["PROBE_BODY_BYTES", "aioresponses_problems", "ensure_aioresponses_compat"]

PROBE_BODY_BYTES: Final = 2**17 + 1
"""Just above the high-water mark of aioresponses' body reader (twice its 64 KiB limit)."""

_FEATURE: Final = "cassette mocks (aioresponses)"
_lock = threading.Lock()
_applied: list[str] = []


def _core() -> Any:
    import_extra("aioresponses", extra="testing", feature=_FEATURE)
    import aioresponses.core

    return aioresponses.core


def aioresponses_problems() -> dict[str, str]:
    """What is broken in the installed aioresponses on the installed aiohttp, by fix name.

    ``stream_writer``: a canned response cannot be built at all; ``pause_reading``: a body
    over the reader's high-water mark cannot be fed or read back. Empty when it all works.
    """
    core = _core()
    url = URL("http://aioresponses-compat.invalid/probe")
    body = b"\x00" * PROBE_BODY_BYTES
    try:
        response = core.RequestMatch(str(url))._build_response(url, body=body)
    except TypeError as exc:
        if "stream_writer" not in str(exc):
            raise
        return {"stream_writer": str(exc)}
    except AssertionError as exc:
        return {"pause_reading": f"feeding a {PROBE_BODY_BYTES}-byte body: {exc!r}"}
    try:
        read = response.content.read_nowait()
    except AssertionError as exc:
        return {"pause_reading": f"reading a {PROBE_BODY_BYTES}-byte body: {exc!r}"}
    if read != body:
        return {"pause_reading": f"read {len(read)} of {PROBE_BODY_BYTES} bytes back"}
    return {}


def ensure_aioresponses_compat() -> tuple[str, ...]:
    """Patch aioresponses where the probe finds it broken; return every fix applied so far.

    Idempotent and thread-safe; a no-op (returning ``()``) with an aioresponses that works
    on the installed aiohttp.

    Raises:
        MissingExtraError: aioresponses is not installed (``pip install 'swarmpod[testing]'``).
        RuntimeError: the installed pair still fails after patching (say which, and why).
    """
    with _lock:
        for _ in range(2):  # a first fix can uncover the second problem
            problems = aioresponses_problems()
            if not problems:
                return tuple(_applied)
            for name in problems:
                if name in _applied:
                    break
                _FIXES[name](_core())
                _applied.append(name)
        problems = aioresponses_problems()
        if problems:
            raise RuntimeError(
                f"aioresponses does not work with aiohttp {aiohttp.__version__} even with "
                f"swarmpod's compatibility fixes: {problems}"
            )
        return tuple(_applied)


class _SentRequest:
    """Stands for the request writer of a request that was sent in full (nothing is)."""

    output_size = 0


def _fix_stream_writer(core: Any) -> None:
    base: type[aiohttp.ClientResponse] = core.ClientResponse

    class _CannedResponse(base):  # type: ignore[valid-type,misc]
        """A ClientResponse that no longer needs the request's ``stream_writer``."""

        def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", _SentRequest())
            super().__init__(method, url, **kwargs)

    core.ClientResponse = _CannedResponse


class _NoParser:
    """Stands for the HTTP parser of a canned response: the body is already in the reader."""

    def pause_reading(self) -> None:
        """Nothing to pause: no bytes are still arriving."""

    def resume_reading(self) -> None:
        """Nothing to resume."""

    def feed_data(self, data: bytes) -> tuple[tuple[()], bool, bytes]:
        """No message is ever parsed (aiohttp feeds ``b""`` when reading resumes)."""
        return (), False, b""

    def feed_eof(self) -> None:
        """Nothing is left unparsed."""


def _fix_pause_reading(core: Any) -> None:
    make_reader: Callable[..., aiohttp.StreamReader] = core.stream_reader_factory

    def stream_reader_factory(loop: Any = None) -> aiohttp.StreamReader:
        reader = make_reader(loop)
        protocol: Any = reader._protocol
        if getattr(protocol, "_parser", None) is None:
            protocol._parser = _NoParser()
        return reader

    core.stream_reader_factory = stream_reader_factory


_FIXES: Final[dict[str, Callable[[Any], None]]] = {
    "stream_writer": _fix_stream_writer,
    "pause_reading": _fix_pause_reading,
}
