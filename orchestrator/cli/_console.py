"""Where the commands talk to the user: a stderr console and progress bars."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from .._events import Stage
from .._progress import ProgressEvent

__all__ = ["ProgressView", "console", "progress_bar"]

console = Console(stderr=True)
"""Messages for the user go to stderr; stdout carries only results (paths, verdicts, tokens)."""


class ProgressView:
    """Renders progress events of one or more generations as rich progress bars."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def track(self, label: str) -> Callable[[ProgressEvent], None]:
        """A new bar labelled ``label``, and the progress callback that moves it."""
        task: TaskID = self._progress.add_task(label, total=1.0, status="queued")

        def on_progress(event: ProgressEvent) -> None:
            status = event.message
            if event.stage is Stage.FAILED:
                status = "failed"  # the command prints why, once, when it ends
            completed: float | None = None
            if event.stage is Stage.GENERATING and event.percent is not None:
                completed = event.percent
            elif event.stage is Stage.DONE:
                completed = 1.0
            self._progress.update(task, status=status, completed=completed)

        return on_progress


def progress_bar() -> Progress:
    """The progress display of ``generate`` and ``demo``."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
