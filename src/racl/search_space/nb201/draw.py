"""A picture of an NB201 cell: Graphviz DOT text and a PNG (Graphviz's `dot` when installed, otherwise a
matplotlib drawing on a fixed layout: the 4 nodes in a row, edges that skip a node arched above or below).
Colours and the Graphviz call are racl.search_space.draw's; `none` edges are drawn dashed and grey."""
from __future__ import annotations

import io
from pathlib import Path

from racl.io import write_bytes, write_text
from racl.search_space.darts.draw import FAMILY_COLOURS, _dot_quote, _png_with_graphviz, op_family
from racl.search_space.nb201.genotype import NODES, Nb201Genotype

_NONE_COLOUR = FAMILY_COLOURS["concat"]
_NODE_LABELS = {0: "0 (in)", NODES - 1: f"{NODES - 1} (out)"}
_ARCS = {(0, 2): -0.45, (1, 3): 0.45, (0, 3): -0.5}  # matplotlib arc3 curvature of the edges that skip nodes


def _colour(op: str) -> str:
    return _NONE_COLOUR if op == "none" else FAMILY_COLOURS[op_family(op)]


def _label(node: int) -> str:
    return _NODE_LABELS.get(node, str(node))


def cell_to_dot(genotype: Nb201Genotype, title: str = "") -> str:
    """Graphviz DOT text: nodes 0 (input) .. 3 (output), one labelled edge per op."""
    lines = ["digraph cell {",
             f"  graph [rankdir=LR, label={_dot_quote(title)}, labelloc=t, fontsize=20, fontname=helvetica];",
             "  node [shape=circle, style=filled, fillcolor=\"#dbe9f6\", fontname=helvetica, fontsize=16];",
             "  edge [fontname=helvetica, fontsize=13, penwidth=1.5];"]
    lines += [f"  n{node} [label={_dot_quote(_label(node))}];" for node in range(NODES)]
    for src, dst, op in genotype.edges():
        style = ", style=dashed" if op == "none" else ""
        colour = _dot_quote(_colour(op))
        lines.append(f"  n{src} -> n{dst} [label={_dot_quote(op)}, color={colour}, fontcolor={colour}{style}];")
    return "\n".join(lines) + "\n}\n"


def _png_with_matplotlib(genotype: Nb201Genotype, title: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle, FancyArrowPatch

    inch_per_unit, (bottom, top) = 1.875, (-0.85, 1.35)  # data units: one per node, equal aspect
    fig = Figure(figsize=(NODES * inch_per_unit, (top - bottom) * inch_per_unit))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-0.5, NODES - 0.5)
    ax.set_ylim(bottom, top)
    ax.axis("off")
    radius = 0.2
    shrink = radius * inch_per_unit * 72 + 2  # points: arrows end at the node circles
    for src, dst, op in genotype.edges():
        rad = _ARCS.get((src, dst), 0.0)
        ax.add_patch(FancyArrowPatch((src, 0), (dst, 0), connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                     mutation_scale=14, shrinkA=shrink, shrinkB=shrink, lw=1.6,
                                     color=_colour(op), linestyle="--" if op == "none" else "-", zorder=1))
        span = dst - src  # arc3's midpoint sits rad * span / 2 off the chord (perpendicular, y up = -rad)
        y = -rad * span / 2 if rad else 0.12
        ax.text((src + dst) / 2, y, op, ha="center", va="center", fontsize=9, color=_colour(op), zorder=3,
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none"))
    for node in range(NODES):
        ax.add_patch(Circle((node, 0), radius, fc="#dbe9f6", ec="#404040", lw=1.2, zorder=4))
        ax.text(node, 0, str(node), ha="center", va="center", fontsize=12, zorder=5)
        if node in (0, NODES - 1):
            ax.text(node, -radius - 0.12, "input" if node == 0 else "output", ha="center", va="center", fontsize=9)
    size = 12 if len(title) <= 60 else max(6.0, 12 * 60 / len(title))  # an architecture string as the label
    ax.text((NODES - 1) / 2, 1.2, title, ha="center", va="center", fontsize=size, weight="bold")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, facecolor="white")
    return buf.getvalue()


def draw_cell(genotype: Nb201Genotype, out_dir: str | Path, name: str = "cell", *, label: str = "",
              engine: str = "auto") -> list[Path]:
    """Write `{name}.dot` and `{name}.png` into `out_dir`; `engine` as in racl.search_space.draw."""
    if engine not in ("auto", "graphviz", "matplotlib"):
        raise ValueError(f"engine must be auto, graphviz or matplotlib, got {engine!r}")
    title = f"{label} - NB201 cell" if label else "NB201 cell"
    dot_text = cell_to_dot(genotype, title)
    out_dir = Path(out_dir)
    written = [write_text(out_dir / f"{name}.dot", dot_text)]
    png = _png_with_graphviz(dot_text, engine == "graphviz") if engine != "matplotlib" else None
    if png is None:
        png = _png_with_matplotlib(genotype, title)
    written.append(write_bytes(out_dir / f"{name}.png", png))
    return written
