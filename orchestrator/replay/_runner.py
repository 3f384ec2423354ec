"""Runs a scenario against the embedded emulator and judges it against its expectations."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import anyio

from observability import Telemetry

from .._orchestrator import Orchestrator
from .._progress import ProgressEvent
from .._retry import RetryPolicy
from ..emulator import EmulatedEndpoint, Emulator, EmulatorConfig
from ..errors import OrchestratorError
from ..settings import Settings
from ._scenario import RequestStep, Scenario
from ._timeline import Names, render_timeline
from ._virtual_time import virtual_time_backend

__all__ = ["RequestOutcome", "ScenarioReport", "run_scenario", "run_scenario_blocking"]

_ENDPOINT = "scenario-ep"
_KEY = "scenario-key"


@dataclass
class RequestOutcome:
    """How one scenario request ended."""

    index: int
    path: tuple[str, ...] = ()
    state: str = "?"
    error: OrchestratorError | None = None
    cold_start: bool | None = None
    images: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class ScenarioReport:
    """The result of one scenario run: outcomes, the timeline, and the verdict."""

    scenario: Scenario
    outcomes: list[RequestOutcome]
    timeline: list[str]
    problems: list[str]
    billed_seconds: float | None
    api_calls: int

    @property
    def passed(self) -> bool:
        """Whether every expectation held."""
        return not self.problems and not any(o.problems for o in self.outcomes)

    def render(self) -> str:
        """The report as text: chart paths, timeline, verdict."""
        out = [f"scenario: {self.scenario.name}  ({self.scenario.source})"]
        for o in self.outcomes:
            error = f"  {type(o.error).__name__}[{o.error.phase}]" if o.error else ""
            out.append(f"  request {o.index}: {' → '.join(o.path)}{error}")
        out.append("  timeline:")
        out.extend(f"    {line}" for line in self.timeline)
        billed = "-" if self.billed_seconds is None else f"{self.billed_seconds:g} s"
        out.append(f"  RunPod API calls: {self.api_calls}   billed: {billed}")
        problems = self.problems + [p for o in self.outcomes for p in o.problems]
        out.append("  verdict: PASS" if not problems else "  verdict: FAIL")
        out.extend(f"    - {problem}" for problem in problems)
        return "\n".join(out)


_BILLING = ("idle", "running")
"""Worker states swarmpod answers for. A worker still booting for a job that was withdrawn
bills too, but no API call stops it: RunPod's scaler started it, its idle timeout ends it."""


async def run_scenario(scenario: Scenario) -> ScenarioReport:
    """Run ``scenario`` on the current event loop (use a looptime loop for virtual time)."""
    config = EmulatorConfig(endpoints={_ENDPOINT: scenario.endpoint}, api_keys=(_KEY,))
    names = Names()
    timeline: list[tuple[float, int, str]] = []
    outcomes = [RequestOutcome(index) for index in range(len(scenario.requests))]
    async with Emulator(config) as emulator:
        endpoint = emulator.endpoint(_ENDPOINT)
        settings = Settings.load(
            env={},
            overrides={
                "EndpointId": _ENDPOINT,
                "RunPodApiKey": _KEY,
                "RunPodBaseUrl": emulator.base_url,
                "StateFile": ":memory:",  # a scenario starts from nothing remembered
                # The emulated image is known; scenarios of `auto` detection set it themselves.
                "WorkerProtocol": scenario.endpoint.protocol,
                **scenario.settings,
            },
        )
        start = anyio.current_time()

        def note(index: int, text: str) -> None:
            timeline.append((anyio.current_time() - start, index, names(text)))

        async def apply_fault(step: Any) -> None:
            await anyio.sleep(step.at)
            owner = _fault_owner(endpoint, step.target)
            getattr(owner, step.method)(**step.args)
            note(-1, f"fault {step.target}.{step.method}({_args(step.args)})")

        async def request(index: int, step: RequestStep, orch: Orchestrator) -> None:
            await anyio.sleep(step.at)
            outcome = outcomes[index]
            note(index, "submitted")

            def on_progress(event: ProgressEvent) -> None:
                percent = f" {event.percent:.0%}" if event.percent is not None else ""
                note(index, f"{event.stage}{percent}: {event.message}")

            with anyio.CancelScope() as scope:
                if step.cancel_after is not None:
                    scope.deadline = anyio.current_time() + step.cancel_after
                try:
                    result = await orch.generate(
                        step.params, images=step.images, user=step.user, on_progress=on_progress
                    )
                except OrchestratorError as exc:
                    outcome.error = exc
                    outcome.path = exc.path
                else:
                    outcome.path = result.path
                    outcome.cold_start = result.cold_start
                    outcome.images = len(result.images)
            if scope.cancelled_caught:
                outcome.path = ("...", "Cancelled")
            outcome.state = outcome.path[-1] if outcome.path else "?"
            _judge(outcome, step)

        # Seeded backoff jitter: the same scenario gives the same timeline.
        retry = RetryPolicy(rng=random.Random(0))
        problems: list[str] = []
        telemetry = Telemetry.configure(in_memory=True, otlp=False)
        async with Orchestrator(settings, retry=retry, telemetry=telemetry) as orch:
            async with anyio.create_task_group() as tasks:
                for fault in scenario.faults:
                    tasks.start_soon(apply_fault, fault)
                for index, step in enumerate(scenario.requests):
                    tasks.start_soon(request, index, step, orch)
            # Every worker must be let go by the idle window itself, not by the shutdown.
            window = orch.idle.seconds
            await anyio.sleep(window + scenario.endpoint.idle_timeout_s + 2)
            billing = [w for w in endpoint.running_workers() if str(w.state) in _BILLING][
                scenario.endpoint.min_workers :
            ]
            if billing and scenario.expect.get("no_worker_left_running", True):
                problems.append(
                    f"{len(billing)} worker(s) still billing {window:g} s (the idle window) "
                    "after the last generation"
                )

        still_open = telemetry.open_spans()
        telemetry.shutdown()
        if still_open:
            problems.append(f"span(s) left open after the run: {', '.join(still_open)}")
        left = [
            job.id for job in endpoint.jobs.values() if job.status in ("IN_QUEUE", "IN_PROGRESS")
        ]
        if scenario.expect.get("no_worker_left_running", True):
            if left:
                problems.append(
                    f"{len(left)} job(s) left queued or running: {names(', '.join(left))}"
                )
            # Give the endpoint its own idle timeout to stop what swarmpod let go.
            await anyio.sleep(scenario.endpoint.idle_timeout_s + 1)
            extra = [w for w in endpoint.running_workers() if str(w.state) in _BILLING][
                scenario.endpoint.min_workers :
            ]
            if extra:
                problems.append(f"{len(extra)} worker(s) still running after the idle timeout")
        billed = _billed_seconds(endpoint)
        limit = scenario.expect.get("max_billed_seconds")
        if limit is not None:
            if billed is None:
                problems.append("max_billed_seconds is set but the emulator keeps no ledger")
            elif billed > limit:
                problems.append(f"billed {billed:g} s > max_billed_seconds {limit}")
        api_calls = len(endpoint.api_calls)
        max_calls = scenario.expect.get("max_api_calls")
        if max_calls is not None and api_calls > max_calls:
            problems.append(f"{api_calls} RunPod API calls > max_api_calls {max_calls}")

    return ScenarioReport(
        scenario, outcomes, render_timeline(timeline), problems, billed, api_calls
    )


