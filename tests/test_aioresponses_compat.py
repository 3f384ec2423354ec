"""The aioresponses compatibility shim: applied only where the installed pair is broken.

Each check that must see aioresponses unpatched runs in a fresh interpreter, since the shim
patches the process once and for good.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import aiohttp
import pytest
from aioresponses import aioresponses

from orchestrator.replay._aioresponses_compat import (
    PROBE_BODY_BYTES,
    aioresponses_problems,
    ensure_aioresponses_compat,
)

pytestmark = pytest.mark.anyio


def fresh(code: str) -> str:
    """Run ``code`` in a new interpreter; return its stdout (fail on a non-zero exit)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_shim_applies_exactly_the_fixes_the_probe_asks_for() -> None:
    found = fresh(
        """
        from orchestrator.replay._aioresponses_compat import (
            aioresponses_problems, ensure_aioresponses_compat)
        before = set()
        for _ in range(3):  # the second problem shows once the first is fixed
            problems = aioresponses_problems()
            if not problems:
                break
            before |= set(problems)
            from orchestrator.replay import _aioresponses_compat as c
            for name in problems:
                c._FIXES[name](c._core())
        print(sorted(before))
        """
    )
    applied = fresh(
        """
        from orchestrator.replay._aioresponses_compat import ensure_aioresponses_compat
        print(sorted(ensure_aioresponses_compat()))
        """
    )
    assert applied == found
    aiohttp_version = tuple(int(part) for part in aiohttp.__version__.split(".")[:2])
    if aiohttp_version >= (3, 14) and _aioresponses_version() <= (0, 7, 9):
        assert found == "['pause_reading', 'stream_writer']"  # pnuckowski/aioresponses#289


def _aioresponses_version() -> tuple[int, ...]:
    import aioresponses as package

    return tuple(int(part) for part in package.__version__.split("."))


def test_the_shim_stays_away_from_an_aioresponses_that_works() -> None:
    # An aioresponses release with both upstream fixes, simulated by making the installed one
    # work first: the shim must then apply nothing and replace nothing.
    untouched = fresh(
        """
        import aioresponses.core as core
        from orchestrator.replay import _aioresponses_compat as c
        for name in ("stream_writer", "pause_reading"):
            if name in c.aioresponses_problems():
                c._FIXES[name](core)
        upstream = (core.ClientResponse, core.stream_reader_factory)
        c._applied.clear()
        now = (core.ClientResponse, core.stream_reader_factory)
        print(c.ensure_aioresponses_compat(), now == upstream)
        """
    )
    assert untouched == "() True"


def test_after_the_shim_the_probe_finds_nothing_broken() -> None:
    ensure_aioresponses_compat()
    assert aioresponses_problems() == {}
    assert ensure_aioresponses_compat() == ensure_aioresponses_compat()  # idempotent


async def test_a_canned_body_of_several_megabytes_reads_back_whole(anyio_backend: object) -> None:
    ensure_aioresponses_compat()
    body = bytes(range(256)) * (12 * PROBE_BODY_BYTES // 256)
    with aioresponses() as mocked:
        mocked.get("http://canned.invalid/big.png", body=body, content_type="image/png")
        mocked.post("http://canned.invalid/json", payload={"ok": True}, status=201)
        async with aiohttp.ClientSession() as session:
            async with session.get("http://canned.invalid/big.png") as response:
                assert response.content_type == "image/png"
                assert await response.read() == body
            async with session.post("http://canned.invalid/json") as response:
                assert (response.status, await response.json()) == (201, {"ok": True})
