"""A hosted worker's process: the user's own RunPod handler, run the way RunPod runs it.

Each worker of an endpoint with ``EndpointConfig.handler_command`` runs that command as an OS
process with the environment RunPod gives a serverless worker (runpod-api.md §4.6, §6.3): its
``RUNPOD_POD_ID``, ``RUNPOD_ENDPOINT_ID``, a per-worker ``RUNPOD_AI_API_KEY`` and the
``RUNPOD_WEBHOOK_*`` URLs of the emulator's worker routes. An unmodified
``runpod.serverless.start`` loop then takes its jobs from the emulator.

The process runs in a session (and process group) of its own, so stopping it reaches the
children it forked too (the SDK pings from a separate process): SIGTERM to the group, SIGKILL
after a grace, and a final SIGKILL for whatever of the group is left.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Final

import anyio
from anyio.abc import ByteReceiveStream, Process, TaskGroup

from ._config import HANDLER_PROTOCOL_ENV

__all__ = ["EMULATED_GPU", "WorkerProcess", "worker_env"]

_log = logging.getLogger("swarmpod.emulator")

EMULATED_GPU: Final = "EMULATED"
"""The ``?gpu=`` query of the worker URLs (the SDK appends ``&...`` to them)."""

_TAIL_LINES: Final = 20
_MAX_LINE: Final = 4000
_DRAIN_S: Final = 2.0  # how long the output of an ended process may take to arrive


def worker_env(
    *,
    base_url: str,
    endpoint_id: str,
    worker_id: str,
    api_key: str,
    ping_interval_s: float,
    extra: Mapping[str, str],
    swarm_url: str | None,
    inherited: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a hosted worker's process (runpod-api.md §6.3).

    ``inherited`` (default: this process's environment) minus its ``RUNPOD_*`` variables, then
    the CPU-friendly defaults (no GPU and system fitness checks, ``SWARMUI_API_URL`` of the
    worker's fake SwarmUI), then ``extra``, then the protocol variables, which always win.

    >>> env = worker_env(base_url="http://127.0.0.1:8080/v2", endpoint_id="ep",
    ...                  worker_id="w1", api_key="k", ping_interval_s=10, extra={},
    ...                  swarm_url=None, inherited={})
    >>> env["RUNPOD_WEBHOOK_GET_JOB"]
    'http://127.0.0.1:8080/v2/ep/job-take/$ID?gpu=EMULATED'
    >>> env["RUNPOD_WEBHOOK_POST_OUTPUT"]
    'http://127.0.0.1:8080/v2/ep/job-done/$RUNPOD_POD_ID/$ID?gpu=EMULATED'
    >>> env["RUNPOD_PING_INTERVAL"]
    '10000'
    """
    source = os.environ if inherited is None else inherited
    env = {name: value for name, value in source.items() if not name.startswith("RUNPOD_")}
    env["RUNPOD_SKIP_GPU_CHECK"] = "true"
    env["RUNPOD_SKIP_AUTO_SYSTEM_CHECKS"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    if swarm_url is not None:
        env["SWARMUI_API_URL"] = swarm_url
    env.update(extra)
    query = f"?gpu={EMULATED_GPU}"
    routes = f"{base_url}/{endpoint_id}"
    protocol = {
        "RUNPOD_POD_ID": worker_id,
        "RUNPOD_ENDPOINT_ID": endpoint_id,
        "RUNPOD_AI_API_KEY": api_key,
        "RUNPOD_WEBHOOK_GET_JOB": f"{routes}/job-take/$ID{query}",
        "RUNPOD_WEBHOOK_POST_OUTPUT": f"{routes}/job-done/$RUNPOD_POD_ID/$ID{query}",
        "RUNPOD_WEBHOOK_POST_STREAM": f"{routes}/job-stream/$RUNPOD_POD_ID/$ID{query}",
        "RUNPOD_WEBHOOK_PING": f"{routes}/ping/$RUNPOD_POD_ID{query}",
        "RUNPOD_PING_INTERVAL": str(round(ping_interval_s * 1000)),
    }
    assert set(protocol) == HANDLER_PROTOCOL_ENV
    env.update(protocol)
    return env


class WorkerProcess:
    """One run of a hosted worker's command, as an async context manager.

    Entering starts the process; its stdout and stderr go line by line to the
    ``swarmpod.emulator`` log, prefixed with the worker id, and the last lines of each are kept
    for error messages. Leaving stops it (see :meth:`terminate`), whatever happened.

    >>> async def main() -> None:  # doctest: +SKIP
    ...     async with WorkerProcess("w1", ["python", "handler.py"], env=env) as process:
    ...         await process.wait()
    ...     print(process.returncode, process.tail())

    Args:
        worker_id: the worker the process belongs to (log prefix).
        command: the argv to run.
        env: its whole environment (see :func:`worker_env`).
        cwd: its working directory (None = this process's).
        grace_s: how long SIGTERM may take before SIGKILL.
        on_exit: called once the process has ended, whoever ended it.
    """

    def __init__(
        self,
        worker_id: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None = None,
        grace_s: float = 10.0,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self.worker_id = worker_id
        self._command = list(command)
        self._env = dict(env)
        self._cwd = cwd
        self._grace_s = grace_s
        self._on_exit = on_exit
        self._process: Process | None = None
        self._task_group: TaskGroup | None = None
        self._exited = anyio.Event()
        self._drained = anyio.Event()
        self._scopes: list[anyio.CancelScope] = []
        self._stdout: deque[str] = deque(maxlen=_TAIL_LINES)
        self._stderr: deque[str] = deque(maxlen=_TAIL_LINES)

    @property
    def started(self) -> bool:
        """Whether the process was started (entering can fail: no such program, ...)."""
        return self._process is not None

    @property
    def pid(self) -> int:
        """The process id (also the id of its process group)."""
        if self._process is None:
            raise RuntimeError("the worker process has not started")
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """Its exit code once it has ended (negative: killed by that signal), else None."""
        return None if self._process is None else self._process.returncode

    @property
    def exited(self) -> bool:
        """Whether the process has ended."""
        return self._exited.is_set()

    async def wait(self) -> int:
        """Wait until the process has ended; return its exit code."""
        await self._exited.wait()
        code = self.returncode
        assert code is not None
        return code

    def tail(self) -> list[str]:
        """Its last stderr lines, or its last stdout lines when it wrote nothing to stderr."""
        return list(self._stderr or self._stdout)

    async def __aenter__(self) -> WorkerProcess:
        process = await anyio.open_process(
            self._command,
            stdin=subprocess.DEVNULL,
            env=self._env,
            cwd=self._cwd,
            start_new_session=True,
        )
        self._process = process
        _log.info("[Emulator] worker %s: process %d started", self.worker_id, process.pid)
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        task_group.start_soon(self._guarded, self._read_output, process)
        task_group.start_soon(self._guarded, self._wait_exit, process)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        task_group, self._task_group = self._task_group, None
        suppress: bool | None = None
        try:
            await self.terminate()
        finally:
            for scope in self._scopes:
                scope.cancel()
            try:
                if task_group is not None:
                    suppress = await task_group.__aexit__(exc_type, exc, tb)
            finally:
                if self._process is not None:
                    with anyio.CancelScope(shield=True):
                        await self._process.aclose()
        return suppress

    async def terminate(self) -> None:
        """Stop the process: SIGTERM to its group, SIGKILL after the grace.

        A process that has already ended returns at once (its group was killed then).
        """
        process = self._process
        if process is None or self.exited:
            return
        with anyio.CancelScope(shield=True):
            self._signal(signal.SIGTERM)
            with anyio.move_on_after(self._grace_s):
                await self._exited.wait()
            if not self.exited:
                _log.warning(
                    "[Emulator] worker %s: process %d ignored SIGTERM for %g s; killing it",
                    self.worker_id,
                    process.pid,
                    self._grace_s,
                )
                self._signal(signal.SIGKILL)
                await self._exited.wait()

    def _signal(self, signum: int) -> None:
        # the whole group: with a process that has ended, whatever it left behind
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
            os.killpg(self._process.pid, signum)

    async def _guarded(self, watch: Callable[[Process], Awaitable[None]], process: Process) -> None:
        """Run ``watch`` safe from the caller's cancellation: only leaving this context ends it."""
        with anyio.CancelScope(shield=True) as scope:
            self._scopes.append(scope)
            await watch(process)

    async def _wait_exit(self, process: Process) -> None:
        code = await process.wait()
        self._signal(signal.SIGKILL)  # what it left behind (the SDK's ping process)
        with anyio.move_on_after(_DRAIN_S):
            await self._drained.wait()  # so its last lines are in the tail
        _log.info("[Emulator] worker %s: process %d exited (%d)", self.worker_id, process.pid, code)
        self._exited.set()
        if self._on_exit is not None:
            self._on_exit()

    async def _read_output(self, process: Process) -> None:
        try:
            async with anyio.create_task_group() as pumps:
                if process.stdout is not None:
                    pumps.start_soon(self._pump, process.stdout, self._stdout, "|")
                if process.stderr is not None:
                    pumps.start_soon(self._pump, process.stderr, self._stderr, "!")
        finally:
            self._drained.set()

    async def _pump(self, stream: ByteReceiveStream, tail: deque[str], mark: str) -> None:
        pending = b""
        async for chunk in stream:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._emit(line, tail, mark)
            if len(pending) > _MAX_LINE:
                self._emit(pending, tail, mark)
                pending = b""
        if pending:
            self._emit(pending, tail, mark)

    def _emit(self, raw: bytes, tail: deque[str], mark: str) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")[:_MAX_LINE]
        tail.append(line)
        _log.info("[Emulator] worker %s %s %s", self.worker_id, mark, line)