def run_scenario_blocking(scenario: Scenario) -> ScenarioReport:
    """Run ``scenario`` on a fresh looptime loop: virtual time, a minute costs milliseconds."""
    report: ScenarioReport = anyio.run(
        run_scenario, scenario, backend_options=virtual_time_backend()
    )
    return report


def _billed_seconds(endpoint: Any) -> float | None:
    ledger_json = getattr(endpoint, "ledger_json", None)
    if ledger_json is None:
        return None
    data = ledger_json()
    total = data.get("total_billed_seconds") if isinstance(data, dict) else None
    return float(total) if isinstance(total, int | float) else None


def _judge(outcome: RequestOutcome, step: RequestStep) -> None:
    expect = step.expect
    got = outcome.error
    if "state" in expect and outcome.state != expect["state"]:
        detail = f" ({type(got).__name__}: {got})" if got else ""
        outcome.problems.append(
            f"request {outcome.index}: ended {outcome.state}, expected {expect['state']}{detail}"
        )
    if "error" in expect:
        names = {cls.__name__ for cls in type(got).__mro__} if got else set()
        if expect["error"] not in names:
            outcome.problems.append(
                f"request {outcome.index}: error {type(got).__name__ if got else None}, "
                f"expected {expect['error']}"
            )
    if "phase" in expect and (got is None or str(got.phase) != expect["phase"]):
        outcome.problems.append(
            f"request {outcome.index}: phase {got.phase if got else None}, "
            f"expected {expect['phase']}"
        )
    if "cold_start" in expect and outcome.cold_start != expect["cold_start"]:
        outcome.problems.append(
            f"request {outcome.index}: cold_start {outcome.cold_start}, "
            f"expected {expect['cold_start']}"
        )
    if "images" in expect and outcome.images != expect["images"]:
        outcome.problems.append(
            f"request {outcome.index}: {outcome.images} image(s), expected {expect['images']}"
        )
    if "path" in expect and list(outcome.path) != list(expect["path"]):
        outcome.problems.append(
            f"request {outcome.index}: path {list(outcome.path)}, expected {expect['path']}"
        )


def _args(args: Any) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in dict(args).items())


def _fault_owner(endpoint: EmulatedEndpoint, target: str) -> Any:
    """The fault script a scenario step targets: endpoint, swarm (all workers) or workerN."""
    if target == "endpoint":
        return endpoint.faults
    if target == "swarm":
        return endpoint.swarm_faults
    return endpoint.worker_swarm_faults(int(target.removeprefix("worker")))
