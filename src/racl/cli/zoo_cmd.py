"""`racl zoo list [--space S] | show NAME [--json] | draw NAME --out DIR`: the published cells of every
search space and the hand-designed networks (resnet18, wrn34_10, mobilenet_v2) every command takes by name."""
from __future__ import annotations

import argparse
import json

from racl.models import HAND_DESIGNED, build_model, count_parameters, hand_designed
from racl.search_space import list_spaces, resolve_genotype, space_of
from racl.search_space.resolve import zoo_names


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="published cells and hand-designed networks: list, show, draw")
    zsub = p.add_subparsers(dest="zoo_command", metavar="ACTION")
    zsub.required = True
    listing = zsub.add_parser("list", help="print the zoo's names: cells (by space), then hand-designed networks")
    listing.add_argument("--space", choices=list_spaces(), help="only this search space's cells")
    listing.set_defaults(func=_list)
    show = zsub.add_parser("show", help="print a cell (or a hand-designed network) with its parameter count")
    show.add_argument("name", help="zoo name, genotype JSON file, NB201 architecture string or hand-designed name")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=_show)
    draw = zsub.add_parser("draw", help="write DOT and PNG pictures of the cells")
    draw.add_argument("name", help="zoo name, genotype JSON file or NB201 architecture string")
    draw.add_argument("--out", required=True, metavar="DIR", help="folder for the pictures (the space's cells: "
                      "DARTS normal.{dot,png} and reduction.{dot,png}, NB201 cell.{dot,png})")
    draw.set_defaults(func=_draw)


def _list(args: argparse.Namespace) -> int:
    names = zoo_names(args.space)
    print("\n".join(names if args.space else [*names, *HAND_DESIGNED]))
    return 0


def describe(name: str) -> dict:
    """Name, genotype and parameters of the space's standard CIFAR-10 network (DARTS: C = 36, 20 cells,
    no aux head; NB201: C = 16, 5 cells per stage); for a hand-designed network, genotype None."""
    if hand_designed(name):
        model = build_model(name, num_classes=10)
        return {"name": hand_designed(name), "genotype": None, "params": count_parameters(model),
                "network": {"num_classes": 10, "auxiliary_head_counted": False}}
    genotype = resolve_genotype(name)
    space = space_of(genotype)
    size = {k: v for k, v in space.network_defaults.items() if k in ("channels", "layers")}
    model = build_model(genotype, num_classes=10, auxiliary=False, **size)
    return {"name": name, "space": space.name, "genotype": genotype.to_dict(), "params": count_parameters(model),
            "network": {**size, "num_classes": 10, "auxiliary_head_counted": False}}


def _show(args: argparse.Namespace) -> int:
    info = describe(args.name)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    if info["genotype"] is None:
        print(f"{info['name']}: {info['params'] / 1e6:.2f}M parameters (hand-designed, CIFAR-10)")
        return 0
    net = info["network"]
    print(f"{info['name']}: {info['params'] / 1e6:.2f}M parameters ({info['space']} space, C={net['channels']}, "
          f"{net['layers']} cells{' per stage' if info['space'] == 'nb201' else ''}, CIFAR-10)")
    if info["space"] != "darts":
        print(f"  cell: {space_of(resolve_genotype(args.name)).describe(resolve_genotype(args.name))}")
        return 0
    for cell in ("normal", "reduce"):
        edges = info["genotype"][cell]
        nodes = [f"{edges[k][0]}({edges[k][1]}) + {edges[k + 1][0]}({edges[k + 1][1]})"
                 for k in range(0, len(edges), 2)]
        print(f"  {cell:6s}: " + " | ".join(nodes))
    return 0


def _draw(args: argparse.Namespace) -> int:
    genotype = resolve_genotype(args.name)
    for path in space_of(genotype).draw(genotype, args.out, label=args.name):
        print(path)
    return 0
