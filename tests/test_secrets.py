"""A RunPod key never shows: not in logs, reprs, results, progress events or errors."""

from __future__ import annotations

import logging

import pytest
from support import KEY, world

from orchestrator import OrchestratorError, Secret
from orchestrator.emulator import EndpointConfig

pytestmark = pytest.mark.anyio


async def test_a_planted_key_never_reaches_logs_reprs_results_or_events(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with world(EndpointConfig(cold_start_s=10)) as w:
        result = await w.orch.generate({"prompt": "a fox"}, on_progress=w.record)
        w.endpoint.swarm_faults.generation_error("boom")
        with pytest.raises(OrchestratorError) as caught:
            await w.orch.generate({"prompt": "a fox"}, on_progress=w.record)
        seen = "\n".join(
            [
                caplog.text,
                repr(w.orch),
                repr(w.orch.settings),
                str(w.orch.settings),
                repr(result),
                repr(w.events),
                str(caught.value),
                repr(caught.value),
                repr(caught.value.facts()),
            ]
        )
    assert caplog.records, "the run logged nothing: the check would prove nothing"
    assert KEY not in seen


def test_a_secret_refuses_to_be_pickled() -> None:
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(Secret("rpa_x"))
