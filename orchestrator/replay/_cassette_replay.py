"""Replays a cassette: the engine re-runs the recorded provider timeline in virtual time.

The recorded ``generate()`` calls are made again at their recorded times, by an orchestrator
with the recorded settings and retry policy (its backoff jitter seeded), against a
:class:`CassetteServer` serving the recorded exchanges. The verdict compares each replayed
outcome — final state, chart path, cold start, images (seed and SHA-256 of each), error type
and phase — with the recorded one, and reports requests the cassette cannot answer and
recorded exchanges nobody asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import aiohttp
import anyio

from .._orchestrator import Orchestrator
from .._progress import ProgressEvent
from .._retry import RetryPolicy
from ..errors import OrchestratorError
from ..settings import Settings
from ._cassette import Cassette, ErrorFacts, GenerationCall, GenerationOutcome
from ._cassette_server import CassetteServer
from ._jitter import ReplayedRandom
from ._recorder import outcome_of
from ._timeline import Names, render_timeline
from ._virtual_time import virtual_time_backend

__all__ = ["CassetteReport", "replay_cassette", "replay_cassette_blocking"]

_KEY = "replay-key-not-a-secret"


@dataclass
class CassetteReport:
    """The result of one cassette replay: outcomes, the timeline, and the verdict.

    Attributes:
        cassette: what was replayed.
        outcomes: how each replayed generation ended.
        timeline: the replay's progress, one line per event (polls folded).
        problems: every way the replay departed from the recording (empty = PASS).
        served: recorded exchanges served.
        max_drift: the largest gap, in seconds, between when a request came in the replay
            and when it was made in the recording.
    """

    cassette: Cassette
    outcomes: list[GenerationOutcome]
    timeline: list[str]
    problems: list[str]
    served: int
    max_drift: float

    @property
    def passed(self) -> bool:
        """Whether the replay reproduced the recording."""
        return not self.problems

    def render(self) -> str:
        """The report as text: chart paths, timeline, verdict."""
        cassette = self.cassette
        out = [
            f"cassette: {cassette.source}  (recorded {cassette.recorded_at or '?'} by swarmpod "
            f"{cassette.swarmpod_version}; {len(cassette.exchanges)} exchange(s))"
        ]
        for outcome in self.outcomes:
            path = " → ".join(outcome.path) if outcome.path else outcome.state
            if outcome.error is not None:
                phase = f"[{outcome.error.phase}]" if outcome.error.phase else ""
                ending = f"  {outcome.error.type}{phase}"
            else:
                ending = f"  {len(outcome.images)} image(s)" if outcome.state == "Done" else ""
            out.append(f"  generation {outcome.index}: {path}{ending}")
            out.extend(
                f"    image {number}: seed {image.seed}  sha256 {image.sha256[:16]}"
                for number, image in enumerate(outcome.images)
            )
        out.append("  timeline:")
        out.extend(f"    {line}" for line in self.timeline)
        out.append(
            f"  exchanges served: {self.served} of {len(cassette.exchanges)}, each within "
            f"{self.max_drift:.3f} s of its recorded time"
        )
        out.append("  verdict: PASS" if self.passed else "  verdict: FAIL")
        out.extend(f"    - {problem}" for problem in self.problems)
        return "\n".join(out)


async def replay_cassette(cassette: Cassette) -> CassetteReport:
    """Replay ``cassette`` on the current event loop (use a looptime loop for virtual time)."""
    names = Names()
    timeline: list[tuple[float, int, str]] = []
    outcomes: dict[int, GenerationOutcome] = {}
    # Start at the recording's fraction of a loop second: aiohttp rounds long timeouts up to
    # whole loop seconds, so only then do they fire when they fired in the recording.
    start = math.floor(anyio.current_time()) + cassette.clock_phase
    if start < anyio.current_time():
        start += 1.0
    await anyio.sleep_until(start)

    def note(index: int, text: str) -> None:
        timeline.append((anyio.current_time() - start, index, names(server.stable(text))))

    server = CassetteServer(cassette, on_exchange=lambda text: note(-1, text))
    async with server:
        server.started_at = start
        settings = Settings.from_mapping(
            {
                **cassette.settings,
                "runpod_base_url": server.runpod_base_url,
                "runpod_api_key": _KEY,
                "state_file": ":memory:",
            },
            source=f"cassette {cassette.source}",
        )
        retry = RetryPolicy(
            attempts=int(cassette.retry["attempts"]),
            base_delay=cassette.retry["base_delay"],
            max_delay=cassette.retry["max_delay"],
            max_retry_after=cassette.retry["max_retry_after"],
            rng=ReplayedRandom(cassette.jitter),  # the recorded backoff jitter, then seeded
        )

        cue = _Cue()

        async def one(orch: Orchestrator, call: GenerationCall) -> None:
            await anyio.sleep_until(start + call.at)
            await cue.wait(call.after_progress)
            note(call.index, "submitted")

            def on_progress(event: ProgressEvent) -> None:
                percent = f" {event.percent:.0%}" if event.percent is not None else ""
                note(call.index, f"{event.stage}{percent}: {event.message}")
                cue.progress()

            deadline = (
                math.inf if call.cancel_after is None else start + call.at + call.cancel_after
            )
            try:
                with anyio.CancelScope(deadline=deadline):  # the caller gives up, as recorded
                    try:
                        result = await orch.generate(
                            call.params, images=call.images, user=call.user, on_progress=on_progress
                        )
                    except OrchestratorError as exc:
                        state = exc.path[-1] if exc.path else "Failed"
                        outcomes[call.index] = GenerationOutcome(
                            call.index, state, exc.path, None, (), ErrorFacts.of(exc)
                        )
                    else:
                        outcomes[call.index] = outcome_of(call.index, result)
            finally:
                cue.finished()

        async with (
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None),
                middlewares=(server.client_middleware,),
            ) as session,
            Orchestrator(settings, session=session, retry=retry) as orch,
            anyio.create_task_group() as watch,
        ):
            generations = anyio.CancelScope()

            async def stop_at_divergence() -> None:
                await server.diverged.wait()
                generations.cancel()  # stop at the first request the cassette cannot answer

            watch.start_soon(stop_at_divergence)
            with generations:
                async with anyio.create_task_group() as tasks:
                    for call in cassette.generations:
                        tasks.start_soon(one, orch, call)
            watch.cancel_scope.cancel()

        replayed = [
            outcomes.get(call.index, GenerationOutcome(call.index, "Cancelled"))
            for call in cassette.generations
        ]
        problems = _judge(cassette, replayed, server)
        return CassetteReport(
            cassette,
            replayed,
            render_timeline(timeline),
            problems,
            server.served,
            server.max_drift,
        )


class _Cue:
    """Lets a generation wait for the progress event it followed in the recording.

    A wait also ends when no generation is running any more (no event can come): the replay
    has diverged then, and the verdict says how.
    """

    def __init__(self) -> None:
        self._seen = 0
        self._running = 0
        self._changed = anyio.Event()

    def progress(self) -> None:
        self._seen += 1
        self._notify()

    def finished(self) -> None:
        self._running -= 1
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait(self, events: int) -> None:
        while self._seen < events and self._running > 0:
            await self._changed.wait()
        self._running += 1


def _judge(
    cassette: Cassette, replayed: list[GenerationOutcome], server: CassetteServer
) -> list[str]:
    problems: list[str] = []
    if server.unexpected:
        problems.append(server.unexpected[0])
        if len(server.unexpected) > 1:
            problems.append(f"{len(server.unexpected) - 1} more unexpected request(s) after it")
    for recorded, got in zip(cassette.outcomes, replayed, strict=True):
        problems.extend(recorded.differences(got))
    unused = server.unused()
    if unused and not server.unexpected:
        first = unused[0]
        problems.append(
            f"{len(unused)} recorded exchange(s) never requested; first: "
            f"{server.describe(first)} (line {first.line}, recorded at {first.t:.3f}s)"
        )
    return problems


def replay_cassette_blocking(cassette: Cassette) -> CassetteReport:
    """Replay ``cassette`` on a fresh looptime loop: virtual time, a minute costs milliseconds."""
    report: CassetteReport = anyio.run(
        replay_cassette, cassette, backend_options=virtual_time_backend()
    )
    return report
