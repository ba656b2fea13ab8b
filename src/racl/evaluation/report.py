"""Tables of evaluation results: a console table and markdown for results.md / transfer.md."""
from __future__ import annotations

from typing import Any

from racl.attacks.eps import format_eps


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def settings_text(s: dict[str, Any]) -> str:
    """'L-inf, 20 steps of 2/255' (what an attack ran, for the console and results.md)."""
    if s.get("attack") == "AutoAttack":
        return f"{s['norm']}, {s['version']}: {'+'.join(s['attacks'])}"
    steps = f"{s['steps']} step{'s' if s['steps'] != 1 else ''} of {format_eps(s['step_size'])}"
    extra = ", margin loss" if s.get("loss") == "margin" else ""
    return f"{s['norm']}, {steps}{extra}{', random start' if s.get('random_start') else ''}"


def _ran(result: dict[str, Any], name: str) -> str:
    """What attack `name` ran (norm, steps, step size), from the result's per-attack settings."""
    settings = result.get("attacks", {}).get(name)
    return settings_text(settings) if settings else "-"


def _ran_transfer(matrix: dict[str, Any]) -> str:
    return settings_text(matrix["settings"]) if matrix.get("settings") else "-"


def norms_text(result: dict[str, Any]) -> str:
    """The norm(s) the attacks ran: 'L-inf', or 'L-inf: fgsm, pgd20; L2: pgdl2_20' when they differ."""
    by_norm: dict[str, list[str]] = {}
    for name in result["robust_accuracy"]:
        norm = result.get("attacks", {}).get(name, {}).get("norm", "L-inf")
        by_norm.setdefault(norm, []).append(name)
    if len(by_norm) <= 1:
        return next(iter(by_norm), "no attack")
    return "; ".join(f"{norm}: {', '.join(names)}" for norm, names in by_norm.items())


def result_rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(name, what it ran, accuracy %, seconds) rows: clean, each attack, worst case over all attacks."""
    rows = [("clean", "-", _pct(result["clean_accuracy"]), "-")]
    for name, acc in result["robust_accuracy"].items():
        rows.append((name, _ran(result, name), _pct(acc), f"{result['seconds'][name]:.1f}"))
    if len(result["robust_accuracy"]) > 1:
        rows.append(("worst case (all attacks)", "-", _pct(result["worst_case_accuracy"]), "-"))
    return rows


def console_table(result: dict[str, Any]) -> str:
    rows = result_rows(result)
    w0, w1 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows + [("", "runs")])
    head = f"eps = {result['eps_text']} ({norms_text(result)}), {result['n_images']} images"
    lines = [head, f"{'attack':<{w0}}  {'runs':<{w1}}  {'acc %':>7}  {'seconds':>8}"]
    lines += [f"{n:<{w0}}  {r:<{w1}}  {a:>7}  {s:>8}" for n, r, a, s in rows]
    return "\n".join(lines)


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def results_markdown(result: dict[str, Any]) -> str:
    """results.md: the accuracy table (with what each attack ran), the eps sweep if any, and the checks."""
    lines = ["# Robustness evaluation", "",
             f"- checkpoint: `{result.get('checkpoint', '-')}`",
             f"- eps: {result['eps_text']} ({norms_text(result)}), images: {result['n_images']} "
             f"({result.get('split', '-')} split), seed: {result['seed']}", ""]
    lines += _md_table(["attack", "runs", "accuracy (%)", "seconds"], [list(r) for r in result_rows(result)])
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
    lines = [f"# Transfer attack: {matrix['attack']} ({_ran_transfer(matrix)}), eps {matrix['eps_text']}, "
             f"{matrix['n_images']} images",
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
    lines = [f"transfer {matrix['attack']} ({_ran_transfer(matrix)}) eps {matrix['eps_text']}: rows = source, "
             "columns = target",
             " " * width + "".join(f"{n[:width]:>{width + 2}}" for n in names)]
    for src, row in zip(matrix["sources"], matrix["accuracy"]):
        lines.append(f"{src[:width]:<{width}}" + "".join(f"{_pct(a):>{width + 2}}" for a in row))
    return "\n".join(lines)
