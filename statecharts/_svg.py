"""SVG pictures of the charts, laid out and drawn in pure Python (no Graphviz on the machines).

The layout is a small layered one, read left to right:

1. states go in columns by their longest path from the initial state; a transition that closes
   a cycle is laid out reversed (and drawn pointing back);
2. between two state columns there is a gap column; a transition spanning several columns gets a
   placeholder in each column it crosses, and its label is one of them (in the gap next to its
   target), so labels are stacked like boxes and never overlap a box or another label;
3. barycenter sweeps order each column to reduce crossings; placeholders are aligned into
   straight runs and the runs are packed from the top;
4. edges run straight through the columns and bend with cubic Béziers in the gaps between them.

A compound state is laid out the same way inside its box. Transitions between the same two
states are merged into one edge labelled with all their events. The output is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, cast
from xml.sax.saxutils import escape, quoteattr

__all__ = ["svg"]

_FONT = "DejaVu Sans, Verdana, Arial, sans-serif"
_STATE_FONT = 13.0
_LABEL_FONT = 11.0
_BOX_H = 36.0
_BOX_MIN_W = 72.0
_BOX_PAD_X = 16.0
_FINAL_INSET = 3.5
_LABEL_PAD_X = 5.0
_LABEL_H = 17.0
_DOT = 12.0
_RANK_GAP = 28.0
_NODE_GAP = 16.0
_TIGHT_GAP = 8.0
_DUMMY_H = 2.0
_PORT_GAP = 9.0
_PORT_MARGIN = 9.0
_LOOP_RISE = 32.0
_COMPOUND_PAD = 14.0
_COMPOUND_TITLE = 26.0
_MARGIN = 12.0
_INITIAL = "(initial)"

_INK = "#2d3748"
_EDGE_INK = "#4a5568"
_STATE_FILL = "#eef4fb"
_STATE_STROKE = "#2f5d8a"
_COMPOUND_FILL = "#f7f9fc"

_Point = tuple[float, float]
# A path piece: start, the two Bézier control points (None for a straight line), end.
_Piece = tuple[_Point, _Point | None, _Point | None, _Point]


def svg(chart: type) -> str:
    """A self-contained SVG picture of a chart class: its states, transitions and events.

    Deterministic: the same class always gives the same string, so the committed files can be
    compared with a fresh rendering (see ``write_diagrams``).
    """
    states = cast(Any, chart).states
    specs = _specs(states)
    scene = _layout(specs, (), _regions(specs, _transitions(states)))
    return _render(chart.__name__, scene)


# --- what the chart says --------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    id: str
    name: str
    initial: bool
    final: bool
    children: tuple[_Spec, ...]


@dataclass(frozen=True)
class _Edge:
    source: str
    target: str
    events: tuple[str, ...]

    @property
    def label(self) -> str:
        return " / ".join(self.events)


def _specs(states: Any) -> tuple[_Spec, ...]:
    return tuple(
        _Spec(str(s.id), str(s.name), bool(s.initial), bool(s.final), _specs(s.states))
        for s in states
    )


def _transitions(states: Any) -> list[_Edge]:
    """Every transition of these states and their substates, one per target, in order."""
    found: list[_Edge] = []
    for state in states:
        for transition in state.transitions:
            events = tuple(dict.fromkeys(str(event) for event in transition.events))
            for target in list(transition.targets) or [transition.source]:
                entering_initial_child = (
                    not events and target.parent is not None and target.parent.id == state.id
                )
                if not entering_initial_child:  # drawn as the initial dot inside the compound
                    found.append(_Edge(str(transition.source.id), str(target.id), events))
        found.extend(_transitions(state.states))
    return found


def _regions(
    specs: tuple[_Spec, ...], transitions: list[_Edge]
) -> dict[tuple[str, ...], list[_Edge]]:
    """Merged edges per region (the ids of the enclosing compounds), endpoints lifted into it.

    A transition between states of different compounds is drawn between their ancestors that
    share a region; one between a compound and its own substate becomes a self-loop.
    """
    paths: dict[str, tuple[str, ...]] = {}

    def walk(level: tuple[_Spec, ...], prefix: tuple[str, ...]) -> None:
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
    regions: dict[tuple[str, ...], list[_Edge]] = {}
    for (region, source_id, target_id), events in merged.items():
        regions.setdefault(region, []).append(_Edge(source_id, target_id, tuple(events)))
    return regions


# --- the picture, before it is written out --------------------------------------------------


@dataclass
class _Box:
    spec: _Spec
    x: float
    y: float
    w: float
    h: float


@dataclass
class _Path:
    kind: str  # "edge" or "initial"
    source: str
    target: str
    pieces: list[_Piece]


@dataclass
class _Label:
    source: str
    target: str
    text: str
    cx: float
    cy: float
    w: float


@dataclass
class _Scene:
    width: float
    height: float
    boxes: list[_Box] = field(default_factory=list)
    paths: list[_Path] = field(default_factory=list)
    labels: list[_Label] = field(default_factory=list)
    dots: list[_Point] = field(default_factory=list)

    def add(self, other: _Scene, dx: float, dy: float) -> None:
        """Copy ``other``'s items into this scene, moved by (dx, dy)."""

        def move(point: _Point | None) -> _Point | None:
            return None if point is None else (point[0] + dx, point[1] + dy)

        def moved(point: _Point) -> _Point:
            return (point[0] + dx, point[1] + dy)

        for box in other.boxes:
            self.boxes.append(_Box(box.spec, box.x + dx, box.y + dy, box.w, box.h))
        for path in other.paths:
            pieces = [(moved(a), move(b), move(c), moved(d)) for a, b, c, d in path.pieces]
            self.paths.append(_Path(path.kind, path.source, path.target, pieces))
        for label in other.labels:
            self.labels.append(
                _Label(
                    label.source, label.target, label.text, label.cx + dx, label.cy + dy, label.w
                )
            )
        self.dots.extend(moved(dot) for dot in other.dots)


