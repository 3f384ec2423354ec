"""Generations still waiting for a worker when the orchestrator shuts down end with a typed,
retryable error, never an untyped RuntimeError (and no traceback in the log)."""

from __future__ import annotations

import logging

import anyio
import pytest
from support import ENDPOINT, KEY, settings_for

from orchestrator import Orchestrator
from orchestrator.emulator import Emulator, EmulatorConfig, EndpointConfig
from orchestrator.errors import OrchestratorClosingError

pytestmark = pytest.mark.anyio

NEVER_READY = EndpointConfig(protocol="v2", cold_start_s=5000.0, max_workers=1)


async def test_generations_waiting_at_shutdown_get_orchestrator_closing_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    errors: list[BaseException] = []
    config = EmulatorConfig(endpoints={ENDPOINT: NEVER_READY}, api_keys=(KEY,))
    async with Emulator(config) as emulator:
        settings = settings_for(
            emulator,
            WorkerProtocol="v2",
            MaxWorkers=1,
            StartupTimeoutSec=6000,
            GenerationTimeoutSec=10,
        )

        async def generate(orch: Orchestrator) -> None:
            try:
                await orch.generate({"prompt": "x", "width": 64, "height": 64})
            except Exception as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tasks, Orchestrator(settings) as orch:
            for _ in range(2):
                tasks.start_soon(generate, orch)
            await anyio.sleep(30)  # both wait for the one worker, still booting
    assert len(errors) == 2
    assert all(isinstance(error, OrchestratorClosingError) for error in errors), errors
    assert all(error.retryable for error in errors)  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
