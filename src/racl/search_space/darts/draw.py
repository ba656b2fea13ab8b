"""Cell pictures: Graphviz DOT text and a PNG of each cell of a genotype.

The PNG comes from Graphviz's `dot` when it is installed, otherwise from a matplotlib drawing of the
same DAG with a small layered (Sugiyama-style) left-to-right layout: edge labels and long edges get
their own slots in each column, so labels never sit on top of nodes or of each other.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from racl.io import write_bytes, write_text
from racl.search_space.darts.genotype import Edge, Genotype

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FAMILY_COLOURS = {"conv": "#1f5fa8", "pool": "#2e8b3e", "skip": "#c0392b", "concat": "#8c8c8c"}
_NODE_FILL = {"input": "#d9ead3", "inner": "#dbe9f6", "output": "#fff2cc"}
_DOT_TIMEOUT_S = 30.0
_LABEL_PT, _NODE_PT, _TITLE_PT = 10.0, 13.0, 14.0
_GAP, _ROW_GAP, _DPI = 0.55, 0.12, 150  # inches between columns / between slots; PNG resolution


def op_family(op: str) -> str:
    """'conv', 'pool' or 'skip': the colour group of a primitive."""
    if "pool" in op:
        return "pool"
    return "skip" if op == "skip_connect" else "conv"


def _node_name(index: int) -> str:
    return {0: "c_{k-2}", 1: "c_{k-1}"}.get(index, str(index - 2))


def _cell_edges(edges: Sequence[Edge], concat: Sequence[int]) -> list[tuple[str, str, str | None]]:
    """(source, target, op or None for the concat edges into the output), in genotype order."""
    out: list[tuple[str, str, str | None]] = [
        (_node_name(idx), _node_name(2 + k // 2), op) for k, (op, idx) in enumerate(edges)
    ]
    return out + [(_node_name(i), "c_{k}", None) for i in concat]


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def genotype_to_dot(edges: Sequence[Edge], concat: Sequence[int], title: str) -> str:
    """Graphviz DOT text of one cell: inputs c_{k-2}, c_{k-1}, nodes 0.., output c_{k}, ops on edges."""
    lines = [
        "digraph cell {",
        f"  graph [rankdir=LR, label={_dot_quote(title)}, labelloc=t, fontsize=20, fontname=helvetica];",
        "  node [style=\"rounded,filled\", shape=rect, fontsize=18, height=0.5, width=0.5, penwidth=1.5,"
        " fontname=helvetica];",
        "  edge [fontsize=14, fontname=helvetica, penwidth=1.5];",
    ]
    steps = len(edges) // 2
    for name, kind in [("c_{k-2}", "input"), ("c_{k-1}", "input")] + [
        (str(j), "inner") for j in range(steps)
    ] + [("c_{k}", "output")]:
        lines.append(f"  {_dot_quote(name)} [fillcolor={_dot_quote(_NODE_FILL[kind])}];")
    for src, dst, op in _cell_edges(edges, concat):
        colour = _dot_quote(FAMILY_COLOURS[op_family(op) if op else "concat"])
        label = f", label={_dot_quote(op)}, fontcolor={colour}" if op else ""
        lines.append(f"  {_dot_quote(src)} -> {_dot_quote(dst)} [color={colour}{label}];")
    lines.append('  { rank=same; "c_{k-2}"; "c_{k-1}"; }')
    return "\n".join(lines) + "\n}\n"


# ---------------------------------------------------------------- layered layout for matplotlib
@dataclass
class _Slot:
    """One thing occupying a column: a node, an edge label, or a long edge passing through."""

    kind: str  # "node" | "label" | "dummy"
    text: str
    width: float  # inches
    height: float
    y: float = 0.0
    links: list["_Slot"] = field(default_factory=list)  # neighbours in the previous column
    succ: list["_Slot"] = field(default_factory=list)  # neighbours in the next column


def _text_width(text: str, size: float) -> float:
    from matplotlib.textpath import TextPath

    return TextPath((0, 0), text, size=size).get_extents().width / 72.0


def _node_slot(name: str) -> _Slot:
    if name.startswith("c_"):
        text = f"${name}$"
        return _Slot("node", text, max(0.6, _text_width(text, _NODE_PT) + 0.25), 0.44)
    return _Slot("node", name, 0.44, 0.44)


def _ranks(chains: list[tuple[str, str, str | None]]) -> dict[str, int]:
    """Longest-path rank of each node from the inputs (edges are in topological order)."""
    rank = {"c_{k-2}": 0, "c_{k-1}": 0}
    for src, dst, _ in chains:
        rank[dst] = max(rank.get(dst, 0), rank[src] + 1)
    return rank


def _build_columns(chains: list[tuple[str, str, str | None]], rank: dict[str, int]
                   ) -> tuple[list[list[_Slot]], dict[str, _Slot], list[list[_Slot]]]:
    """Columns of slots (node ranks at even columns, label columns between) and each edge's path."""
    ncols = 2 * max(rank.values()) + 1
    columns: list[list[_Slot]] = [[] for _ in range(ncols)]
    nodes = {}
    for name in sorted(rank, key=lambda n: rank[n]):
        nodes[name] = _node_slot(name)
        columns[2 * rank[name]].append(nodes[name])
    paths = []
    for src, dst, op in chains:
        path = [nodes[src]]
        for col in range(2 * rank[src] + 1, 2 * rank[dst]):
            is_label = op is not None and col == 2 * rank[dst] - 1  # label next to its target
            slot = (_Slot("label", op, _text_width(op, _LABEL_PT) + 0.12, 0.26) if is_label
                    else _Slot("dummy", "", 0.0, 0.14))
            columns[col].append(slot)
            path.append(slot)
        path.append(nodes[dst])
        for prev, nxt in zip(path, path[1:]):
            nxt.links.append(prev)
            prev.succ.append(nxt)
        paths.append(path)
    return columns, nodes, paths