# --- layout ---------------------------------------------------------------------------------


@dataclass
class _Node:
    key: str
    kind: str  # "state", "initial", "label" or "dummy"
    w: float
    h: float
    spec: _Spec | None = None
    inner: _Scene | None = None
    text: str = ""
    loop: str | None = None  # the label of a self-loop on this state
    rank: int = 0
    x: float = 0.0  # center
    y: float = 0.0  # center

    @property
    def above(self) -> float:
        """Room kept free over the box for the self-loop and its label."""
        return 0.0 if self.loop is None else _LOOP_RISE * 0.75 + _LABEL_H + 4.0

    @property
    def column_width(self) -> float:
        return self.w if self.loop is None else max(self.w, _label_width(self.loop))


@dataclass
class _Chain:
    edge: _Edge
    kind: str
    keys: list[str]  # column order: reversed edges run from their target to their source
    reverse: bool


def _layout(
    specs: tuple[_Spec, ...],
    region: tuple[str, ...],
    regions: dict[tuple[str, ...], list[_Edge]],
) -> _Scene:
    nodes = _state_nodes(specs, region, regions)
    links: list[tuple[_Edge, str]] = []
    initial = next((spec for spec in specs if spec.initial), specs[0] if specs else None)
    if initial is not None:
        nodes = {_INITIAL: _Node(_INITIAL, "initial", _DOT, _DOT), **nodes}
        links.append((_Edge(_INITIAL, initial.id, ()), "initial"))
    for edge in regions.get(region, []):
        if edge.source == edge.target:
            nodes[edge.source].loop = edge.label
        else:
            links.append((edge, "edge"))

    chains = _chains(nodes, links)
    ranks = _order(nodes, chains)
    _grow_for_ports(nodes, chains)
    _place_rows(nodes, ranks, chains)
    lefts, widths = _place_columns(nodes, ranks)

    top = min((n.y - n.h / 2 - n.above for n in nodes.values()), default=0.0)
    bottom = max((n.y + n.h / 2 for n in nodes.values()), default=0.0)
    for node in nodes.values():
        node.y -= top
    scene = _Scene(lefts[-1] + widths[-1] if lefts else 0.0, bottom - top)
    _draw_nodes(scene, nodes)
    _draw_chains(scene, nodes, chains, lefts, widths)
    return scene


def _state_nodes(
    specs: tuple[_Spec, ...],
    region: tuple[str, ...],
    regions: dict[tuple[str, ...], list[_Edge]],
) -> dict[str, _Node]:
    nodes: dict[str, _Node] = {}
    for spec in specs:
        title_w = _text_width(spec.name, _STATE_FONT) + 2 * _BOX_PAD_X
        if spec.children:
            inner = _layout(spec.children, (*region, spec.id), regions)
            w = max(inner.width + 2 * _COMPOUND_PAD, title_w)
            h = _COMPOUND_TITLE + inner.height + _COMPOUND_PAD
            nodes[spec.id] = _Node(spec.id, "state", w, h, spec=spec, inner=inner)
        else:
            nodes[spec.id] = _Node(spec.id, "state", max(_BOX_MIN_W, title_w), _BOX_H, spec=spec)
    return nodes


