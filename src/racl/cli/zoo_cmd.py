"""`racl zoo list | show NAME [--json] | draw NAME --out DIR`: the published genotypes and the
hand-designed networks (resnet18, wrn34_10, mobilenet_v2) that every command takes by name."""
from __future__ import annotations

import argparse
import json

from racl.models import HAND_DESIGNED, build_model, count_parameters, hand_designed
from racl.search_space import list_genotypes, resolve_genotype
from racl.search_space.draw import draw_genotype


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="published genotypes and hand-designed networks: list, show, draw")
    zsub = p.add_subparsers(dest="zoo_command", metavar="ACTION")
    zsub.required = True
    zsub.add_parser("list", help="print the zoo's names: genotypes, then hand-designed networks").set_defaults(
        func=_list)
    show = zsub.add_parser("show", help="print a genotype (or a hand-designed network) with its parameter count")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=_show)
    draw = zsub.add_parser("draw", help="write DOT and PNG pictures of both cells")
    draw.add_argument("name", help="zoo name or genotype JSON file")
    draw.add_argument("--out", required=True)
    draw.set_defaults(func=_draw)


def _list(args: argparse.Namespace) -> int:
    print("\n".join([*list_genotypes(), *HAND_DESIGNED]))
    return 0


def describe(name: str) -> dict:
    """Name, genotype, and parameters of the standard CIFAR-10 network (C = 36, 20 cells, no aux head);
    for a hand-designed network, its CIFAR-10 parameters and genotype None."""
    if hand_designed(name):
        model = build_model(name, num_classes=10)
        return {"name": hand_designed(name), "genotype": None, "params": count_parameters(model),
                "network": {"num_classes": 10, "auxiliary_head_counted": False}}
    genotype = resolve_genotype(name)
    model = build_model(genotype, num_classes=10, channels=36, layers=20, auxiliary=False)
    return {"name": name, "genotype": genotype.to_dict(), "params": count_parameters(model),
            "network": {"channels": 36, "layers": 20, "num_classes": 10, "auxiliary_head_counted": False}}


def _show(args: argparse.Namespace) -> int:
    info = describe(args.name)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    if info["genotype"] is None:
        print(f"{info['name']}: {info['params'] / 1e6:.2f}M parameters (hand-designed, CIFAR-10)")
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
