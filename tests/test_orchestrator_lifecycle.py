"""Entering and leaving an orchestrator: what it opens it closes, on every path."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import aiohttp
import pytest
from support import ENDPOINT, KEY

from orchestrator import Orchestrator, OrchestratorError, Settings

pytestmark = pytest.mark.anyio


def settings(state_file: str) -> Settings:
    return Settings.load(
        env={},
        overrides={
            "EndpointId": ENDPOINT,
            "RunPodApiKey": KEY,
            "RunPodBaseUrl": "http://127.0.0.1:9/v2",
            "StateFile": state_file,
        },
    )


async def test_a_state_file_that_cannot_be_made_is_an_orchestrator_error_naming_it(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    state = blocker / "sub" / "state.sqlite3"  # its folder cannot be created under a file
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        with pytest.raises(OrchestratorError, match="cannot be opened") as caught:
            async with Orchestrator(settings(str(state))):
                pytest.fail("it must not enter")
        gc.collect()  # an HTTP session left open would warn here
    assert str(state) in str(caught.value)


async def test_an_orchestrator_left_opens_no_session_it_leaves_behind(tmp_path: Path) -> None:
    orch = Orchestrator(settings(str(tmp_path / "state.sqlite3")))
    async with orch:
        session = orch._session
        assert isinstance(session, aiohttp.ClientSession)
        open_inside = not session.closed
    assert open_inside and session.closed and orch._journal is None
