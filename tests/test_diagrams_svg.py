"""The SVG diagrams: drawn from the chart classes, committed, and legible."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from statemachine import State, StateMachine

from observability.diagrams import svg
from observability.diagrams._files import CHARTS, DIAGRAM_DIR

NS = "{http://www.w3.org/2000/svg}"
Rect = tuple[float, float, float, float]


class LoopChart(StateMachine):
    """A chart with a self-loop and a cycle, which the real charts do not have."""

    off = State("Off", initial=True)
    on = State("On")
    gone = State("Gone", final=True)

    switch_on = off.to(on)
    switch_off = on.to(off)
    ping = on.to.itself()  # type: ignore[no-untyped-call]  # python-statemachine's, untyped
    unplug = on.to(gone)


ALL_CHARTS: dict[str, type[StateMachine]] = {**CHARTS, "loop": LoopChart}


def parse(chart: type) -> ET.Element:
    return ET.fromstring(svg(chart))


def all_states(states: Any) -> Iterator[Any]:
    for state in states:
        yield state
        yield from all_states(state.states)


def expected_edges(chart: Any) -> dict[tuple[str, str], list[str]]:
    """(source id, target id) -> event names, for every transition that has an event."""
    edges: dict[tuple[str, str], list[str]] = {}
    for state in all_states(chart.states):
        for transition in state.transitions:
            events = [str(event) for event in transition.events]
            if events:
                edges.setdefault((transition.source.id, transition.target.id), []).extend(events)
    return edges


def groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{NS}g") if cls in g.get("class", "").split()]


def box(element: ET.Element) -> Rect:
    rect = element.find(f"{NS}rect")
    assert rect is not None
    x, y = float(rect.get("x", 0)), float(rect.get("y", 0))
    return x, y, x + float(rect.get("width", 0)), y + float(rect.get("height", 0))


def overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def inside(inner: Rect, outer: Rect) -> bool:
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and inner[2] <= outer[2]
        and inner[3] <= outer[3]
    )


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_committed_svg_matches_the_chart_class(name: str) -> None:
    committed = (DIAGRAM_DIR / f"{name}.svg").read_text()
    assert committed == svg(CHARTS[name]), "run `make diagrams` and commit the result"


@pytest.mark.parametrize("name", sorted(ALL_CHARTS))
def test_the_svg_is_xml_in_the_svg_namespace_titled_with_the_chart_name(name: str) -> None:
    root = parse(ALL_CHARTS[name])
    assert root.tag == f"{NS}svg"
    title = root.find(f"{NS}title")
    assert title is not None
    assert title.text == ALL_CHARTS[name].__name__
    assert root.get("viewBox", "").startswith("0 0 ")


@pytest.mark.parametrize("name", sorted(ALL_CHARTS))
def test_every_state_name_is_written_exactly_once(name: str) -> None:
    chart = ALL_CHARTS[name]
    texts = [text.text for text in parse(chart).iter(f"{NS}text")]
    for state in all_states(chart.states):
        assert texts.count(state.name) == 1, state.name


def test_the_substates_of_warm_are_drawn_inside_it() -> None:
    states = {g.get("data-state"): g for g in groups(parse(CHARTS["worker"]), "state")}
    assert "compound" in (states["warm"].get("class") or "")
    for substate in ("idle", "busy"):
        assert inside(box(states[substate]), box(states["warm"]))


@pytest.mark.parametrize("name", sorted(ALL_CHARTS))
def test_one_arrow_per_pair_of_states_labelled_with_all_their_events(name: str) -> None:
    root = parse(ALL_CHARTS[name])
    expected = expected_edges(ALL_CHARTS[name])
    paths = [p for p in root.iter(f"{NS}path") if p.get("class") == "edge"]
    drawn = [(p.get("data-source"), p.get("data-target")) for p in paths]
    assert sorted(drawn) == sorted(expected)
    assert all(p.get("marker-end", "").startswith("url(#") for p in paths)
    labels = {
        (g.get("data-source"), g.get("data-target")): g.findtext(f"{NS}text")
        for g in groups(root, "label")
    }
    for pair, events in expected.items():
        assert labels[pair] == " / ".join(dict.fromkeys(events))


def test_transitions_between_the_same_states_share_one_label() -> None:
    labels = [g.findtext(f"{NS}text") for g in groups(parse(CHARTS["generation"]), "label")]
    assert "release / timeout / error / cancel" in labels
    assert labels.count("timeout / error / cancel") == 4


@pytest.mark.parametrize("name", sorted(ALL_CHARTS))
def test_final_states_have_a_double_border(name: str) -> None:
    chart = ALL_CHARTS[name]
    finals = {state.id for state in all_states(chart.states) if state.final}
    for group in groups(parse(chart), "state"):
        borders = len(group.findall(f"{NS}rect"))
        assert borders == (2 if group.get("data-state") in finals else 1)


@pytest.mark.parametrize("name", sorted(ALL_CHARTS))
def test_the_initial_state_is_pointed_at_by_a_dot(name: str) -> None:
    root = parse(ALL_CHARTS[name])
    initial = next(state.id for state in ALL_CHARTS[name].states if state.initial)
    arrows = [p.get("data-target") for p in root.iter(f"{NS}path") if p.get("class") == "initial"]
    assert initial in arrows
    assert len(list(root.iter(f"{NS}circle"))) == len(arrows)


@pytest.mark.parametrize("name", sorted(ALL_CHARTS))
def test_no_label_overlaps_another_label_or_a_state(name: str) -> None:
    root = parse(ALL_CHARTS[name])
    labels = [box(g) for g in groups(root, "label")]
    states = [(box(g), "compound" in (g.get("class") or "")) for g in groups(root, "state")]
    for i, label in enumerate(labels):
        assert not any(overlap(label, other) for other in labels[i + 1 :])
        for state, compound in states:
            if compound:
                assert inside(label, state) or not overlap(label, state)
            else:
                assert not overlap(label, state)


@pytest.mark.parametrize("name", sorted(ALL_CHARTS))
def test_rendering_is_deterministic(name: str) -> None:
    assert svg(ALL_CHARTS[name]) == svg(ALL_CHARTS[name])


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_the_readme_shows_the_committed_svg(name: str) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert f"](statecharts/diagrams/{name}.svg)" in readme
