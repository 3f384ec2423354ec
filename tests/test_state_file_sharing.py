"""Several real processes share one state file: none may lose another's journal entries.

The README's case: ``swarmpod serve`` runs, a ``swarmpod generate`` beside it opens the same
state file and exits. SQLite's WAL mode keeps the live process's entries safe only while its
POSIX locks on the file hold; a raw ``os.open``/``os.close`` of the file beside SQLite's own
descriptor drops them (POSIX locks belong to the process and die with *any* descriptor of the
file), so the exiting process believes it is the last one, checkpoints, and deletes the WAL
that the live process keeps writing to. Its later entries then vanish with it when it crashes.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from orchestrator.workers import LeaseJournal

OPEN_LIKE_THE_ORCHESTRATOR = """
    import sys, anyio
    from orchestrator.secrets import Secret
    from orchestrator.store import SqliteStore
    from orchestrator.workers import GpuBudget, LeaseJournal

    async def open_stores(path):
        store = SqliteStore(path)  # Orchestrator.__aenter__ opens one store for both
        return store, await LeaseJournal.open(store), await GpuBudget.open(store, limit_s=0.0)
"""

LONG_LIVED = (
    OPEN_LIKE_THE_ORCHESTRATOR
    + """
    async def main():
        store, journal, budget = await open_stores(sys.argv[1])
        key = Secret("rpa_state-sharing-test-key")
        await journal.attach(await journal.begin("ep", "v2", key), "lease-before")
        await budget.charge("ann", 1.0)
        print("open", flush=True)
        for line in sys.stdin:  # one lease per line, then it is killed
            await journal.attach(await journal.begin("ep", "v2", key), line.strip())
            print("written", flush=True)

    anyio.run(main)
"""
)

SHORT_LIVED = (
    OPEN_LIKE_THE_ORCHESTRATOR
    + """
    async def main():
        store, journal, budget = await open_stores(sys.argv[1])
        await budget.charge("bob", 1.0)
        await store.close()

    anyio.run(main)
"""
)


def python(script: str, *args: str, umask: int = -1) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        umask=umask,
    )


def read_line(process: subprocess.Popen[str], timeout_s: float = 30.0) -> str:
    """The process's next line of output, or fail after ``timeout_s`` (wall clock)."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while not selector.select(timeout=0.1):
            assert process.poll() is None, f"the process exited with {process.returncode}"
            assert time.monotonic() < deadline, "the process said nothing in time"
    return process.stdout.readline().strip()


@pytest.mark.anyio
async def test_a_process_exiting_beside_a_live_one_leaves_its_later_entries_recoverable(
    tmp_path: Path,
) -> None:
    state = str(tmp_path / "swarmpod.sqlite3")
    with python(LONG_LIVED, state) as serve:
        assert read_line(serve) == "open"
        with python(SHORT_LIVED, state) as cli:
            assert cli.wait(timeout=30) == 0  # a CLI run opens the same file and exits

        assert serve.stdin is not None
        serve.stdin.write("lease-after\n")
        serve.stdin.flush()
        assert read_line(serve) == "written"
        os.kill(serve.pid, signal.SIGKILL)  # mid-work: nothing closed, nothing checkpointed

    survivor = await LeaseJournal.open(state)
    entries = await survivor.open_entries()
    assert [entry.job_id for entry in entries] == ["lease-before", "lease-after"]
    await survivor.close_file()


OPEN_AND_CLOSE = {
    "journal": "(await LeaseJournal.open(sys.argv[1])).close_file()",
    "budget": "(await GpuBudget.open(sys.argv[1], limit_s=0.0)).close_file()",
    "accounts": "(await open_accounts(Path(sys.argv[1])))[0].close()",
    "models": "(await ModelRegistry.open(Path(sys.argv[1]))).close()",
}


@pytest.mark.parametrize("store", sorted(OPEN_AND_CLOSE))
def test_each_store_creates_its_file_private_under_a_permissive_umask(
    tmp_path: Path, store: str
) -> None:
    state = tmp_path / "new" / "swarmpod.sqlite3"
    script = f"""
        import sys, anyio
        from pathlib import Path
        from orchestrator.accounts._database import open_accounts
        from orchestrator.models import ModelRegistry
        from orchestrator.workers import GpuBudget, LeaseJournal

        async def main():
            await {OPEN_AND_CLOSE[store]}

        anyio.run(main)
    """
    with python(script, str(state), umask=0o022) as process:
        assert process.wait(timeout=30) == 0
    assert oct(state.stat().st_mode & 0o777) == "0o600"
