"""A labelled image folder (zip) of images the claim experiment never saw, for re-checking its figures.

The claim experiment (benchmarks/claim.sh) reads the shared CIFAR-10 zip with `--limit 500`: the
first 500 files of each class folder, in racl's listing order. This writes N other images per class
(the next ones in that order, none of which any search, training or evaluation read) as a zip in the
same <class>/<image> layout, to be used as `racl evaluate --test-dir OUT.zip`:

    .venv/bin/python benchmarks/unseen_folder.py ../shared/data/cifar10-train-jpg.zip /tmp/unseen.zip 100
    .venv/bin/racl evaluate --checkpoint runs/claim32/pgd2/compare-reference/runs/DARTS_V2/seed0/train/last.safetensors \
        --dataset imagefolder --data-dir ../shared/data/cifar10-train-jpg.zip --limit 500 --data-seed 0 \
        --test-dir /tmp/unseen.zip --attacks pgd20,cw --out /tmp/unseen-darts_v2

Never commit the output (data stays out of the repository).
"""
from __future__ import annotations

import os
import sys
import zipfile

from racl.data.imagefolder import list_folder

USED_PER_CLASS = 500  # claim.sh's --limit


def main(source: str, out: str, per_class: int) -> None:
    used = {tuple(p) for p in list_folder(source, limit=USED_PER_CLASS).splits["train"].files}
    listing = list_folder(source)
    every, classes = listing.splits["train"], listing.classes
    chosen: dict[int, list[tuple[str, ...]]] = {}
    for parts, label in zip(every.files, every.labels):
        if tuple(parts) not in used and len(chosen.setdefault(label, [])) < per_class:
            chosen[label].append(tuple(parts))
    short = [classes[k] for k in range(len(classes)) if len(chosen.get(k, [])) < per_class]
    if short:
        raise SystemExit(f"error: fewer than {per_class} unused images in class(es) {', '.join(short)}")
    tmp = out + ".tmp"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(tmp, "w") as dst:
        for label, files in sorted(chosen.items()):
            for parts in files:  # the listing's parts are the zip member's path (train/<class>/<image>)
                dst.writestr(f"{classes[label]}/{parts[-1]}", src.read("/".join(parts)))
    os.replace(tmp, out)
    print(f"{out}: {per_class} unseen images per class x {len(classes)} classes")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: unseen_folder.py SOURCE.zip OUT.zip IMAGES_PER_CLASS")
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
