"""What a chart class says, read for drawing: its states (nested) and its transitions.

Transitions between the same two states are merged into one edge labelled with all their
events; a transition between states of different compounds is drawn between their ancestors
that share a region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Edge", "Spec", "regions_of", "specs_of", "transitions_of"]


@dataclass(frozen=True)
class Spec:
    """A state: its id, display name, whether initial or final, and its substates."""

    id: str
    name: str
    initial: bool
    final: bool
    children: tuple[Spec, ...]


@dataclass(frozen=True)
class Edge:
    """A transition (or several merged) from ``source`` to ``target`` on ``events``."""

    source: str
    target: str
    events: tuple[str, ...]

    @property
    def label(self) -> str:
        """The events, as the edge's label."""
        return " / ".join(self.events)


def specs_of(states: Any) -> tuple[Spec, ...]:
    """The specs of a chart's (or a compound's) states."""
    return tuple(
        Spec(str(s.id), str(s.name), bool(s.initial), bool(s.final), specs_of(s.states))
        for s in states
    )


def transitions_of(states: Any) -> list[Edge]:
    """Every transition of these states and their substates, one per target, in order."""
    found: list[Edge] = []
    for state in states:
        for transition in state.transitions:
            events = tuple(dict.fromkeys(str(event) for event in transition.events))
            for target in list(transition.targets) or [transition.source]:
                entering_initial_child = (
                    not events and target.parent is not None and target.parent.id == state.id
                )
                if not entering_initial_child:  # drawn as the initial dot inside the compound
                    found.append(Edge(str(transition.source.id), str(target.id), events))
        found.extend(transitions_of(state.states))
    return found


def regions_of(
    specs: tuple[Spec, ...], transitions: list[Edge]
) -> dict[tuple[str, ...], list[Edge]]:
    """Merged edges per region (the ids of the enclosing compounds), endpoints lifted into it.

    A transition between states of different compounds is drawn between their ancestors that
    share a region; one between a compound and its own substate becomes a self-loop.
    """
    paths: dict[str, tuple[str, ...]] = {}

    def walk(level: tuple[Spec, ...], prefix: tuple[str, ...]) -> None:
        for spec in level:
            paths[spec.id] = (*prefix, spec.id)
            walk(spec.children, paths[spec.id])

    walk(specs, ())
    merged: dict[tuple[tuple[str, ...], str, str], list[str]] = {}
    for edge in transitions:
        source, target = paths[edge.source], paths[edge.target]
        shared = 0
        while shared < min(len(source), len(target)) and source[shared] == target[shared]:
            shared += 1
        depth = min(shared, len(source) - 1, len(target) - 1)
        events = merged.setdefault((source[:depth], source[depth], target[depth]), [])
        events.extend(event for event in edge.events if event not in events)
    regions: dict[tuple[str, ...], list[Edge]] = {}
    for (region, source_id, target_id), events in merged.items():
        regions.setdefault(region, []).append(Edge(source_id, target_id, tuple(events)))
    return regions
