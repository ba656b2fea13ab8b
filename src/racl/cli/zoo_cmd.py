"""`racl zoo list | show NAME [--json] | draw NAME --out DIR`."""
from __future__ import annotations

import argparse
import json

from racl.models import build_model, count_parameters
from racl.search_space import list_genotypes, resolve_genotype
from racl.search_space.draw import draw_genotype


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="published genotypes: list, show, draw")
    zsub = p.add_subparsers(dest="zoo_command", metavar="ACTION")
    zsub.required = True
    zsub.add_parser("list", help="print the zoo's names").set_defaults(func=_list)
    show = zsub.add_parser("show", help="print a genotype with its parameter count")
    show.add_argument("name", help="zoo name (racl zoo list) or genotype JSON file")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=_show)
    draw = zsub.add_parser("draw", help="write DOT and PNG pictures of both cells")
    draw.add_argument("name", help="zoo name or genotype JSON file")
    draw.add_argument("--out", required=True, metavar="DIR", help="folder for normal.{dot,png} and reduction.{dot,png}")
    draw.set_defaults(func=_draw)


def _list(args: argparse.Namespace) -> int:
    print("\n".join(list_genotypes()))
    return 0


def describe(name: str) -> dict:
    """Name, genotype, and parameters of the standard CIFAR-10 network (C = 36, 20 cells, no aux head)."""
    genotype = resolve_genotype(name)
    model = build_model(genotype, num_classes=10, channels=36, layers=20, auxiliary=False)
    return {"name": name, "genotype": genotype.to_dict(), "params": count_parameters(model),
            "network": {"channels": 36, "layers": 20, "num_classes": 10, "auxiliary_head_counted": False}}


def _show(args: argparse.Namespace) -> int:
    info = describe(args.name)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['name']}: {info['params'] / 1e6:.2f}M parameters (C=36, 20 cells, CIFAR-10)")
    for cell in ("normal", "reduce"):
        edges = info["genotype"][cell]
        nodes = [f"{edges[k][0]}({edges[k][1]}) + {edges[k + 1][0]}({edges[k + 1][1]})"
                 for k in range(0, len(edges), 2)]
        print(f"  {cell:6s}: " + " | ".join(nodes))
    return 0


def _draw(args: argparse.Namespace) -> int:
    for path in draw_genotype(resolve_genotype(args.name), args.out, label=args.name):
        print(path)
    return 0
