"""``make soak``: many generations in bursts against the emulator, with faults of every kind.

The engine (an :class:`~orchestrator.Orchestrator`, as the library and the service use it)
runs ``--generations`` generations in bursts of 1 to ``--burst`` at once, with random gaps so
that workers are reused warm, idled out, and booted cold. Before each generation, with
probability ``--fault-rate``, one fault is armed, drawn from every kind the emulator can
script at run time: RunPod API errors (5xx, 429), latency, dropped connections and malformed
bodies on its routes, no GPU capacity for a while, workers that die mid-job, leases refused,
never streamed or cancelled by the platform (v2), and on the worker's SwarmUI invalid
sessions, generation errors, no images, bad base64, hung generations, dropped WebSockets,
truncated answers, latency, ``donotsave`` ignored, model-load failures and slow generations.
Then every fault is cleared and a clean burst runs.

It holds when: every generation ends Done or with a typed :class:`OrchestratorError` (none
hangs past its deadlines, none raises anything else); the clean burst is at least 95 % Done;
no worker bills at the end (the emulator's ledger: every entry closed); and the process's
resident memory and open file descriptors, sampled after each burst, stay flat.

Virtual time (looptime): an hour of bursts costs seconds; memory and descriptors are the real
process's. ``python -m benchmarks.soak --generations 20000`` for a long run; the suite runs a
small one (``tests/test_soak.py``).
"""

from __future__ import annotations

import argparse
import collections
import gc
import logging
import os
import random
import socket
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, fields
from typing import Final, Literal

import aiohttp.web_app
import anyio
import looptime

from orchestrator import Orchestrator, Settings
from orchestrator.emulator import EmulatedEndpoint, Emulator, EmulatorConfig, EndpointConfig
from orchestrator.emulator.swarm import SwarmConfig
from orchestrator.errors import OrchestratorError

__all__ = ["FAULTS", "SoakConfig", "SoakReport", "main", "run_soak"]

_ENDPOINT: Final = "soak-ep"
_KEY: Final = "soak-key-0123456789"
_CLEAN_DONE: Final = 0.95
_RSS_SLACK_BYTES: Final = 24 * 1024 * 1024
_RSS_SLACK_RATIO: Final = 0.15
_FD_SLACK: Final = 8
_QUIET_WITHIN_S: Final = 900.0

Episode = Callable[[EmulatedEndpoint, random.Random], Coroutine[None, None, None]]
"""Arms one fault on the endpoint (and, for a fault that lasts, later lifts it)."""


async def _lasting(arm: Callable[[], None], lift: Callable[[], None], seconds: float) -> None:
    arm()
    await anyio.sleep(seconds)
    lift()


def _route(rng: random.Random) -> str:
    return rng.choice(("run", "status", "stream", "cancel", "health"))


async def _http_5xx(ep: EmulatedEndpoint, rng: random.Random) -> None:
    ep.faults.http_status(_route(rng), rng.choice((500, 502, 503)), times=rng.randint(1, 3))


async def _http_429(ep: EmulatedEndpoint, rng: random.Random) -> None:
    ep.faults.http_status(_route(rng), 429, times=rng.randint(1, 3))


async def _api_latency(ep: EmulatedEndpoint, rng: random.Random) -> None:
    ep.faults.latency(_route(rng), rng.uniform(2.0, 40.0))


async def _api_drop(ep: EmulatedEndpoint, rng: random.Random) -> None:
    ep.faults.drop_connection(_route(rng))


async def _api_malformed(ep: EmulatedEndpoint, rng: random.Random) -> None:
    ep.faults.malformed_body(_route(rng))


async def _no_capacity(ep: EmulatedEndpoint, rng: random.Random) -> None:
    await _lasting(
        lambda: ep.faults.host_capacity(0),
        lambda: ep.faults.host_capacity("config"),
        rng.uniform(20.0, 150.0),
    )


async def _worker_dies(ep: EmulatedEndpoint, rng: random.Random) -> None:
    ep.faults.worker_dies(after_s=rng.uniform(0.0, 60.0))