def _chains(nodes: dict[str, _Node], links: list[tuple[_Edge, str]]) -> list[_Chain]:
    """Assign layers, then turn every link into a chain of nodes, one per column it spans."""
    successors: dict[str, list[str]] = {key: [] for key in nodes}
    for edge, _ in links:
        successors[edge.source].append(edge.target)
    back, layer = _layers(list(nodes), successors)
    for key, node in nodes.items():
        node.rank = 2 * layer[key]

    chains: list[_Chain] = []
    for number, (edge, kind) in enumerate(links):
        reverse = (edge.source, edge.target) in back
        first, last = (edge.target, edge.source) if reverse else (edge.source, edge.target)
        label_rank = nodes[first].rank + 1 if reverse else nodes[last].rank - 1
        keys = [first]
        for rank in range(nodes[first].rank + 1, nodes[last].rank):
            if rank == label_rank and edge.events:
                key = f"(label {number})"
                nodes[key] = _Node(key, "label", _label_width(edge.label), _LABEL_H)
                nodes[key].text = edge.label
            else:
                key = f"(via {number} {rank})"
                nodes[key] = _Node(key, "dummy", 0.0, _DUMMY_H)
            nodes[key].rank = rank
            keys.append(key)
        keys.append(last)
        chains.append(_Chain(edge, kind, keys, reverse))
    return chains


def _layers(
    keys: list[str], successors: dict[str, list[str]]
) -> tuple[set[tuple[str, str]], dict[str, int]]:
    """The edges that close a cycle (depth-first from ``keys[0]``) and each node's layer."""
    marks: dict[str, str] = {}
    back: set[tuple[str, str]] = set()
    finished: list[str] = []

    def visit(node: str) -> None:
        marks[node] = "open"
        for successor in successors[node]:
            if marks.get(successor) == "open":
                back.add((node, successor))
            elif successor not in marks:
                visit(successor)
        marks[node] = "done"
        finished.append(node)

    for key in keys:
        if key not in marks:
            visit(key)
    layer = dict.fromkeys(keys, 0)
    for node in reversed(finished):
        for successor in successors[node]:
            if (node, successor) not in back:
                layer[successor] = max(layer[successor], layer[node] + 1)
    return back, layer


