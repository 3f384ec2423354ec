"""A small layered layout of one region of a chart, read left to right.

1. states go in columns by their longest path from the initial state; a transition that closes
   a cycle is laid out reversed (and drawn pointing back);
2. between two state columns there is a gap column; a transition spanning several columns gets a
   placeholder in each column it crosses, and its label is one of them (in the gap next to its
   target), so labels are stacked like boxes and never overlap a box or another label;
3. barycenter sweeps order each column to reduce crossings; placeholders are aligned into
   straight runs and the runs are packed from the top;
4. edges run straight through the columns and bend with cubic Béziers in the gaps between them.

A compound state is laid out the same way inside its box. The result is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Final

from ._chart import Edge, Spec
from ._scene import (
    COMPOUND_TITLE,
    DOT,
    LABEL_H,
    STATE_FONT,
    Box,
    EdgePath,
    Label,
    Piece,
    Scene,
    label_width,
    text_width,
)

__all__ = ["layout"]

_BOX_H: Final = 36.0
_BOX_MIN_W: Final = 72.0
_BOX_PAD_X: Final = 16.0
_RANK_GAP: Final = 28.0
_NODE_GAP: Final = 16.0
_TIGHT_GAP: Final = 8.0
_DUMMY_H: Final = 2.0
_PORT_GAP: Final = 9.0
_PORT_MARGIN: Final = 9.0
_LOOP_RISE: Final = 32.0
_COMPOUND_PAD: Final = 14.0
_INITIAL: Final = "(initial)"


@dataclass
class _Node:
    key: str
    kind: str  # "state", "initial", "label" or "dummy"
    w: float
    h: float
    spec: Spec | None = None
    inner: Scene | None = None
    text: str = ""
    loop: str | None = None  # the label of a self-loop on this state
    rank: int = 0
    x: float = 0.0  # center
    y: float = 0.0  # center

    @property
    def above(self) -> float:
        """Room kept free over the box for the self-loop and its label."""
        return 0.0 if self.loop is None else _LOOP_RISE * 0.75 + LABEL_H + 4.0

    @property
    def column_width(self) -> float:
        return self.w if self.loop is None else max(self.w, label_width(self.loop))


@dataclass
class _Chain:
    edge: Edge
    kind: str
    keys: list[str]  # column order: reversed edges run from their target to their source
    reverse: bool


def layout(
    specs: tuple[Spec, ...],
    region: tuple[str, ...],
    regions: dict[tuple[str, ...], list[Edge]],
) -> Scene:
    """The scene of the states ``specs`` of ``region`` (compounds laid out inside)."""
    nodes = _state_nodes(specs, region, regions)
    links: list[tuple[Edge, str]] = []
    initial = next((spec for spec in specs if spec.initial), specs[0] if specs else None)
    if initial is not None:
        nodes = {_INITIAL: _Node(_INITIAL, "initial", DOT, DOT), **nodes}
        links.append((Edge(_INITIAL, initial.id, ()), "initial"))
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
    scene = Scene(lefts[-1] + widths[-1] if lefts else 0.0, bottom - top)
    _draw_nodes(scene, nodes)
    _draw_chains(scene, nodes, chains, lefts, widths)
    return scene


def _state_nodes(
    specs: tuple[Spec, ...],
    region: tuple[str, ...],
    regions: dict[tuple[str, ...], list[Edge]],
) -> dict[str, _Node]:
    nodes: dict[str, _Node] = {}
    for spec in specs:
        title_w = text_width(spec.name, STATE_FONT) + 2 * _BOX_PAD_X
        if spec.children:
            inner = layout(spec.children, (*region, spec.id), regions)
            w = max(inner.width + 2 * _COMPOUND_PAD, title_w)
            h = COMPOUND_TITLE + inner.height + _COMPOUND_PAD
            nodes[spec.id] = _Node(spec.id, "state", w, h, spec=spec, inner=inner)
        else:
            nodes[spec.id] = _Node(spec.id, "state", max(_BOX_MIN_W, title_w), _BOX_H, spec=spec)
    return nodes


def _chains(nodes: dict[str, _Node], links: list[tuple[Edge, str]]) -> list[_Chain]:
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
                nodes[key] = _Node(key, "label", label_width(edge.label), LABEL_H)
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


def _draw_nodes(scene: Scene, nodes: dict[str, _Node]) -> None:
    for node in nodes.values():
        if node.kind == "initial":
            scene.dots.append((node.x, node.y))
        elif node.kind == "label":
            continue
        elif node.spec is not None:
            box = Box(node.spec, node.x - node.w / 2, node.y - node.h / 2, node.w, node.h)
            scene.boxes.append(box)
            if node.inner is not None:
                dx = box.x + (box.w - node.inner.width) / 2
                scene.add(node.inner, dx, box.y + COMPOUND_TITLE)
            if node.loop is not None:
                _draw_loop(scene, node)


def _draw_loop(scene: Scene, node: _Node) -> None:
    x, top = node.x, node.y - node.h / 2
    rise = top - _LOOP_RISE
    piece = ((x - 8, top), (x - 30, rise), (x + 30, rise), (x + 8, top))
    scene.paths.append(EdgePath("edge", node.key, node.key, [piece]))
    if node.loop:
        cy = top - _LOOP_RISE * 0.75 - 2 - LABEL_H / 2
        scene.labels.append(Label(node.key, node.key, node.loop, x, cy, label_width(node.loop)))


def _draw_chains(
    scene: Scene,
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
        pieces: list[Piece] = [((first.x + first.w / 2, start_y), None, None, previous)]
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
                label = Label(chain.edge.source, chain.edge.target, node.text, node.x, y, node.w)
                scene.labels.append(label)
        if chain.reverse:
            pieces = [(end, c2, c1, start) for start, c1, c2, end in reversed(pieces)]
        scene.paths.append(
            EdgePath(chain.kind, chain.edge.source, chain.edge.target, _simplify(pieces))
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


def _simplify(pieces: list[Piece]) -> list[Piece]:
    """Drop empty pieces, straighten flat curves and join consecutive straight pieces."""
    simple: list[Piece] = []
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