async def _lease_refused(ep: EmulatedEndpoint, rng: random.Random) -> None:
    ep.faults.lease_refused("no space left on device")


async def _lease_never_streams(ep: EmulatedEndpoint, rng: random.Random) -> None:
    ep.faults.lease_never_streams()


async def _lease_cancelled(ep: EmulatedEndpoint, rng: random.Random) -> None:
    ep.faults.lease_cancelled(after_s=rng.uniform(0.0, 60.0))


async def _invalid_session(ep: EmulatedEndpoint, rng: random.Random) -> None:
    ep.swarm_faults.invalid_session(times=rng.randint(1, 3))


async def _generation_error(ep: EmulatedEndpoint, rng: random.Random) -> None:
    ep.swarm_faults.generation_error("CUDA out of memory")


async def _no_images(ep: EmulatedEndpoint, rng: random.Random) -> None:
    ep.swarm_faults.no_images()


async def _bad_base64(ep: EmulatedEndpoint, rng: random.Random) -> None:
    ep.swarm_faults.bad_base64()


async def _hang(ep: EmulatedEndpoint, rng: random.Random) -> None:
    ep.swarm_faults.hang_generation()


async def _swarm_drop(ep: EmulatedEndpoint, rng: random.Random) -> None:
    ep.swarm_faults.drop_connection()


async def _truncated(ep: EmulatedEndpoint, rng: random.Random) -> None:
    ep.swarm_faults.truncated_json(route=rng.choice(("GetNewSession", "ListBackends")))


async def _swarm_latency(ep: EmulatedEndpoint, rng: random.Random) -> None:
    route = rng.choice(("GetNewSession", "ListBackends", "GenerateText2ImageWS"))
    ep.swarm_faults.latency(route, rng.uniform(1.0, 20.0))


async def _ignore_donotsave(ep: EmulatedEndpoint, rng: random.Random) -> None:
    ep.swarm_faults.ignore_donotsave()


async def _model_load_failure(ep: EmulatedEndpoint, rng: random.Random) -> None:
    ep.swarm_faults.model_load_failure()


async def _slow(ep: EmulatedEndpoint, rng: random.Random) -> None:
    await _lasting(
        lambda: ep.swarm_faults.slow_generation(rng.uniform(2.0, 6.0)),
        lambda: ep.swarm_faults.slow_generation(1.0),
        rng.uniform(10.0, 120.0),
    )


FAULTS: Final[dict[str, Episode]] = {
    "runpod.http_5xx": _http_5xx,
    "runpod.http_429": _http_429,
    "runpod.latency": _api_latency,
    "runpod.drop_connection": _api_drop,
    "runpod.malformed_body": _api_malformed,
    "runpod.no_capacity": _no_capacity,
    "worker.dies": _worker_dies,
    "lease.refused": _lease_refused,
    "lease.never_streams": _lease_never_streams,
    "lease.cancelled": _lease_cancelled,
    "swarm.invalid_session": _invalid_session,
    "swarm.generation_error": _generation_error,
    "swarm.no_images": _no_images,
    "swarm.bad_base64": _bad_base64,
    "swarm.hang_generation": _hang,
    "swarm.drop_connection": _swarm_drop,
    "swarm.truncated_json": _truncated,
    "swarm.latency": _swarm_latency,
    "swarm.ignore_donotsave": _ignore_donotsave,
    "swarm.model_load_failure": _model_load_failure,
    "swarm.slow_generation": _slow,
}
"""Every fault the emulator scripts at run time (``lease.*`` only on v2 endpoints)."""


@dataclass(frozen=True)
class SoakConfig:
    """One soak run.

    Attributes:
        generations: generations in the faulty phase.
        burst: the most generations submitted at once.
        fault_rate: the chance that a fault is armed before a generation.
        clean: generations in the clean burst after the faults.
        seed: the RNG seed (bursts, gaps, faults, the emulator's draws).
        protocol: the endpoint's worker protocol.
        epoch: generations per emulator (a fresh one each epoch; memory is sampled between).
    """

    generations: int = 2000
    burst: int = 12
    fault_rate: float = 0.05
    clean: int = 40
    seed: int = 0
    protocol: Literal["v1", "v2"] = "v2"
    epoch: int = 500


