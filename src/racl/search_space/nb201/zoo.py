"""Well-known NAS-Bench-201 cells by name, each with where it comes from, and `resolve_cell` for the CLI."""
from __future__ import annotations

from pathlib import Path

from racl.errors import RaclError, shown
from racl.search_space.nb201.genotype import Nb201Genotype
from racl.search_space.nb201.index import from_index

_CELLS = {
    "best_cifar10": (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
        "the best CIFAR-10 cell by mean test accuracy as far as we could establish without the benchmark file: "
        "its three runs (94.26, 94.68, 94.18, as printed by third-party NB201 queries) average 94.37, the optimum "
        "NAS-Bench-201 reports for CIFAR-10; check with the NB201 API's find_best",
    ),
    "resnet": (
        "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|",
        "AutoDL-Projects cell_searchs/genotypes.py ResNet_CODE (two 3x3 convs plus the cell's identity "
        "shortcut), written out with its none edges",
    ),
    "all_skip": (
        "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
        "what DARTS (first and second order, 3 seeds each) finds on CIFAR-10: AutoDL-Projects docs/NATS-Bench.md, "
        "'Final Discovered Architectures' (AllIdentity_CODE in cell_searchs/genotypes.py)",
    ),
    "all_conv3x3": (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        "AutoDL-Projects cell_searchs/genotypes.py AllConv3x3_CODE; the largest NB201 network",
    ),
    "gdas_cifar10": (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        "GDAS's first CIFAR-10 run in AutoDL-Projects docs/NATS-Bench.md, 'Final Discovered Architectures' "
        "(the RACL paper compares with GDAS on NB201)",
    ),
}

ZOO: dict[str, Nb201Genotype] = {name: Nb201Genotype.from_string(arch) for name, (arch, _) in _CELLS.items()}
SOURCES: dict[str, str] = {name: source for name, (_, source) in _CELLS.items()}


def list_cells() -> list[str]:
    return list(ZOO)


def get_cell(name: str) -> Nb201Genotype:
    """A zoo cell by name (case-insensitive, '-' and '_' alike)."""
    key = name.lower().replace("-", "_")
    if key not in ZOO:
        raise RaclError(f"unknown NB201 zoo cell {shown(name)}; zoo has: {', '.join(ZOO)}")
    return ZOO[key]


def resolve_cell(text: str) -> Nb201Genotype:
    """An NB201 cell from the command line: a zoo name, an architecture string, a benchmark index, or the path
    of an NB201 genotype JSON file."""
    text = text.strip()
    if text.lower().replace("-", "_") in ZOO:
        return get_cell(text)
    if text.startswith("|") or "~" in text:
        return Nb201Genotype.from_string(text)
    if text.isdigit():
        return from_index(int(text))
    path = Path(text)
    if path.suffix == ".json" or path.exists():
        return Nb201Genotype.load(path)
    raise RaclError(f"{shown(text)} is neither an NB201 zoo cell ({', '.join(ZOO)}), an architecture string "
                    "(|op~0|+|op~0|op~1|+|op~0|op~1|op~2|), a benchmark index (0..15624) nor a genotype JSON file")