def _neighbours(chains: list[_Chain]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    left: dict[str, list[str]] = {}
    right: dict[str, list[str]] = {}
    for chain in chains:
        for u, v in pairwise(chain.keys):
            right.setdefault(u, []).append(v)
            left.setdefault(v, []).append(u)
    return left, right


def _order(nodes: dict[str, _Node], chains: list[_Chain]) -> list[list[str]]:
    """The nodes of each column, top to bottom, ordered to reduce crossings."""
    left, right = _neighbours(chains)
    ranks: list[list[str]] = [[] for _ in range(max(n.rank for n in nodes.values()) + 1)]
    seen: set[str] = set()

    def place(key: str) -> None:
        seen.add(key)
        ranks[nodes[key].rank].append(key)
        for successor in right.get(key, []):
            if successor not in seen:
                place(successor)

    for key in nodes:
        if key not in seen:
            place(key)

    best, fewest = [list(rank) for rank in ranks], _crossings(ranks, right)
    for sweep in range(12):
        downward = sweep % 2 == 0
        for r in range(1, len(ranks)) if downward else range(len(ranks) - 2, -1, -1):
            reference = ranks[r - 1] if downward else ranks[r + 1]
            ranks[r] = _by_barycenter(ranks[r], reference, left if downward else right)
        crossings = _crossings(ranks, right)
        if crossings < fewest:
            best, fewest = [list(rank) for rank in ranks], crossings
    return best


def _by_barycenter(rank: list[str], reference: list[str], sides: dict[str, list[str]]) -> list[str]:
    """``rank`` sorted by the mean position of each node's neighbours in ``reference``."""
    position = {key: i for i, key in enumerate(reference)}

    def barycenter(item: tuple[int, str]) -> float:
        i, key = item
        linked = [position[k] for k in sides.get(key, []) if k in position]
        return sum(linked) / len(linked) if linked else float(i)

    return [key for _, key in sorted(enumerate(rank), key=barycenter)]


def _crossings(ranks: list[list[str]], right: dict[str, list[str]]) -> int:
    count = 0
    for r in range(len(ranks) - 1):
        below = {key: i for i, key in enumerate(ranks[r + 1])}
        links = [
            (i, below[v]) for i, u in enumerate(ranks[r]) for v in right.get(u, []) if v in below
        ]
        count += sum(
            1 for a, b in links for c, d in links if (a < c and b > d) or (a > c and b < d)
        )
    return count // 2


def _grow_for_ports(nodes: dict[str, _Node], chains: list[_Chain]) -> None:
    """Make a state tall enough that the edges on each of its sides end apart."""
    left, right = _neighbours(chains)
    for key, node in nodes.items():
        if node.kind == "state":
            ports = max(len(left.get(key, [])), len(right.get(key, [])))
            node.h = max(node.h, 2 * _PORT_MARGIN + (ports - 1) * _PORT_GAP)


def _place_rows(nodes: dict[str, _Node], ranks: list[list[str]], chains: list[_Chain]) -> None:
    """Vertical centers: align each node with its topmost free left neighbour, pack from the top."""
    left, _ = _neighbours(chains)
    position = {key: i for rank in ranks for i, key in enumerate(rank)}
    root = {key: key for key in nodes}
    for rank in ranks[1:]:
        last = -1
        for key in rank:
            for neighbour in sorted(left.get(key, []), key=position.__getitem__):
                if position[neighbour] > last:
                    root[key] = root[neighbour]
                    last = position[neighbour]
                    break

    center = dict.fromkeys(root.values(), 0.0)
    for _ in range(len(nodes) + 1):
        moved = False
        for rank in ranks:
            for upper, lower in pairwise(rank):
                a, b = nodes[upper], nodes[lower]
                gap = _NODE_GAP if "state" in (a.kind, b.kind) else _TIGHT_GAP
                needed = center[root[upper]] + a.h / 2 + gap + b.h / 2 + b.above
                if center[root[lower]] < needed:
                    center[root[lower]] = needed
                    moved = True
        if not moved:
            break
    for key, node in nodes.items():
        node.y = center[root[key]]


def _place_columns(
    nodes: dict[str, _Node], ranks: list[list[str]]
) -> tuple[list[float], list[float]]:
    widths = [max((nodes[key].column_width for key in rank), default=0.0) for rank in ranks]
    lefts: list[float] = []
    x = 0.0
    for width in widths:
        lefts.append(x)
        x += width + _RANK_GAP
    for node in nodes.values():
        node.x = lefts[node.rank] + widths[node.rank] / 2
    return lefts, widths


def _draw_nodes(scene: _Scene, nodes: dict[str, _Node]) -> None:
    for node in nodes.values():
        if node.kind == "initial":
            scene.dots.append((node.x, node.y))
        elif node.kind == "label":
            continue
        elif node.spec is not None:
            box = _Box(node.spec, node.x - node.w / 2, node.y - node.h / 2, node.w, node.h)
            scene.boxes.append(box)
            if node.inner is not None:
                dx = box.x + (box.w - node.inner.width) / 2
                scene.add(node.inner, dx, box.y + _COMPOUND_TITLE)
            if node.loop is not None:
                _draw_loop(scene, node)


def _draw_loop(scene: _Scene, node: _Node) -> None:
    x, top = node.x, node.y - node.h / 2
    rise = top - _LOOP_RISE
    piece = ((x - 8, top), (x - 30, rise), (x + 30, rise), (x + 8, top))
    scene.paths.append(_Path("edge", node.key, node.key, [piece]))
    if node.loop:
        cy = top - _LOOP_RISE * 0.75 - 2 - _LABEL_H / 2
        scene.labels.append(_Label(node.key, node.key, node.loop, x, cy, _label_width(node.loop)))


def _draw_chains(
    scene: _Scene,
    nodes: dict[str, _Node],
    chains: list[_Chain],
    lefts: list[float],
    widths: list[float],
) -> None:
    ports = _ports(nodes, chains)
    for number, chain in enumerate(chains):
        first, last = nodes[chain.keys[0]], nodes[chain.keys[-1]]
        start_y = ports[number, first.key, "right"]
        previous = (lefts[first.rank] + widths[first.rank], start_y)
        pieces: list[_Piece] = [((first.x + first.w / 2, start_y), None, None, previous)]
        for key in chain.keys[1:]:
            node = nodes[key]
            y = ports[number, key, "left"] if node is last else node.y
            entry = (lefts[node.rank], y)
            middle = (previous[0] + entry[0]) / 2
            pieces.append((previous, (middle, previous[1]), (middle, y), entry))
            if node is last:
                pieces.append((entry, None, None, (node.x - node.w / 2, y)))
            else:
                previous = (lefts[node.rank] + widths[node.rank], y)
                pieces.append((entry, None, None, previous))
            if node.kind == "label":
                label = _Label(chain.edge.source, chain.edge.target, node.text, node.x, y, node.w)
                scene.labels.append(label)
        if chain.reverse:
            pieces = [(end, c2, c1, start) for start, c1, c2, end in reversed(pieces)]
        scene.paths.append(
            _Path(chain.kind, chain.edge.source, chain.edge.target, _simplify(pieces))
        )


def _ports(nodes: dict[str, _Node], chains: list[_Chain]) -> dict[tuple[int, str, str], float]:
    """Where each chain meets the side of a state: near its neighbour, in order, spread apart."""
    wanted: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for number, chain in enumerate(chains):
        first, second = chain.keys[0], chain.keys[1]
        before_last, last = chain.keys[-2], chain.keys[-1]
        wanted.setdefault((first, "right"), []).append((nodes[second].y, number))
        wanted.setdefault((last, "left"), []).append((nodes[before_last].y, number))
    ports: dict[tuple[int, str, str], float] = {}
    for (key, side), items in wanted.items():
        node = nodes[key]
        items.sort()
        margin = _PORT_MARGIN if node.inner is None else _COMPOUND_PAD
        low = node.y - node.h / 2 + margin
        high = node.y + node.h / 2 - margin
        if node.kind == "initial":
            low = high = node.y
        spread = _spread([y for y, _ in items], low, high, _PORT_GAP)
        for (_, number), y in zip(items, spread, strict=True):
            ports[number, key, side] = y
    return ports


def _spread(wanted: list[float], low: float, high: float, gap: float) -> list[float]:
    """Increasing positions at least ``gap`` apart, as close to ``wanted`` (sorted) as can be.

    Least squares under the spacing constraint (pooling adjacent violators), then shifted into
    [low, high].
    """
    pools: list[tuple[float, int]] = []  # (sum of offsets, count)
    for i, y in enumerate(wanted):
        pools.append((min(max(y, low), high) - i * gap, 1))
        while len(pools) > 1 and pools[-2][0] / pools[-2][1] > pools[-1][0] / pools[-1][1]:
            total, count = pools.pop()
            pools[-1] = (pools[-1][0] + total, pools[-1][1] + count)
    spread: list[float] = []
    for total, count in pools:
        first = len(spread)
        spread.extend(total / count + (first + j) * gap for j in range(count))
    if spread and spread[-1] > high:
        spread = [y - (spread[-1] - high) for y in spread]
    if spread and spread[0] < low:
        spread = [y + (low - spread[0]) for y in spread]
    return spread


def _simplify(pieces: list[_Piece]) -> list[_Piece]:
    """Drop empty pieces, straighten flat curves and join consecutive straight pieces."""
    simple: list[_Piece] = []
    for start, c1, c2, end in pieces:
        if start == end:
            continue
        if start[1] == end[1]:
            c1 = c2 = None
        if simple and c1 is None and simple[-1][1] is None and simple[-1][3][1] == end[1]:
            simple[-1] = (simple[-1][0], None, None, end)
        else:
            simple.append((start, c1, c2, end))
    return simple


# --- text -----------------------------------------------------------------------------------


def _text_width(text: str, size: float) -> float:
    """A generous estimate of the rendered width (wide sans-serif fonts such as DejaVu Sans)."""
    ems = 0.0
    for char in text:
        if char in "ijl.,:;'|!I":
            ems += 0.32
        elif char in "frt()[]-":
            ems += 0.42
        elif char in " /":
            ems += 0.36
        elif char in "mwMW":
            ems += 1.0
        elif char.isupper():
            ems += 0.78
        else:
            ems += 0.65
    return ems * size


def _label_width(text: str) -> float:
    return _text_width(text, _LABEL_FONT) + 2 * _LABEL_PAD_X


# --- SVG ------------------------------------------------------------------------------------


def _num(value: float) -> str:
    text = f"{round(value, 1):.1f}".removesuffix(".0")
    return "0" if text == "-0" else text


def _pt(point: _Point) -> str:
    return f"{_num(point[0])},{_num(point[1])}"


def _d(pieces: list[_Piece]) -> str:
    parts = [f"M{_pt(pieces[0][0])}"]
    for _, c1, c2, end in pieces:
        if c1 is None or c2 is None:
            parts.append(f"L{_pt(end)}")
        else:
            parts.append(f"C{_pt(c1)} {_pt(c2)} {_pt(end)}")
    return " ".join(parts)


def _rect(x: float, y: float, w: float, h: float, rx: float, extra: str = "") -> str:
    return (
        f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}" '
        f'rx="{_num(rx)}"{extra}/>'
    )


