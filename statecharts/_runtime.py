"""The light runtime: a declared chart compiled once per class, run by small instances.

A chart is declared with python-statemachine (states, events, guards, actions: the picture and
the truth). Building a python-statemachine instance resolves every callback of every state and
transition for that instance (about 50 KiB and half a millisecond each); swarmpod runs one chart
per generation and per worker, thousands at once. So each declared class is compiled once into
a :class:`ChartTable` — for every (active state, event), the transitions to try in order, with
their guards, their actions, and the states they exit and enter — and every :class:`Chart`
instance shares its class's table and keeps only its active state and its listeners.

The semantics are python-statemachine's, for what swarmpod's charts use: a transition is looked
up from the innermost active state outwards; the first one whose guards all hold is taken; the
states it leaves are exited innermost first (``on_exit_state``), the event's action runs
(``on_<event>`` of the declaration, with the keyword arguments it accepts), the states it enters
are entered outermost first (``on_enter_state``), a compound state entering its initial child.
An event no active state allows raises :class:`TransitionNotAllowed`. A test walks every chart
both ways and finds the two runtimes agree on every (state, event).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from statemachine import State, StateMachine
from statemachine.exceptions import TransitionNotAllowed

__all__ = ["Chart", "ChartTable"]

_NO_ARGUMENTS: Final[Mapping[str, Any]] = {}


@dataclass(frozen=True, slots=True)
class _Call:
    """A guard or action of the declaration, with the keyword arguments it accepts."""

    function: Callable[..., Any]
    accepts: frozenset[str] | None  # None: any (**kwargs)

    @classmethod
    def of(cls, function: Callable[..., Any]) -> _Call:
        parameters = list(inspect.signature(function).parameters.values())[1:]  # after self
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return cls(function, None)
        return cls(function, frozenset(p.name for p in parameters))

    def __call__(self, chart: Chart, arguments: Mapping[str, Any]) -> Any:
        if not arguments:
            return self.function(chart)
        if self.accepts is not None:
            arguments = {k: v for k, v in arguments.items() if k in self.accepts}
        return self.function(chart, **arguments)


@dataclass(frozen=True, slots=True)
class _Step:
    """One transition as taken from one active state: guards, action, exits and entries."""

    guards: tuple[_Call, ...]
    action: _Call | None
    exits: tuple[State, ...]  # innermost first
    entries: tuple[State, ...]  # outermost first, down to the leaf
    leaf: State


class ChartTable:
    """A declared chart class compiled once: what each event does from each active state.

    >>> from statecharts.generation import GenerationStates
    >>> table = ChartTable.of(GenerationStates)
    >>> table.initial.id, sorted(table.events)[:3]
    ('idle', ['accepted', 'cancel', 'error'])
    """

    _compiled: ClassVar[dict[type[StateMachine], ChartTable]] = {}

    def __init__(self, declared: type[StateMachine]) -> None:
        self.declared = declared
        self.states: dict[str, State] = {state.id: state for state in declared.states_map.values()}
        self.events: frozenset[str] = frozenset(
            str(event.id)
            for state in self.states.values()
            for t in state.transitions
            for event in t.events
        )
        top = declared.initial_state
        assert top is not None, "a chart has an initial state"
        self.initial: State = _descend(top)
        self.initial_entries: tuple[State, ...] = _chain(self.initial)
        self._steps: dict[tuple[str, str], tuple[_Step, ...]] = {}
        for leaf in self.states.values():
            if _children(leaf):
                continue  # only leaves are ever the innermost active state
            for event in self.events:
                steps = tuple(self._steps_from(leaf, event))
                if steps:
                    self._steps[(leaf.id, event)] = steps

    @classmethod
    def of(cls, declared: type[StateMachine]) -> ChartTable:
        """The compiled table of ``declared`` (compiled on first use, then shared)."""
        table = cls._compiled.get(declared)
        if table is None:
            table = cls._compiled[declared] = cls(declared)
        return table

    def steps(self, leaf: State, event: str) -> tuple[_Step, ...]:
        """The transitions ``event`` may take from ``leaf``, in the order they are tried."""
        return self._steps.get((leaf.id, event), ())

    def _steps_from(self, leaf: State, event: str) -> Iterable[_Step]:
        for source in _chain(leaf)[::-1]:  # innermost first, then its ancestors
            for transition in source.transitions:
                if event not in {str(e.id) for e in transition.events}:
                    continue
                target = transition.target
                assert target is not None, "swarmpod's charts have no targetless transitions"
                guards = tuple(
                    _Call.of(getattr(self.declared, str(g))) for g in _guards(transition)
                )
                action = getattr(self.declared, f"on_{event}", None)
                exits, entries = _path(leaf, source, target)
                yield _Step(
                    guards=guards,
                    action=_Call.of(action) if callable(action) else None,
                    exits=exits,
                    entries=entries,
                    leaf=entries[-1] if entries else leaf,
                )


class Chart:
    """One running chart: its class's compiled table, its active state and its listeners.

    Subclasses name their declaration in ``declared``; the declaration's guards and actions
    run with the instance as ``self`` (so attributes they set live on the instance).
    Listeners get ``on_enter_state(state, event)`` and ``on_exit_state(state)``.
    """

    declared: ClassVar[type[StateMachine]]
    states: ClassVar[Any]
    """The declaration's states (python-statemachine ``State`` objects)."""
    events: ClassVar[Any]
    """The declaration's events."""
    _table: ChartTable

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = cls.__dict__.get("declared")
        if declared is not None:
            cls.states = declared.states
            cls.events = declared.events

    _leaf: State
    _listeners: list[Any]

    def __init__(self, listeners: Iterable[Any] = ()) -> None:
        self._table = ChartTable.of(self.declared)
        self._listeners = list(listeners)
        self._leaf = self._table.initial
        for state in self._table.initial_entries:
            self._notify_entry(state, "__initial__")

    def add_listener(self, listener: Any) -> None:
        """Tell ``listener`` of every state entered and left from now on."""
        self._listeners.append(listener)

    def send(self, event: str, **arguments: Any) -> None:
        """Take the transition ``event`` allows from the active state.

        Raises:
            TransitionNotAllowed: no active state allows ``event`` (or no guard holds).
        """
        for step in self._table.steps(self._leaf, event):
            if all(guard(self, arguments or _NO_ARGUMENTS) for guard in step.guards):
                self._take(step, event, arguments)
                return
        raise TransitionNotAllowed(
            self._table.declared.__dict__.get(event), set(self.configuration)
        )

    def allows(self, event: str) -> bool:
        """Whether ``event`` has a transition from the active state (guards not evaluated)."""
        return bool(self._table.steps(self._leaf, event))

    @property
    def state(self) -> State:
        """The innermost active state."""
        return self._leaf

    @property
    def state_id(self) -> str:
        """The id of the innermost active state, e.g. ``"busy"``."""
        return str(self._leaf.id)

    @property
    def state_name(self) -> str:
        """The display name of the innermost active state, e.g. ``"Busy"``."""
        return str(self._leaf.name)

    @property
    def configuration(self) -> list[State]:
        """Every active state, outermost first."""
        return list(_chain(self._leaf))

    def is_in(self, state_id: str) -> bool:
        """Whether ``state_id`` is active (the innermost state or one of its parents)."""
        state: State | None = self._leaf
        while state is not None:
            if state.id == state_id:
                return True
            state = state.parent
        return False

    @property
    def is_terminated(self) -> bool:
        """Whether a final state was reached."""
        return bool(self._leaf.final)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(state={self.state_id!r})"

    def _take(self, step: _Step, event: str, arguments: Mapping[str, Any]) -> None:
        for state in step.exits:
            for listener in self._listeners:
                listener.on_exit_state(state)
        if step.action is not None:
            step.action(self, arguments)
        self._leaf = step.leaf
        for state in step.entries:
            self._notify_entry(state, event)

    def _notify_entry(self, state: State, event: str) -> None:
        for listener in self._listeners:
            listener.on_enter_state(state, event)