@dataclass
class SoakReport:
    """What a soak run saw.

    Attributes:
        config: the run.
        outcomes: how the faulty phase's generations ended (``Done``, an error type, ``hung``).
        clean_outcomes: the same for the clean burst.
        faults: how many of each fault were armed.
        examples: the first message of each kind of failure.
        rss: resident memory after each epoch (bytes).
        fds: open file descriptors after each epoch.
        open_ledger: workers still billing at the end of an epoch (open ledger entries).
        billed_s: GPU-seconds the emulator billed in all.
        virtual_s: virtual seconds the run covered.
        wall_s: wall-clock seconds it took.
    """

    config: SoakConfig
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    clean_outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    examples: dict[str, str] = field(default_factory=dict)
    rss: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    open_ledger: int = 0
    billed_s: float = 0.0
    virtual_s: float = 0.0
    wall_s: float = 0.0

    @property
    def clean_done(self) -> float:
        """The share of the clean burst that ended Done."""
        total = sum(self.clean_outcomes.values())
        return self.clean_outcomes["Done"] / total if total else 0.0

    def problems(self) -> list[str]:
        """Every way the run fell short (empty: it held)."""
        found = []
        for label, counts in (("faulty", self.outcomes), ("clean", self.clean_outcomes)):
            bad = {k: v for k, v in counts.items() if k == "hung" or k.startswith("untyped:")}
            if bad:
                found.append(f"{label} phase: generations neither Done nor typed: {bad}")
        if self.clean_done < _CLEAN_DONE:
            found.append(f"clean burst {self.clean_done:.0%} Done (< {_CLEAN_DONE:.0%})")
        if self.open_ledger:
            found.append(f"{self.open_ledger} worker(s) still billing at the end")
        rss_first, rss_last = _ends(self.rss)
        if rss_last - rss_first > max(_RSS_SLACK_BYTES, _RSS_SLACK_RATIO * rss_first):
            found.append(f"RSS grew {_mib(rss_first)} -> {_mib(rss_last)}")
        fds_first, fds_last = _ends(self.fds)
        if fds_last - fds_first > _FD_SLACK:
            found.append(f"open fds grew {fds_first} -> {fds_last}")
        return found

    def render(self) -> str:
        """The report as text."""
        config = self.config
        done = self.outcomes["Done"]
        total = sum(self.outcomes.values())
        failures = ", ".join(
            f"{name} {count}" for name, count in self.outcomes.most_common() if name != "Done"
        )
        lines = [
            f"soak: {total} generations ({config.protocol}, bursts of 1-{config.burst}, "
            f"faults {config.fault_rate:.0%}, seed {config.seed}): "
            f"{self.virtual_s / 3600:.1f} h of virtual time in {self.wall_s:.1f} s",
            f"  faults armed: {sum(self.faults.values())}, {len(self.faults)} kinds "
            f"({', '.join(f'{k} {v}' for k, v in sorted(self.faults.items()))})",
            f"  ended Done: {done} ({done / total:.1%}); typed failures: {failures or 'none'}",
            f"  clean burst: {self.clean_done:.1%} Done of {sum(self.clean_outcomes.values())}",
            f"  at the end: {self.open_ledger} worker(s) billing; {self.billed_s:.0f} GPU-s "
            "billed in all",
            f"  RSS by quarter of the run: {', '.join(_mib(q) for q in _quarters(self.rss))}",
            f"  RSS {_mib(_ends(self.rss)[0])} -> {_mib(_ends(self.rss)[1])} "
            f"(max {_mib(max(self.rss, default=0))}); open fds {_ends(self.fds)[0]} -> "
            f"{_ends(self.fds)[1]} (max {max(self.fds, default=0)})",
        ]
        lines.append("  a message of each failure:")
        lines.extend(f"    {kind}: {text[:150]}" for kind, text in sorted(self.examples.items()))
        problems = self.problems()
        lines.append("  verdict: HOLDS" if not problems else "  verdict: FAILS")
        lines.extend(f"    - {problem}" for problem in problems)
        return "\n".join(lines)


