"""Tables of evaluation results: a console table and markdown for results.md / transfer.md."""
from __future__ import annotations

from typing import Any


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def result_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, accuracy %, seconds) rows: clean, each attack, worst case over all attacks."""
    rows = [("clean", _pct(result["clean_accuracy"]), "-")]
    for name, acc in result["robust_accuracy"].items():
        rows.append((name, _pct(acc), f"{result['seconds'][name]:.1f}"))
    if len(result["robust_accuracy"]) > 1:
        rows.append(("worst case (all attacks)", _pct(result["worst_case_accuracy"]), "-"))
    return rows


def console_table(result: dict[str, Any]) -> str:
    rows = result_rows(result)
    width = max(len(r[0]) for r in rows)
    head = f"eps = {result['eps_text']} (L-inf), {result['n_images']} images"
    lines = [head, f"{'attack':<{width}}  {'acc %':>7}  {'seconds':>8}"]
    lines += [f"{n:<{width}}  {a:>7}  {s:>8}" for n, a, s in rows]
    return "\n".join(lines)


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def results_markdown(result: dict[str, Any]) -> str:
    """results.md: the accuracy table, the eps sweep if any, and the warnings."""
    lines = ["# Robustness evaluation", "",
             f"- checkpoint: `{result.get('checkpoint', '-')}`",
             f"- eps: {result['eps_text']} (L-inf), images: {result['n_images']} "
             f"({result.get('split', '-')} split), seed: {result['seed']}", ""]
    lines += _md_table(["attack", "accuracy (%)", "seconds"], [list(r) for r in result_rows(result)])
    sweep = result.get("eps_sweep")
    if sweep:
        lines += ["", "## Robust accuracy (%) vs eps", ""]
        lines += _md_table(["attack"] + sweep["eps_text"],
                           [[n] + [_pct(a) for a in accs] for n, accs in sweep["robust_accuracy"].items()])
    lines += ["", "## Checks", ""]
    lines += [f"- WARNING: {w}" for w in result.get("warnings", [])] or ["- all checks passed"]
    return "\n".join(lines) + "\n"


def transfer_markdown(matrix: dict[str, Any]) -> str:
    """transfer.md: rows = source (where examples are crafted), columns = target; diagonal = white-box."""
    names = matrix["targets"]
    lines = [f"# Transfer attack: {matrix['attack']}, eps {matrix['eps_text']}, {matrix['n_images']} images",
             "", "Robust accuracy (%) of the target (column) on examples crafted on the source (row); "
             "the diagonal is the white-box attack.", ""]
    rows = [[f"**{src}**"] + [(f"**{_pct(a)}**" if i == j else _pct(a)) for j, a in enumerate(row)]
            for i, (src, row) in enumerate(zip(matrix["sources"], matrix["accuracy"]))]
    rows.append(["clean"] + [_pct(matrix["clean_accuracy"][n]) for n in names])
    lines += _md_table(["source \\ target"] + names, rows)
    lines += ["", "## Checks", ""]
    lines += [f"- WARNING: {w}" for w in matrix.get("warnings", [])] or ["- all checks passed"]
    return "\n".join(lines) + "\n"


def transfer_console(matrix: dict[str, Any]) -> str:
    names = matrix["targets"]
    width = max(12, *(len(n) for n in names))
    lines = [f"transfer {matrix['attack']} eps {matrix['eps_text']}: rows = source, columns = target",
             " " * width + "".join(f"{n[:width]:>{width + 2}}" for n in names)]
    for src, row in zip(matrix["sources"], matrix["accuracy"]):
        lines.append(f"{src[:width]:<{width}}" + "".join(f"{_pct(a):>{width + 2}}" for a in row))
    return "\n".join(lines)