def _children(state: State) -> list[State]:
    return list(state.states)


def _descend(state: State) -> State:
    """``state``, or its initial leaf when it is compound."""
    while _children(state):
        state = next(child for child in _children(state) if child.initial)
    return state


def _chain(state: State) -> tuple[State, ...]:
    """``state`` and its ancestors, outermost first."""
    chain = [state]
    while chain[-1].parent is not None:
        chain.append(chain[-1].parent)
    return tuple(reversed(chain))


def _guards(transition: Any) -> list[str]:
    return [str(spec) for spec in transition.cond]


def _path(leaf: State, source: State, target: State) -> tuple[tuple[State, ...], tuple[State, ...]]:
    """The states exited (innermost first) and entered (outermost first) when a transition
    declared on ``source`` (``leaf`` or an ancestor of it) goes to ``target``."""
    source_chain = _chain(source)
    target_chain = _chain(target)
    common = 0
    while (
        common < min(len(source_chain), len(target_chain)) - 1
        and source_chain[common] is target_chain[common]
        and target_chain[common] is not target
        and source_chain[common] is not source
    ):
        common += 1
    leaf_chain = _chain(leaf)
    exits = tuple(reversed(leaf_chain[common:]))
    entries = target_chain[common:] + _chain(_descend(target))[len(target_chain) :]
    return exits, entries