def _text(x: float, y: float, text: str, size: float) -> str:
    baseline = y + size * 0.35
    return (
        f'<text x="{_num(x)}" y="{_num(baseline)}" font-size="{_num(size)}" fill="{_INK}" '
        f'stroke="none">{escape(text)}</text>'
    )


def _state(box: _Box) -> list[str]:
    spec = box.spec
    kind = "compound" if spec.children else "final" if spec.final else "simple"
    lines = [f'<g class="state {kind}" data-state={quoteattr(spec.id)}>']
    if spec.children:
        lines.append(_rect(box.x, box.y, box.w, box.h, 10, f' fill="{_COMPOUND_FILL}"'))
        lines.append(_text(box.x + box.w / 2, box.y + _COMPOUND_TITLE / 2 + 2, spec.name, 13))
    else:
        lines.append(_rect(box.x, box.y, box.w, box.h, 8))
        if spec.final:
            inset = _FINAL_INSET
            lines.append(
                _rect(box.x + inset, box.y + inset, box.w - 2 * inset, box.h - 2 * inset, 5)
            )
        lines.append(_text(box.x + box.w / 2, box.y + box.h / 2, spec.name, _STATE_FONT))
    lines.append("</g>")
    return lines


def _render(name: str, scene: _Scene) -> str:
    width, height = scene.width + 2 * _MARGIN, scene.height + 2 * _MARGIN
    framed = _Scene(width, height)
    framed.add(scene, _MARGIN, _MARGIN)
    arrow = f"{name.lower()}-arrow"
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(width)}" height="{_num(height)}" '
        f'viewBox="0 0 {_num(width)} {_num(height)}" font-family={quoteattr(_FONT)} '
        f'text-anchor="middle">',
        f"<title>{escape(name)}</title>",
        "<defs>",
        f'<marker id="{arrow}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" '
        'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto">',
        f'<path d="M0,1 L10,5 L0,9 Z" fill="{_EDGE_INK}"/>',
        "</marker>",
        "</defs>",
        f'<rect width="{_num(width)}" height="{_num(height)}" fill="#ffffff"/>',
        f'<g class="states" fill="{_STATE_FILL}" stroke="{_STATE_STROKE}" stroke-width="1.5">',
    ]
    compounds = [box for box in framed.boxes if box.spec.children]
    simple = [box for box in framed.boxes if not box.spec.children]
    for box in compounds:
        lines.extend(_state(box))
    lines.append("</g>")
    lines.append(f'<g class="edges" fill="none" stroke="{_EDGE_INK}" stroke-width="1.3">')
    for path in framed.paths:
        ends = f"data-target={quoteattr(path.target)}"
        if path.kind == "edge":
            ends = f"data-source={quoteattr(path.source)} {ends}"
        lines.append(
            f'<path class="{path.kind}" {ends} d="{_d(path.pieces)}" marker-end="url(#{arrow})"/>'
        )
    lines.append("</g>")
    lines.append(f'<g class="initial-dots" fill="{_INK}">')
    lines.extend(
        f'<circle cx="{_num(x)}" cy="{_num(y)}" r="{_num(_DOT / 2 - 1)}"/>' for x, y in framed.dots
    )
    lines.append("</g>")
    lines.append(
        f'<g class="states" fill="{_STATE_FILL}" stroke="{_STATE_STROKE}" stroke-width="1.5">'
    )
    for box in simple:
        lines.extend(_state(box))
    lines.append("</g>")
    lines.append('<g class="labels">')
    for label in framed.labels:
        lines.append(
            f'<g class="label" data-source={quoteattr(label.source)} '
            f"data-target={quoteattr(label.target)}>"
        )
        x, y = label.cx - label.w / 2, label.cy - _LABEL_H / 2
        lines.append(_rect(x, y, label.w, _LABEL_H, 3, ' fill="#ffffff"'))
        lines.append(_text(label.cx, label.cy, label.text, _LABEL_FONT))
        lines.append("</g>")
    lines.append("</g>")
    lines.append("</svg>")
    return "\n".join(lines) + "\n"