def _crossings(columns: list[list[_Slot]]) -> int:
    """Number of pairwise link crossings between adjacent columns."""
    total = 0
    for i, col in enumerate(columns[1:], start=1):
        index = {id(s): k for k, s in enumerate(columns[i - 1])}
        pairs = [(a, index[id(p)]) for a, s in enumerate(col) for p in s.links]
        total += sum(1 for a, b in pairs for c, d in pairs if a < c and b > d)
    return total


def _sort_by(col: list[_Slot], ref: list[_Slot], attr: str) -> None:
    """Sort `col` by the mean position of each slot's neighbours (`attr`) in column `ref`."""
    index = {id(s): k for k, s in enumerate(ref)}
    own = {id(s): k for k, s in enumerate(col)}

    def key(s: _Slot) -> float:
        near = getattr(s, attr)
        return sum(index[id(p)] for p in near) / len(near) if near else own[id(s)]

    col.sort(key=key)


def _order(columns: list[list[_Slot]], sweeps: int = 8) -> None:
    """Barycentre ordering, alternating down and up sweeps (inputs keep their order); fewest crossings kept."""
    best, best_cost = [list(c) for c in columns], _crossings(columns)
    for sweep in range(sweeps):
        if sweep % 2 == 0:
            for i in range(1, len(columns)):
                _sort_by(columns[i], columns[i - 1], "links")
        else:
            for i in range(len(columns) - 2, 0, -1):
                _sort_by(columns[i], columns[i + 1], "succ")
        cost = _crossings(columns)
        if cost <= best_cost:  # ties: the later (up-sweep) order groups labels by their target
            best, best_cost = [list(c) for c in columns], cost
    columns[:] = best


def _place(columns: list[list[_Slot]]) -> tuple[list[float], list[float], float]:
    """Column centres x, column widths, and total height; sets each slot's y (top to bottom)."""
    widths = [max([s.width for s in col] + [0.3]) for col in columns]
    xs, x = [], 0.0
    for w in widths:
        xs.append(x + w / 2)
        x += w + _GAP
    height = max(sum(s.height + _ROW_GAP for s in col) for col in columns)
    for col in columns:
        y = sum(s.height + _ROW_GAP for s in col) / 2
        for s in col:
            s.y = y - (s.height + _ROW_GAP) / 2
            y -= s.height + _ROW_GAP
    return xs, widths, height