def _ends(samples: Sequence[int]) -> tuple[int, int]:
    """Medians of the samples' second quarter and last quarter (the first one warms up)."""
    if not samples:
        return 0, 0
    quarter = max(1, len(samples) // 4)
    head = samples[quarter : 2 * quarter] or samples[:1]
    return int(statistics.median(head)), int(statistics.median(samples[-quarter:]))


def _quarters(samples: Sequence[int]) -> list[int]:
    """The median of each quarter of the samples (how memory moved along the run)."""
    size = max(1, len(samples) // 4)
    return [int(statistics.median(samples[i : i + size])) for i in range(0, len(samples), size)][:4]


def _mib(size: float) -> str:
    return f"{size / 2**20:.1f} MiB"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def _settings(emulator: EmulatorConfig, protocol: str) -> Settings:
    return Settings.load(
        env={},
        overrides={
            "EndpointId": _ENDPOINT,
            "RunPodApiKey": _KEY,
            "RunPodBaseUrl": f"http://{emulator.host}:{emulator.port}/v2",
            "WorkerProtocol": protocol,
            "StateFile": ":memory:",
            "PollIntervalMs": 1000,
            "StartupTimeoutSec": 180,
            "GenerationTimeoutSec": 120,
            "IdleTimeoutSec": 30,
            "MaxWorkers": 4,
            "MaxConcurrent": 12,
        },
    )


def _endpoint(config: SoakConfig) -> EndpointConfig:
    return EndpointConfig(
        protocol=config.protocol,
        max_workers=4,
        cold_start_s=(20.0, 60.0),
        idle_timeout_s=5.0,
        seed=config.seed,
        swarm=SwarmConfig(seconds_per_step=0.5),
    )


async def run_soak(
    config: SoakConfig, *, on_burst: Callable[[int], None] | None = None
) -> SoakReport:
    """Run one soak on the current event loop (a looptime loop for virtual time).

    One orchestrator runs throughout; the emulator is a fresh one (on the same port) for each
    epoch of ``config.epoch`` generations, so that what the emulator keeps (it remembers every
    worker it ever started, for its ledger) does not count as swarmpod's memory: memory and
    descriptors are sampled between epochs, with only swarmpod's state alive.
    """
    rng = random.Random(config.seed)
    report = SoakReport(config)
    kinds = [k for k in FAULTS if config.protocol == "v2" or not k.startswith("lease.")]
    deck: list[str] = []
    wall, started = time.perf_counter(), anyio.current_time()
    emulator_config = EmulatorConfig(
        endpoints={_ENDPOINT: _endpoint(config)}, api_keys=(_KEY,), port=_free_port()
    )
    settings = _settings(emulator_config, config.protocol)
    timeouts = settings.timeouts
    deadline = timeouts.startup + timeouts.generation + timeouts.release + 120.0
    submitted = 0

    async def one(orch: Orchestrator, outcomes: collections.Counter[str]) -> None:
        params = {"prompt": "a soak test", "width": 64, "height": 64, "steps": 8}
        with anyio.move_on_after(deadline) as scope:
            try:
                await orch.generate(params, images=rng.choice((1, 1, 1, 2)))
            except OrchestratorError as exc:
                outcomes[type(exc).__name__] += 1
                report.examples.setdefault(type(exc).__name__, str(exc))
            except Exception as exc:  # the soak is there to find these
                outcomes[f"untyped:{type(exc).__name__}"] += 1
                report.examples.setdefault(f"untyped:{type(exc).__name__}", repr(exc))
            else:
                outcomes["Done"] += 1
        if scope.cancelled_caught:
            outcomes["hung"] += 1

    async def epoch(orch: Orchestrator, generations: int, *, faulty: bool) -> None:
        nonlocal deck, submitted
        outcomes = report.outcomes if faulty else report.clean_outcomes
        async with Emulator(emulator_config) as emulator:
            endpoint = emulator.endpoint(_ENDPOINT)
            async with anyio.create_task_group() as faults:  # lasting ones end on their own
                done = 0
                while done < generations:
                    size = min(rng.randint(1, config.burst), generations - done)
                    async with anyio.create_task_group() as burst:
                        for _ in range(size):
                            if faulty and rng.random() < config.fault_rate:
                                if not deck:  # every kind once, in a new order, then again
                                    deck = rng.sample(kinds, len(kinds))
                                kind = deck.pop()
                                report.faults[kind] += 1
                                faults.start_soon(FAULTS[kind], endpoint, rng)
                            burst.start_soon(one, orch, outcomes)
                            await anyio.sleep(rng.uniform(0.0, 3.0))
                    done += size
                    if faulty:
                        submitted += size
                        if on_burst is not None:
                            on_burst(submitted)
                    await anyio.sleep(rng.choice((0.0, 5.0, 20.0, 45.0, 120.0)))
            await _quiet(orch, endpoint)
            report.open_ledger += sum(1 for entry in endpoint.ledger if entry.open)
            report.billed_s += float(endpoint.ledger_json().get("total_billed_seconds", 0.0))
        _forget_emulator_apps()
        gc.collect()
        report.rss.append(_rss_bytes())
        report.fds.append(_open_fds())

    async with Orchestrator(settings) as orch:
        left = config.generations
        while left > 0:
            await epoch(orch, min(config.epoch, left), faulty=True)
            left -= config.epoch
        await epoch(orch, config.clean, faulty=False)
    report.virtual_s = anyio.current_time() - started
    report.wall_s = time.perf_counter() - wall
    return report


async def _quiet(orch: Orchestrator, endpoint: EmulatedEndpoint) -> None:
    """Wait until the orchestrator holds no worker and the endpoint runs none."""
    with anyio.move_on_after(_QUIET_WITHIN_S):
        while True:
            status = orch.status()
            held = status.warm + status.booting + status.in_flight + status.queued
            if not held and not endpoint.running_workers():
                return
            await anyio.sleep(5.0)


def _forget_emulator_apps() -> None:
    """Drop aiohttp's cache of built middleware chains (``lru_cache(1024)`` keyed by handler):
    it keeps the apps of the epoch's emulated workers (one fake SwarmUI each) alive, which
    would count as swarmpod's memory. The soak runs no service, so nothing of swarmpod's is in
    it."""
    cache = getattr(aiohttp.web_app, "_cached_build_middleware", None)
    if cache is not None and hasattr(cache, "cache_clear"):
        cache.cache_clear()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_soak_blocking(config: SoakConfig) -> SoakReport:
    """Run one soak on a fresh looptime loop (virtual time)."""
    options = {"loop_factory": looptime.new_event_loop}
    report: SoakReport = anyio.run(run_soak, config, backend_options=options)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.soak``: run a soak, print its report; 1 when it fails."""
    defaults = SoakConfig()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--generations", type=int, default=defaults.generations)
    parser.add_argument("--burst", type=int, default=defaults.burst)
    parser.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    parser.add_argument("--clean", type=int, default=defaults.clean)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--protocol", choices=("v1", "v2"), default=defaults.protocol)
    parser.add_argument("--epoch", type=int, default=defaults.epoch)
    parser.add_argument("-v", "--verbose", action="store_true", help="log warnings too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.verbose else logging.CRITICAL)
    config = SoakConfig(
        **{option.name: getattr(args, option.name) for option in fields(SoakConfig)}
    )
    report = run_soak_blocking(config)
    print(report.render())
    return 0 if not report.problems() else 1


if __name__ == "__main__":
    sys.exit(main())
