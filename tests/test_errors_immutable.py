"""Errors never change once made: later facts make a new error of the same type."""

from __future__ import annotations

import pytest

import orchestrator.errors as errors
from orchestrator.errors import (
    GenerationFailedError,
    JobFailedError,
    OrchestratorError,
    Phase,
    SettingsError,
    WorkerNotReadyError,
)

SAMPLES: list[OrchestratorError] = [
    OrchestratorError("plain"),
    SettingsError("MaxWorkers", "must be >= 1"),
    WorkerNotReadyError(120, last_status="IN_QUEUE", job_id="j1"),
    JobFailedError("ended FAILED", job_status="FAILED", error_text="boom"),
    GenerationFailedError("SwarmUI said no", route="GenerateText2Image", error_id="e"),
    errors.runpod_error_for_status(429, "run", retry_after=3.0),
    errors.ProtocolMismatchError(detected="v1", job_id="j2"),
]


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_an_error_refuses_every_change_after_it_was_made(error: OrchestratorError) -> None:
    for name in ("phase", "worker_id", "job_id", "path", "message", "retryable", "anything"):
        with pytest.raises(AttributeError, match="immutable"):
            setattr(error, name, None)


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_facts_learnt_later_make_a_new_error_of_the_same_type(error: OrchestratorError) -> None:
    known = error.in_context(phase=Phase.GENERATING, worker_id="w9", path=("Idle", "Failed"))
    assert type(known) is type(error) and known is not error
    assert known.path == ("Idle", "Failed")
    assert known.worker_id == "w9"
    assert known.phase == (error.phase or Phase.GENERATING)  # a known phase is kept
    assert str(known) == str(error) and known.retryable == error.retryable
    assert error.path == () and error.worker_id is None  # the first one is unchanged


def test_nothing_new_to_know_gives_the_same_error() -> None:
    error = WorkerNotReadyError(10, phase=Phase.POLLING)
    assert error.in_context(phase=Phase.WAKING) is error


def test_a_shared_failure_is_raised_per_caller_from_the_shared_one() -> None:
    shared = WorkerNotReadyError(30, last_status="IN_QUEUE", job_id="lease-1")
    raised: list[WorkerNotReadyError] = []
    for _ in range(2):
        try:
            raise shared.again() from shared
        except WorkerNotReadyError as mine:
            raised.append(mine)
    first, second = raised
    assert first is not second and first is not shared
    assert first.__cause__ is shared and second.__cause__ is shared
    assert (first.timeout_s, first.last_status, first.job_id) == (30, "IN_QUEUE", "lease-1")


def test_notes_and_chaining_still_work_on_a_frozen_error() -> None:
    error = OrchestratorError("x")
    error.add_note("hint")
    with pytest.raises(OrchestratorError) as caught:
        raise error from ValueError("cause")
    assert caught.value.__notes__ == ["hint"]
    assert isinstance(caught.value.__cause__, ValueError)