def _ports(paths: list[list[_Slot]]) -> dict[tuple[int, int], float]:
    """Vertical offset where each path leaves its source / enters its target, spread so lines and
    arrowheads at one node do not pile up: keys (path number, 0 = start / -1 = end)."""
    groups: dict[tuple[int, int], list[tuple[float, int]]] = {}
    for k, path in enumerate(paths):
        groups.setdefault((id(path[0]), 0), []).append((path[1].y, k))
        groups.setdefault((id(path[-1]), -1), []).append((path[-2].y, k))
    ports = {}
    for (_, end), members in groups.items():
        step = min(0.1, 0.3 / max(1, len(members) - 1))
        for rank, (_, k) in enumerate(sorted(members, reverse=True)):
            ports[(k, end)] = ((len(members) - 1) / 2 - rank) * step
    return ports


def _node_edge_x(slot: _Slot, dy: float) -> float:
    """Horizontal distance from a node's centre to its outline at height offset dy."""
    if slot.text.startswith("$"):
        return slot.width / 2 - 0.03
    r = slot.height / 2
    return (max(r * r - dy * dy, 0.0)) ** 0.5


def _figure(chains: list[tuple[str, str, str | None]], title: str) -> Figure:
    """A matplotlib Figure (Agg canvas, no pyplot state) of the cell described by `chains`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rank = _ranks(chains)
    columns, nodes, paths = _build_columns(chains, rank)
    _order(columns)
    xs, widths, height = _place(columns)
    col_of = {id(s): i for i, col in enumerate(columns) for s in col}
    total_w = xs[-1] + widths[-1] / 2
    top, bottom = height / 2 + 0.55, -height / 2 - 0.5  # room for the title and the legend
    fig = Figure(figsize=(total_w + 0.4, top - bottom))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-0.2, total_w + 0.2)
    ax.set_ylim(bottom, top)
    ax.axis("off")
    ports = _ports(paths)
    for k, ((_, _, op), path) in enumerate(zip(chains, paths)):
        points = []  # (left, right) of each slot on the path, in inches
        for j, slot in enumerate(path):
            x, w = xs[col_of[id(slot)]], widths[col_of[id(slot)]]
            if slot.kind == "node":
                dy = ports[(k, 0 if j == 0 else -1)]
                half = _node_edge_x(slot, dy)
                points.append(((x - half, slot.y + dy), (x + half, slot.y + dy)))
            else:
                points.append(((x - w / 2, slot.y), (x + w / 2, slot.y)))
        _draw_path(ax, points, FAMILY_COLOURS[op_family(op) if op else "concat"])
        for slot in path:
            if slot.kind == "label":
                ax.text(xs[col_of[id(slot)]], slot.y, slot.text, ha="center", va="center",
                        fontsize=_LABEL_PT, color=FAMILY_COLOURS[op_family(op)], zorder=3,
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none"))
    for slot in nodes.values():
        _draw_node(ax, slot, xs[col_of[id(slot)]])
    ax.text(total_w / 2, top - 0.25, title, ha="center", va="center", fontsize=_TITLE_PT, weight="bold")
    _legend(ax, total_w / 2, bottom + 0.22)
    return fig


def _draw_path(ax, points: list[tuple[tuple[float, float], tuple[float, float]]], colour: str) -> None:
    """S-curves between columns, straight runs through the slots in between, an arrowhead at the end."""
    from matplotlib.patches import PathPatch, Polygon
    from matplotlib.path import Path as MPath

    verts, codes = [points[0][1]], [MPath.MOVETO]
    for k, (left, right) in enumerate(points[1:], start=1):
        (x0, y0), (x1, y1) = verts[-1], left
        dx = (x1 - x0) / 2
        verts += [(x0 + dx, y0), (x1 - dx, y1), left]
        codes += [MPath.CURVE4] * 3
        if k < len(points) - 1:
            verts.append(right)
            codes.append(MPath.LINETO)
    ax.add_patch(PathPatch(MPath(verts, codes), fill=False, edgecolor=colour, lw=1.6, zorder=1,
                           capstyle="butt"))
    tip_x, tip_y = verts[-1]
    ax.add_patch(Polygon([(tip_x, tip_y), (tip_x - 0.12, tip_y + 0.038), (tip_x - 0.12, tip_y - 0.038)],
                         closed=True, color=colour, zorder=6))


def _draw_node(ax, slot: _Slot, x: float) -> None:
    from matplotlib.patches import Circle, FancyBboxPatch

    kind = "inner" if not slot.text.startswith("$") else ("output" if "{k}" in slot.text else "input")
    style = dict(fc=_NODE_FILL[kind], ec="#404040", lw=1.2, zorder=4)
    if kind == "inner":
        ax.add_patch(Circle((x, slot.y), slot.height / 2, **style))
    else:
        w, h = slot.width - 0.06, slot.height
        ax.add_patch(FancyBboxPatch((x - w / 2, slot.y - h / 2), w, h,
                                    boxstyle="round,pad=0.0,rounding_size=0.1", **style))
    ax.text(x, slot.y, slot.text, ha="center", va="center", fontsize=_NODE_PT, zorder=5)


def _legend(ax, x_centre: float, y: float) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=FAMILY_COLOURS[f], lw=2, label=label)
               for f, label in (("conv", "sep/dil conv"), ("pool", "pooling"), ("skip", "skip"))]
    ax.legend(handles=handles, loc="center", bbox_to_anchor=(x_centre, y), bbox_transform=ax.transData,
              ncol=3, frameon=False, fontsize=9, handlelength=1.6, columnspacing=1.2)


# ---------------------------------------------------------------- rendering and files
def _png_with_graphviz(dot_text: str, required: bool = False) -> bytes | None:
    """PNG bytes from Graphviz's `dot`, or None (with a warning if it fails, or is missing but required)."""
    exe = shutil.which("dot")
    if exe is None:
        if required:
            warnings.warn("graphviz dot is not installed; drawing with matplotlib instead", stacklevel=3)
        return None
    try:
        proc = subprocess.run([exe, "-Tpng"], input=dot_text.encode("utf-8"), capture_output=True,
                              timeout=_DOT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        warnings.warn(f"graphviz dot failed ({e}); drawing with matplotlib instead", stacklevel=3)
        return None
    if proc.returncode != 0 or not proc.stdout.startswith(b"\x89PNG"):
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
        warnings.warn(f"graphviz dot failed (exit {proc.returncode}: {err}); drawing with matplotlib instead",
                      stacklevel=3)
        return None
    return proc.stdout


def _png_with_matplotlib(edges: Sequence[Edge], concat: Sequence[int], title: str) -> bytes:
    fig = _figure(_cell_edges(edges, concat), title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, facecolor="white")
    return buf.getvalue()


def draw_genotype(genotype: Genotype, out_dir: str | Path, name_prefix: str = "", *, label: str = "",
                  engine: str = "auto") -> list[Path]:
    """Write `{prefix}normal.dot/.png` and `{prefix}reduction.dot/.png` into `out_dir`; return the paths.

    `label` (e.g. the genotype's name) goes into the titles; `engine` is "auto" (Graphviz if installed,
    else matplotlib), "graphviz" (falls back to matplotlib with a warning) or "matplotlib".
    """
    if engine not in ("auto", "graphviz", "matplotlib"):
        raise ValueError(f"engine must be auto, graphviz or matplotlib, got {engine!r}")
    out_dir = Path(out_dir)
    written = []
    for cell, edges, concat in (("normal", genotype.normal, genotype.normal_concat),
                                ("reduction", genotype.reduce, genotype.reduce_concat)):
        title = f"{label} - {cell} cell" if label else f"{cell} cell"
        dot_text = genotype_to_dot(edges, concat, title)
        written.append(write_text(out_dir / f"{name_prefix}{cell}.dot", dot_text))
        png = _png_with_graphviz(dot_text, engine == "graphviz") if engine != "matplotlib" else None
        if png is None:
            png = _png_with_matplotlib(edges, concat, title)
        written.append(write_bytes(out_dir / f"{name_prefix}{cell}.png", png))
    return written
