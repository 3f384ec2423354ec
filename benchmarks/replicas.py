"""Several ``swarmpod serve`` replicas on one PostgreSQL, sharing one warm pool: real processes.

``python -m benchmarks.replicas`` (part of ``make bench``) runs one trace of generations
against an emulated endpoint (``MaxWorkers = 4``), spread round-robin over 1, 2 and 3 replicas
on one PostgreSQL, plus the same trace through one replica on SQLite (the one-process pool),
and prints, side by side: generations per second, p50 and p95 added latency (time to result
minus the generation itself), GPU-seconds billed (the emulator's ledger), the most workers up
at once (the ledger), seats one replica took on a worker another replica leased, and the
ratios to one replica. Then the same trace on three replicas with one of them killed
(SIGKILL) mid-burst: its callers' errors, the others' successes, how long until its workers
were adopted or released (heartbeat interval 2 s), cancels per lease.

The test suite runs a small version (``tests/test_replicas.py``). Everything runs on the real
clock (processes cannot share a virtual one): emulated times are kept short.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import anyio
import psycopg
from anyio.abc import Process
from cryptography.fernet import Fernet

from benchmarks._pg_server import PostgresServer
from orchestrator.emulator import EmulatedEndpoint, Emulator, EmulatorConfig, EndpointConfig
from orchestrator.emulator.swarm import SwarmConfig
from orchestrator.store import DatabaseUrl

__all__ = ["Trace", "TraceOutcome", "bursts", "main", "run_trace", "serve_url"]

ENDPOINT: Final = "ep"
KEY: Final = "replica-bench-key-0123456789"
MAX_WORKERS: Final = 4
_GPU_RUNS: Final = 3
STEPS: Final = 2
SECONDS_PER_STEP: Final = 0.05
GENERATION_S: Final = STEPS * SECONDS_PER_STEP
IDLE_WINDOW_S: Final = 2.0
ENDPOINT_IDLE_S: Final = 1.0
COLD_START_S: Final = 1.0


@dataclass(frozen=True)
class Trace:
    """When each generation is sent (seconds from the start).

    Attributes:
        arrivals: one offset per generation, in order; generation ``i`` goes to replica
            ``i % replicas``.
    """

    arrivals: tuple[float, ...]


def bursts(count: int, size: int, gap_s: float) -> Trace:
    """``count`` bursts of ``size`` generations, ``gap_s`` apart (within a burst: at once)."""
    return Trace(tuple(b * gap_s for b in range(count) for _ in range(size)))


@dataclass
class Sent:
    """One generation as its caller saw it."""

    replica: int
    sent_at: float
    latency_s: float | None = None
    error: str | None = None


@dataclass
class TraceOutcome:
    """What one run of a trace showed.

    Attributes:
        replicas: how many replicas served it.
        database: ``postgresql`` or ``sqlite``.
        sent: every generation as its caller saw it.
        wall_s: from the first send to the last answer.
        billed_s: GPU-seconds the emulator billed (every worker, idle tails included).
        workers: workers the emulator started.
        most_at_once: the most workers up at the same instant (the ledger).
        shared_seats: seats seen taken by a replica on a worker another replica owns.
        cancels: ``/cancel`` calls per lease job (each must be at most 1).
        killed: the replica killed (index), if any.
        takeover_s: seconds from the kill until no worker was owned by the killed replica.
        late_stops_s: per worker, how long it billed past the end of its idle window after the
            last generation (0 when it stopped in time).
        last_answer_at: loop time of the last answer.
    """

    replicas: int
    database: str
    sent: list[Sent] = field(default_factory=list)
    wall_s: float = 0.0
    billed_s: int = 0
    workers: int = 0
    most_at_once: int = 0
    shared_seats: int = 0
    cancels: dict[str, int] = field(default_factory=dict)
    killed: int | None = None
    takeover_s: float | None = None
    late_stops_s: list[float] = field(default_factory=list)
    last_answer_at: float = 0.0

    def ok(self, replica: int | None = None) -> list[Sent]:
        """The generations that succeeded (at one replica, or all)."""
        return [
            s for s in self.sent if s.error is None and (replica is None or s.replica == replica)
        ]

    def failed(self, replica: int | None = None) -> list[Sent]:
        """The generations that failed (at one replica, or all)."""
        return [
            s
            for s in self.sent
            if s.error is not None and (replica is None or s.replica == replica)
        ]

    @property
    def per_second(self) -> float:
        """Generations that succeeded per second of the run."""
        return len(self.ok()) / self.wall_s if self.wall_s else 0.0

    def added_latency_s(self, quantile: float) -> float:
        """Time to result minus the generation itself, at ``quantile`` (0.5 = p50)."""
        added = sorted((s.latency_s or 0.0) - GENERATION_S for s in self.ok())
        if not added:
            return float("nan")
        return added[min(len(added) - 1, int(quantile * len(added)))]


def endpoint_config() -> EndpointConfig:
    """The emulated endpoint: leases, short cold starts, room for more than MaxWorkers (so
    only swarmpod's own cap keeps the count)."""
    return EndpointConfig(
        protocol="v2",
        cold_start_s=COLD_START_S,
        idle_timeout_s=ENDPOINT_IDLE_S,
        queue_delay_s=0.0,
        max_workers=4 * MAX_WORKERS,
        swarm=SwarmConfig(seconds_per_step=SECONDS_PER_STEP),
    )


def serve_toml(path: Path, state_dir: Path, base_url: str) -> None:
    """The configuration every replica runs."""
    path.write_text(
        f'[service]\nhost = "127.0.0.1"\nport = 0\nstate_dir = "{state_dir}"\n\n'
        f'[backends.main]\nEndpointId = "{ENDPOINT}"\nRunPodApiKey = "{KEY}"\n'
        f'RunPodBaseUrl = "{base_url}"\nWorkerProtocol = "v2"\nMaxWorkers = {MAX_WORKERS}\n'
        f"MaxConcurrent = 1000\nIdleTimeoutSec = {IDLE_WINDOW_S}\nPollIntervalMs = 200\n"
        f"EndpointIdleTimeoutSec = {ENDPOINT_IDLE_S}\nEndpointQueueDelaySec = 0\n"
        "StartupTimeoutSec = 60\n"
    )


def environment(
    database: DatabaseUrl | None, master_key: str, heartbeat_s: float
) -> dict[str, str]:
    """A replica's environment: the shared database and master key, its heartbeat."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARMPOD_", "RUNPOD_"))}
    env.update(
        SWARMPOD_MASTER_KEY=master_key,
        SWARMPOD_REPLICA_HEARTBEAT_SEC=str(heartbeat_s),
        COLUMNS="200",
    )
    if database is not None:
        env["SWARMPOD_DATABASE_URL"] = database.reveal()
    return env


@dataclass
class Replica:
    """One running ``swarmpod serve``."""

    process: Process
    url: str
    log: Path
    session_id: str = ""


@contextlib.asynccontextmanager
async def serving(config: Path, log: Path, env: dict[str, str]) -> AsyncIterator[Replica]:
    """``swarmpod serve --config`` until the block ends (SIGTERM, then SIGKILL)."""
    command = [sys.executable, "-m", "orchestrator.cli", "-v", "serve", "--config", str(config)]
    with log.open("wb") as output:
        process = await anyio.open_process(command, env=env, stdout=output, stderr=output)
    async with process:
        try:
            yield Replica(process, await serve_url(process, log), log)
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                    with anyio.move_on_after(20):
                        await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()


async def serve_url(process: Process, log: Path) -> str:
    """The URL a ``swarmpod serve`` process says it serves (it is written to ``log``)."""
    output = anyio.Path(log)
    with anyio.fail_after(60):
        while process.returncode is None:
            found = re.search(r"swarmpod serves (http://\S+)", await output.read_text())
            if found:
                return found.group(1)
            await anyio.sleep(0.05)
    raise RuntimeError(f"swarmpod serve exited: {await output.read_text()}")


async def swarmpod(argv: Sequence[str], env: dict[str, str]) -> str:
    """Run one ``swarmpod`` command to its end; its standard output."""
    done = await anyio.run_process(
        [sys.executable, "-m", "orchestrator.cli", *argv], env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"swarmpod {' '.join(argv)}: {done.stderr.decode()}")
    return done.stdout.decode()


async def run_trace(
    trace: Trace,
    *,
    replicas: int,
    workdir: Path,
    server: PostgresServer | None,
    kill_after: int | None = None,
    heartbeat_s: float = 2.0,
) -> TraceOutcome:
    """Serve ``trace`` with ``replicas`` replicas (on a fresh PostgreSQL database of
    ``server``, or on SQLite when None: one replica only), and measure it.

    Args:
        trace: the generations to send.
        replicas: how many ``swarmpod serve`` processes.
        workdir: where configurations, state and logs go.
        server: the PostgreSQL server (a fresh database is made), or None for SQLite.
        kill_after: SIGKILL the replica owning the most workers once this many generations
            were answered.
        heartbeat_s: the replicas' heartbeat interval.
    """
    database = server.new_database() if server is not None else None
    outcome = TraceOutcome(replicas, "postgresql" if database else "sqlite")
    master = Fernet.generate_key().decode()
    env = environment(database, master, heartbeat_s)
    config = EmulatorConfig(endpoints={ENDPOINT: endpoint_config()}, api_keys=(KEY,))
    try:
        async with Emulator(config) as emulator:
            endpoint = emulator.endpoint(ENDPOINT)
            cancels = _count_cancels(endpoint, outcome.cancels)
            toml = workdir / "serve.toml"
            serve_toml(toml, workdir / "state", emulator.base_url)
            await swarmpod(
                ["users", "--config", str(toml), "add", "bench", "--role", "poweruser"], env
            )
            token = (
                await swarmpod(["users", "--config", str(toml), "token", "bench"], env)
            ).strip()
            async with contextlib.AsyncExitStack() as stack:
                running = [
                    await stack.enter_async_context(
                        serving(toml, workdir / f"serve-{index}.log", env)
                    )
                    for index in range(replicas)
                ]
                await _drive(trace, running, token, outcome, database, kill_after, heartbeat_s)
            endpoint.cancel = cancels.original  # type: ignore[method-assign]
            await _until_all_stopped(endpoint)
            _read_ledger(endpoint, outcome)
    finally:
        if server is not None and database is not None:
            server.drop_database(database)
    return outcome


@dataclass
class _Counting:
    original: Any


def _count_cancels(endpoint: EmulatedEndpoint, counts: dict[str, int]) -> _Counting:
    """Count each lease job's ``/cancel`` at the emulator (none may be cancelled twice)."""
    original = endpoint.cancel

    def cancel(job: Any) -> None:
        if job.input.get("action") == "lease":
            counts[job.id] = counts.get(job.id, 0) + 1
        original(job)

    endpoint.cancel = cancel  # type: ignore[method-assign]
    return _Counting(original)


async def _drive(
    trace: Trace,
    running: list[Replica],
    token: str,
    outcome: TraceOutcome,
    database: DatabaseUrl | None,
    kill_after: int | None,
    heartbeat_s: float,
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout) as http:
        for replica in running:
            async with http.post(f"{replica.url}/API/GetNewSession", json={}) as response:
                replica.session_id = (await response.json())["session_id"]
        dead: set[int] = set()
        answered = anyio.Event()
        started = anyio.current_time()

        async def send(index: int, at: float) -> None:
            await anyio.sleep(max(0.0, started + at - anyio.current_time()))
            target = index % len(running)
            sent = Sent(target, anyio.current_time() - started)
            outcome.sent.append(sent)
            replica = running[target]
            body = {
                "session_id": replica.session_id,
                "images": 1,
                "prompt": f"generation {index}",
                "width": 64,
                "height": 64,
                "steps": STEPS,
                "seed": index,
            }
            began = anyio.current_time()
            try:
                async with http.post(f"{replica.url}/API/GenerateText2Image", json=body) as answer:
                    reply = await answer.json(content_type=None)
                error = reply.get("error") if answer.status == 200 else f"HTTP {answer.status}"
                if error is None and not reply.get("images"):
                    error = "no images"
                sent.error = None if error is None else str(error)
            except (aiohttp.ClientError, TimeoutError) as exc:
                sent.error = f"{type(exc).__name__}: {exc}"
            sent.latency_s = anyio.current_time() - began
            outcome.last_answer_at = max(outcome.last_answer_at, anyio.current_time())
            if kill_after is not None and len(outcome.ok()) + len(outcome.failed()) >= kill_after:
                answered.set()

        async with anyio.create_task_group() as tasks:
            if database is not None:
                tasks.start_soon(_watch_seats, database, outcome, tasks.cancel_scope)
            if kill_after is not None and database is not None:
                tasks.start_soon(
                    _kill_busiest, running, database, outcome, answered, dead, heartbeat_s
                )
            async with anyio.create_task_group() as senders:
                for index, at in enumerate(trace.arrivals):
                    senders.start_soon(send, index, at)
            outcome.wall_s = anyio.current_time() - started
            if kill_after is not None and database is not None:
                with anyio.fail_after(4 * heartbeat_s + 30):
                    while outcome.takeover_s is None:  # noqa: ASYNC110
                        await anyio.sleep(0.05)
            tasks.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def _connected(database: DatabaseUrl) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection of the harness's own, closed even when its task is cancelled mid-query."""
    db = await psycopg.AsyncConnection.connect(database.reveal(), autocommit=True)
    try:
        yield db
    finally:
        with anyio.CancelScope(shield=True):
            await db.close()


async def _watch_seats(
    database: DatabaseUrl, outcome: TraceOutcome, scope: anyio.CancelScope
) -> None:
    """Sample the shared pool: seats a replica holds on a worker another replica owns."""
    seen: set[int] = set()
    async with _connected(database) as db:
        while True:
            with contextlib.suppress(psycopg.Error):
                cursor = await db.execute(
                    "SELECT s.id FROM pool_seats s JOIN pool_workers w ON w.id = s.worker "
                    "WHERE s.replica <> w.owner"
                )
                seen.update(int(row[0]) for row in await cursor.fetchall())
                outcome.shared_seats = len(seen)
            await anyio.sleep(0.02)


async def _kill_busiest(
    running: list[Replica],
    database: DatabaseUrl,
    outcome: TraceOutcome,
    answered: anyio.Event,
    dead: set[int],
    heartbeat_s: float,
) -> None:
    """SIGKILL the replica that owns the most workers, then time the takeover."""
    await answered.wait()
    async with _connected(database) as db:
        cursor = await db.execute(
            "SELECT owner, count(*) FROM pool_workers GROUP BY owner ORDER BY count(*) DESC"
        )
        owners = [str(row[0]) for row in await cursor.fetchall()]
        pids = {replica.process.pid: index for index, replica in enumerate(running)}
        victim = next(
            (
                pids[int(owner.split(":")[1])]
                for owner in owners
                if int(owner.split(":")[1]) in pids
            ),
            0,
        )
        victim_pid = running[victim].process.pid
        running[victim].process.kill()
        killed_at = anyio.current_time()
        outcome.killed = victim
        dead.add(victim)
        while True:
            cursor = await db.execute(
                "SELECT count(*) FROM pool_workers WHERE split_part(owner, ':', 2) = %s",
                (str(victim_pid),),
            )
            row = await cursor.fetchone()
            if row is not None and int(row[0]) == 0:
                outcome.takeover_s = anyio.current_time() - killed_at
                return
            await anyio.sleep(0.05)


async def _until_all_stopped(endpoint: EmulatedEndpoint) -> None:
    with anyio.fail_after(60):
        while endpoint.running_workers():  # noqa: ASYNC110
            await anyio.sleep(0.1)


def _read_ledger(endpoint: EmulatedEndpoint, outcome: TraceOutcome) -> None:
    ledger = endpoint.ledger
    outcome.billed_s = sum(entry.billed_seconds for entry in ledger)
    outcome.workers = len(ledger)
    events = sorted(
        [(entry.started_at, 1) for entry in ledger]
        + [(entry.stopped_at, -1) for entry in ledger if entry.stopped_at is not None]
    )
    level = 0
    for _, step in events:
        level += step
        outcome.most_at_once = max(outcome.most_at_once, level)
    deadline = outcome.last_answer_at + IDLE_WINDOW_S + ENDPOINT_IDLE_S
    outcome.late_stops_s = [
        max(0.0, (entry.stopped_at if entry.stopped_at is not None else math.inf) - deadline)
        for entry in ledger
    ]


def _row(name: str, outcome: TraceOutcome, base: TraceOutcome) -> str:
    per_s = outcome.per_second
    p50 = outcome.added_latency_s(0.5)
    p50_ratio = p50 / base.added_latency_s(0.5)
    return (
        f"| {name} | {len(outcome.ok())}/{len(outcome.sent)} | {per_s:.1f} "
        f"({per_s / base.per_second:.2f}) | {p50 * 1000:.0f} ({p50_ratio:.2f})"
        f" | {outcome.added_latency_s(0.95) * 1000:.0f} | {outcome.billed_s} "
        f"({outcome.billed_s / base.billed_s:.2f}) | {outcome.most_at_once} | {outcome.workers} "
        f"| {outcome.shared_seats} |"
    )


async def _bench(size: int, gap_s: float, bursts_n: int) -> int:
    trace = bursts(bursts_n, size, gap_s)
    with tempfile.TemporaryDirectory(prefix="swarmpod-replicas-") as tmp:
        server = PostgresServer()
        try:
            runs: dict[str, TraceOutcome] = {}
            for name, replicas, pg in (
                ("1 replica, SQLite", 1, False),
                ("1 replica, PostgreSQL", 1, True),
                ("2 replicas, PostgreSQL", 2, True),
                ("3 replicas, PostgreSQL", 3, True),
            ):
                workdir = Path(tmp) / name.replace(" ", "_").replace(",", "")
                workdir.mkdir()
                runs[name] = await run_trace(
                    trace, replicas=replicas, workdir=workdir, server=server if pg else None
                )
            # GPU-s moves by a worker's window from run to run (real time: a release decided
            # a moment earlier or later), so the goal compares medians of three runs each
            repeats: dict[str, list[TraceOutcome]] = {
                "1 replica, SQLite": [runs["1 replica, SQLite"]],
                "3 replicas, PostgreSQL": [runs["3 replicas, PostgreSQL"]],
            }
            for again in range(1, _GPU_RUNS):
                for name, replicas, pg in (
                    ("1 replica, SQLite", 1, False),
                    ("3 replicas, PostgreSQL", 3, True),
                ):
                    workdir = Path(tmp) / f"again{again}_{replicas}"
                    workdir.mkdir()
                    repeats[name].append(
                        await run_trace(
                            trace, replicas=replicas, workdir=workdir, server=server if pg else None
                        )
                    )
            saturated: dict[str, TraceOutcome] = {}
            flood = bursts(1, size * bursts_n, 0.0)
            for replicas in (1, 2, 3):
                name = f"{replicas} replica{'s' if replicas > 1 else ''}, PostgreSQL, at once"
                workdir = Path(tmp) / f"flood{replicas}"
                workdir.mkdir()
                saturated[name] = await run_trace(
                    flood, replicas=replicas, workdir=workdir, server=server
                )
            workdir = Path(tmp) / "kill"
            workdir.mkdir()
            killed = await run_trace(
                trace,
                replicas=3,
                workdir=workdir,
                server=server,
                kill_after=len(trace.arrivals) // 3,
            )
        finally:
            server.stop()
    base = runs["1 replica, PostgreSQL"]
    print(
        f"Replicas sharing one warm pool: {len(trace.arrivals)} generations in {bursts_n} bursts "
        f"of {size}, {gap_s:g} s apart, round-robin; MaxWorkers {MAX_WORKERS}; generation "
        f"{GENERATION_S * 1000:.0f} ms; cold start {COLD_START_S:g} s; idle window "
        f"{IDLE_WINDOW_S:g} s. Ratios to 1 replica on PostgreSQL, same run."
    )
    print()
    print(
        "| run | done | gen/s (ratio) | +p50 ms (ratio) | +p95 ms | GPU-s (ratio) | "
        "most workers at once | workers | seats on another's worker |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, outcome in runs.items():
        print(_row(name, outcome, base))
    flood_base = saturated["1 replica, PostgreSQL, at once"]
    for name, outcome in saturated.items():
        print(_row(name, outcome, flood_base))
    print()
    print(
        f"(the 'at once' rows: the {size * bursts_n} generations sent together, the pool "
        "saturated; their ratios are to 1 replica at once)"
    )
    print()
    three = runs["3 replicas, PostgreSQL"]
    billed = {name: sorted(o.billed_s for o in outcomes) for name, outcomes in repeats.items()}
    medians = {name: statistics.median(values) for name, values in billed.items()}
    gpu_ratio = medians["3 replicas, PostgreSQL"] / medians["1 replica, SQLite"]
    print(
        f"GPU-s over {_GPU_RUNS} runs each (sorted; the goal compares the medians): "
        + "; ".join(
            f"{name} {' / '.join(f'{v:g}' for v in values)} (median {medians[name]:g})"
            for name, values in billed.items()
        )
    )
    print()
    goals = [
        (
            "every generation succeeds",
            all(
                len(o.ok()) == len(o.sent)
                for o in (
                    *runs.values(),
                    *saturated.values(),
                    *(o for outcomes in repeats.values() for o in outcomes),
                )
            ),
        ),
        (
            "never more than MaxWorkers up",
            all(o.most_at_once <= MAX_WORKERS for o in runs.values()),
        ),
        ("warm workers shared across replicas", three.shared_seats > 0),
        (
            f"GPU-s within 10 % of one replica alone, medians (3 replicas: {gpu_ratio:.3f}x)",
            abs(gpu_ratio - 1) <= 0.10,
        ),
    ]
    victim = killed.killed
    others_ok = all(s.error is None for s in killed.sent if s.replica != victim)
    print(
        f"SIGKILL of replica {victim} after {len(trace.arrivals) // 3} answers: its callers "
        f"{len(killed.failed(victim))} failed / {len(killed.ok(victim))} succeeded; the others "
        f"{len(killed.ok()) - len(killed.ok(victim))} succeeded, "
        f"{len(killed.failed()) - len(killed.failed(victim))} failed; its workers taken over "
        f"after {killed.takeover_s:.2f} s (heartbeat 2 s); most cancels of one lease "
        f"{max(killed.cancels.values(), default=0)}; latest stop past its idle window "
        f"{max(killed.late_stops_s, default=0.0):.2f} s"
    )
    goals += [
        ("the others' generations all succeed after a SIGKILL", others_ok),
        ("its workers taken over within 2 x the heartbeat", (killed.takeover_s or 99) <= 4.0),
        ("no lease cancelled twice", max(killed.cancels.values(), default=0) <= 1),
    ]
    print()
    for goal, met in goals:
        print(f"- {goal}: {'met' if met else 'MISSED'}")
    return 0 if all(met for _, met in goals) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.replicas [--size N] [--bursts N] [--gap S]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=30, help="generations per burst")
    parser.add_argument("--bursts", type=int, default=10, help="bursts")
    parser.add_argument("--gap", type=float, default=1.5, help="seconds between bursts")
    args = parser.parse_args(argv)
    started = time.monotonic()
    status = anyio.run(_bench, args.size, args.gap, args.bursts)
    print(f"\n({time.monotonic() - started:.0f} s)")
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
