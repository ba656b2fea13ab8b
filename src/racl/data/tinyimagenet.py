"""Tiny-ImageNet (200 classes, 64x64) in its official layout, from the directory or zip as downloaded:

    tiny-imagenet-200/wnids.txt                        the 200 class ids (wnids), one a line
    tiny-imagenet-200/train/<wnid>/images/*.JPEG       500 per class (+ <wnid>_boxes.txt, skipped)
    tiny-imagenet-200/val/images/*.JPEG                10,000 images
    tiny-imagenet-200/val/val_annotations.txt          <file>\\t<wnid>\\t<box>: the val labels
The unlabelled test/ folder and words.txt are not used. Class order: the wnids sorted (as ImageFolder
orders train/). Every annotation must name a known wnid and an image that exists, and every val image
must be annotated: a mismatch is an error, never a silently smaller split.
"""
from __future__ import annotations

from racl.data.folder import Folder, Parts, hidden
from racl.data.layout import FileList, Listing, is_image
from racl.errors import RaclError

LAYOUT = "train/<wnid>/images/*.JPEG, val/images/*.JPEG, val/val_annotations.txt, wnids.txt"


def _text(folder: Folder, parts: Parts) -> list[str]:
    try:
        return folder.read(parts).decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise RaclError(f"{folder.name(parts)} is not a text file ({e}); the download may be damaged") from e


def _wnids(top: Folder) -> tuple[str, ...]:
    wnids = [line.strip() for line in _text(top, ("wnids.txt",)) if line.strip()]
    if len(set(wnids)) != len(wnids) or len(wnids) < 2:
        raise RaclError(f"{top.name(('wnids.txt',))} must list at least 2 distinct class ids, one a line; "
                        f"it lists {len(wnids)} ({len(set(wnids))} distinct)")
    return tuple(sorted(wnids))


def _train(top: Folder, files: list[Parts], classes: tuple[str, ...], limit: int | None) -> FileList:
    label = {c: i for i, c in enumerate(classes)}
    per_class: dict[str, list[Parts]] = {c: [] for c in classes}
    for p in files:
        if len(p) == 4 and p[2] == "images" and is_image(p[3]):
            if p[1] not in label:
                raise RaclError(f"{top.name(p[:2])} is not a class in wnids.txt; remove it or fix wnids.txt")
            per_class[p[1]].append(p)
        elif not (len(p) == 3 and p[2].lower().endswith(".txt")):  # <wnid>_boxes.txt
            raise RaclError(f"{top.name(p)} is not where Tiny-ImageNet keeps images ({LAYOUT}); move or remove it")
    empty = [c for c, fs in per_class.items() if not fs]
    if empty:
        raise RaclError(f"class {empty[0]} of wnids.txt has no images in {top.name(('train', empty[0], 'images'))}"
                        f"{f' (nor {len(empty) - 1} other classes)' if len(empty) > 1 else ''}")
    chosen = [(p, label[c]) for c, fs in per_class.items() for p in fs[:limit]]
    return FileList(top, [p for p, _ in chosen], [y for _, y in chosen])


def _annotations(top: Folder, classes: tuple[str, ...]) -> dict[str, str]:
    where = top.name(("val", "val_annotations.txt"))
    known, labels = set(classes), {}
    for n, line in enumerate(_text(top, ("val", "val_annotations.txt")), start=1):
        if not line.strip():
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) < 2:
            raise RaclError(f"{where} line {n}: expected <file> <wnid> ..., got {line.strip()[:60]!r}")
        name, wnid = fields[0].strip(), fields[1].strip()
        if wnid not in known:
            raise RaclError(f"{where} line {n}: {name} is labelled {wnid!r}, which is not a class in wnids.txt")
        if name in labels:
            raise RaclError(f"{where} line {n}: {name} is listed twice")
        labels[name] = wnid
    return labels


def _val(top: Folder, files: list[Parts], classes: tuple[str, ...], limit: int | None) -> FileList:
    if ("val", "val_annotations.txt") not in set(files):
        raise RaclError(f"{top.name(('val', 'val_annotations.txt'))} not found: it holds the val labels "
                        f"(Tiny-ImageNet layout: {LAYOUT})")
    labels = _annotations(top, classes)
    images = {}
    for p in files:
        if len(p) == 3 and p[1] == "images" and is_image(p[2]):
            images[p[2]] = p
        elif p != ("val", "val_annotations.txt"):
            raise RaclError(f"{top.name(p)} is not where Tiny-ImageNet keeps images ({LAYOUT}); move or remove it")
    missing = sorted(set(labels) - set(images))
    if missing:
        raise RaclError(f"val_annotations.txt lists {missing[0]} but {top.name(('val', 'images', missing[0]))} "
                        f"does not exist{f' (nor {len(missing) - 1} more)' if len(missing) > 1 else ''}")
    unlabelled = sorted(set(images) - set(labels))
    if unlabelled:
        raise RaclError(f"{top.name(images[unlabelled[0]])} is not in val_annotations.txt"
                        f"{f' (nor {len(unlabelled) - 1} more)' if len(unlabelled) > 1 else ''}; "
                        "add its label or remove it")
    label = {c: i for i, c in enumerate(classes)}
    per_class: dict[str, list[Parts]] = {c: [] for c in classes}
    for name in sorted(images):
        per_class[labels[name]].append(images[name])
    chosen = [(p, label[c]) for c, fs in per_class.items() for p in fs[:limit]]
    return FileList(top, [p for p, _ in chosen], [y for _, y in chosen])


def tinyimagenet_listing(folder: Folder, limit: int | None = None) -> Listing:
    """The official train and val splits of a Tiny-ImageNet folder (see the module docstring)."""
    visible = [p for p in folder.files if not hidden(p)]
    roots = sorted((p[:-1] for p in visible if p[-1] == "wnids.txt"), key=len)
    if not roots:
        raise RaclError(f"{folder.where} has no wnids.txt: not the Tiny-ImageNet layout ({LAYOUT})")
    top = folder.sub(roots[0])
    classes = _wnids(top)
    files = [p for p in top.files if not hidden(p)]
    train = _train(top, [p for p in files if p[0] == "train" and len(p) > 1], classes, limit)
    val = _val(top, [p for p in files if p[0] == "val" and len(p) > 1], classes, limit)
    return Listing(classes, {"train": train, "val": val}, "tinyimagenet")
