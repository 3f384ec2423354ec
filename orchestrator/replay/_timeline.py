"""Timelines of replayed runs: stable names for RunPod ids, and polls folded into one line."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["Names", "render_timeline"]

_IDS: Final = re.compile(
    r"\b(?:sync-)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-\w+\b"
    r"|\b[0-9a-f]{14}\b"
)


class Names:
    """Replaces RunPod job and worker ids by stable ordinal names, for deterministic timelines.

    >>> names = Names()
    >>> names("worker 0123456789abcd took job 01234567-89ab-cdef-0123-456789abcdef-u1")
    'worker worker-1 took job job-1'
    """

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        def name(match: re.Match[str]) -> str:
            token = match.group(0)
            if token not in self._names:
                prefix = "worker" if len(token) == 14 else "job"
                count = sum(1 for v in self._names.values() if v.startswith(prefix))
                self._names[token] = f"{prefix}-{count + 1}"
            return self._names[token]

        return _IDS.sub(name, text)


def render_timeline(timeline: list[tuple[float, int, str]]) -> list[str]:
    """Timeline lines ``(seconds, who, text)``; ``who`` < 0 is the world (faults, servers).

    A line repeating the one just before it (polls) is folded into one line.
    """
    lines: list[str] = []
    last: dict[int, tuple[str, int, int]] = {}  # who -> (text, line index, repeats)
    for t, index, text in sorted(timeline, key=lambda item: item[0]):
        who = "--" if index < 0 else f"r{index}"
        seen = last.get(index)
        if seen is not None and seen[0] == text and seen[1] == len(lines) - 1:
            repeats = seen[2] + 1
            first = lines[seen[1]].split("  (")[0]
            lines[seen[1]] = f"{first}  (x{repeats + 1}, last at {t:.3f}s)"
            last[index] = (text, seen[1], repeats)
            continue
        lines.append(f"{t:9.3f}s  {who}  {text}")
        last[index] = (text, len(lines) - 1, 0)
    return lines
