"""Tests for racl.data: sources, image folders (dir and zip), splits, augmentation, batching."""
from __future__ import annotations

import argparse
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from racl.data import (
    DATASETS,
    ArrayDataset,
    AugmentConfig,
    add_data_arguments,
    augment_batch,
    balanced_subset,
    data_from_args,
    iterate_batches,
    load_data,
    load_data_from_spec,
)
from racl.data import decode as decode_mod
from racl.data.augment import crop_shift
from racl.data.imagefolder import load_image_folder
from racl.errors import RaclError

SHARED_ZIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-train-jpg.zip"


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """Never write decoded-zip caches to the real ~/.cache during tests."""
    monkeypatch.setenv("RACL_CACHE", str(tmp_path / "cache"))


def _png(path: Path, size: int = 8, mode: str = "RGB", seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    arr = rng.integers(0, 256, shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)
    return arr


def _folder(root: Path, classes=("cat", "dog"), per_class: int = 3, size: int = 8) -> Path:
    for c, cls in enumerate(classes):
        for i in range(per_class):
            _png(root / "train" / cls / f"{i:04d}.png", size, seed=10 * c + i)
    return root


def _zip_dir(src: Path, dest: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(src.rglob("*")):
            zf.write(p, p.relative_to(src).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return dest


# ---------------------------------------------------------------- image folders


@pytest.mark.skipif(not SHARED_ZIP.is_file(), reason=f"shared CIFAR-10 zip not found at {SHARED_ZIP}")
def test_shared_zip_limit_reads_only_needed_members(monkeypatch):
    reads = []
    real_read = zipfile.ZipFile.read
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda self, m, pwd=None: reads.append(m) or real_read(self, m, pwd))
    s = load_data("imagefolder", str(SHARED_ZIP), limit=30, seed=0, cache=False)
    assert len(reads) == 300
    assert s.num_classes == 10 and s.channels == 3 and s.image_size == 32
    assert s.class_names[0] == "airplane" and s.class_names[-1] == "truck"
    assert (len(s.train), len(s.val), len(s.test)) == (240, 30, 30)
    assert s.test.class_counts(10).tolist() == [3] * 10
    assert all(0.3 < m < 0.6 for m in s.mean) and all(0.15 < v < 0.35 for v in s.std)


def test_directory_roundtrip_and_grayscale_minority(tmp_path):
    root = _folder(tmp_path / "d")
    gray = _png(root / "train" / "dog" / "9999.png", mode="L")
    ds, names = load_image_folder(root)
    assert names == ("cat", "dog") and ds.images.shape == (7, 3, 8, 8)
    first = np.array(Image.open(root / "train" / "cat" / "0000.png"))
    assert torch.equal(ds.images[0], torch.from_numpy(first).permute(2, 0, 1))  # PNG is lossless
    assert torch.equal(ds.images[-1], torch.from_numpy(gray)[None].expand(3, -1, -1))  # gray -> RGB
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1, 1]


def test_zip_equals_directory_and_hidden_files_skipped(tmp_path):
    root = _folder(tmp_path / "d")
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"junk")
    z = _zip_dir(root, tmp_path / "d.zip", {"__MACOSX/train/cat/._0000.png": b"junk"})
    a, _ = load_image_folder(root)
    b, _ = load_image_folder(z, use_cache=False)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    c, _ = load_image_folder(z, limit=2, use_cache=False)
    assert c.labels.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("bad", ["../evil.png", "/abs/evil.png", "train/cat/../../evil.png", "C:/evil.png"])
def test_zip_slip_refused(tmp_path, bad):
    z = _zip_dir(_folder(tmp_path / "d"), tmp_path / "d.zip", {bad: b"x"})
    with pytest.raises(RaclError, match="unsafe zip entry"):
        load_image_folder(z, use_cache=False)


def test_non_image_file_named(tmp_path):
    root = _folder(tmp_path / "d")
    (root / "train" / "dog" / "notes.txt").write_text("hi")
    with pytest.raises(RaclError, match="notes.txt is not an image"):
        load_image_folder(root)


def test_undecodable_image_named(tmp_path):
    root = _folder(tmp_path / "d")
    (root / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(RaclError, match="broken.png"):
        load_image_folder(root)


def test_jpeg_batch_path_gray_majority_and_broken_jpeg(tmp_path):
    root = tmp_path / "j"
    for c in ("a", "b"):
        for i in range(2):
            (root / c).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8), 40 * i + 100, np.uint8), "L").save(root / c / f"{i}.jpg", quality=95)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8), "RGB").save(root / "a" / "rgb.jpg")
    ds, _ = load_image_folder(root)
    assert ds.images.shape == (5, 1, 8, 8)  # 4 gray vs 1 RGB: gray wins
    assert abs(int(ds.images[1, 0, 4, 4]) - 140) <= 2  # lossy but close
    (root / "b" / "cut.jpg").write_bytes((root / "b" / "0.jpg").read_bytes()[:20])
    with pytest.raises(RaclError, match="cut.jpg"):
        load_image_folder(root)
    # the torchvision batched path (used from 4096 images on) decodes the same pixels as PIL
    files = sorted(root.rglob("*.jpg"))
    datas, names = [f.read_bytes() for f in files], [str(f) for f in files]
    good = [i for i, f in enumerate(files) if f.name != "cut.jpg"]
    fast = decode_mod.decode_many([datas[i] for i in good], [names[i] for i in good], batched=True)
    slow = decode_mod.decode_many([datas[i] for i in good], [names[i] for i in good], batched=False)
    assert all(torch.equal(a, b) for a, b in zip(fast, slow, strict=True))
    with pytest.raises(RaclError, match="cut.jpg"):
        decode_mod.decode_many(datas, names, batched=True)


def test_inconsistent_sizes(tmp_path):
    root = _folder(tmp_path / "d")
    _png(root / "train" / "dog" / "big.png", size=12)
    with pytest.raises(RaclError, match="big.png is 12x12"):
        load_image_folder(root)
    ds, _ = load_image_folder(root, image_size=8)
    assert ds.images.shape == (7, 3, 8, 8)


def test_empty_class_folder(tmp_path):
    root = _folder(tmp_path / "d")
    (root / "train" / "eel").mkdir()
    with pytest.raises(RaclError, match="eel has no images"):
        load_image_folder(root)
    z = _zip_dir(root, tmp_path / "d.zip")  # the empty folder is a directory entry in the zip
    with pytest.raises(RaclError, match="eel has no images"):
        load_image_folder(z, use_cache=False)


def test_corrupt_and_truncated_zip(tmp_path):
    z = _zip_dir(_folder(tmp_path / "d"), tmp_path / "d.zip")
    cut = tmp_path / "cut.zip"
    cut.write_bytes(z.read_bytes()[: z.stat().st_size // 2])
    with pytest.raises(RaclError, match="corrupt or truncated"):
        load_image_folder(cut, use_cache=False)
    junk = tmp_path / "junk.zip"
    junk.write_bytes(os.urandom(256))
    with pytest.raises(RaclError, match="not a readable zip"):
        load_image_folder(junk, use_cache=False)


def test_zip_cache_hit_and_invalidation(tmp_path, monkeypatch):
    z = _zip_dir(_folder(tmp_path / "d"), tmp_path / "d.zip")
    first, _ = load_image_folder(z)
    monkeypatch.setattr("racl.data.imagefolder.decode_many", lambda *a, **k: pytest.fail("decoded despite cache"))
    again, names = load_image_folder(z)
    assert torch.equal(first.images, again.images) and names == ("cat", "dog")
    os.utime(z, ns=(1, 1))  # a changed mtime must miss the cache
    with pytest.raises(pytest.fail.Exception):
        load_image_folder(z)


def test_missing_paths_and_bad_arguments(tmp_path):
    with pytest.raises(RaclError, match="image folder not found"):
        load_data("imagefolder", str(tmp_path / "nope"))
    with pytest.raises(RaclError, match="data dir not found"):
        load_data("cifar10", str(tmp_path / "nope"))
    with pytest.raises(RaclError, match="--download"):
        load_data("cifar10", str(tmp_path))  # exists but holds no CIFAR files
    with pytest.raises(RaclError, match="known: cifar10, cifar100, svhn, imagefolder, digits, synthetic"):
        load_data("mnist")
    for val, test in [(-0.1, 0.1), (1.0, 0.0), (0.6, 0.5)]:
        with pytest.raises(RaclError, match="fraction"):
            load_data("synthetic", val_fraction=val, test_fraction=test)
    with pytest.raises(RaclError, match="unknown option"):
        load_data("synthetic", colour="red")
    assert DATASETS == ("cifar10", "cifar100", "svhn", "imagefolder", "digits", "synthetic", "tinyimagenet")


# ---------------------------------------------------------------- sources and splits


def test_torchvision_sets_keep_official_test_split(tmp_path, monkeypatch):
    def fake(name, root, train, download):  # stands in for torchvision (no CIFAR files offline)
        n = 100 if train else 40
        images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
        return ArrayDataset(images, torch.arange(n) % 10), tuple(f"c{i}" for i in range(10))

    monkeypatch.setattr("racl.data.sources._torchvision_split", fake)
    s = load_data("cifar10", str(tmp_path), val_fraction=0.2, test_fraction=0.5, image_size=16, limit=8)
    assert (len(s.train), len(s.val), len(s.test)) == (60, 20, 40)  # 8/class, 2 val each; test_fraction unused
    assert s.mean == (0.4914, 0.4822, 0.4465) and s.image_size == 16


def test_balanced_subset_takes_every_class_in_turn():
    labels = torch.arange(4).repeat_interleave(10)  # a split as an image folder leaves it: class by class
    idx = balanced_subset(labels, 8)
    assert torch.bincount(labels[idx], minlength=4).tolist() == [2, 2, 2, 2]  # "the first 8" is class 0 only
    assert torch.equal(idx, balanced_subset(labels, 8)) and not torch.equal(idx, balanced_subset(labels, 8, seed=1))
    assert torch.equal(balanced_subset(labels, 4), idx[:4])  # a smaller subset is a prefix of a larger one
    everything = balanced_subset(labels, 100)
    assert sorted(everything.tolist()) == list(range(40))
    uneven = torch.tensor([0] * 6 + [1] * 2)
    assert torch.bincount(uneven[balanced_subset(uneven, 4)]).tolist() == [2, 2]
    assert balanced_subset(torch.empty(0, dtype=torch.int64), 3).numel() == 0


def test_digits():
    s = load_data("digits")
    assert (s.channels, s.image_size, s.num_classes) == (1, 32, 10)
    assert len(s.train) + len(s.val) + len(s.test) == 1797
    assert s.train.images.shape[1:] == (1, 32, 32) and s.train.images.dtype == torch.uint8
    assert load_data("digits", image_size=16, limit=5).train.images.shape[1:] == (1, 16, 16)


def _synth(**kw):
    return load_data("synthetic", image_size=8, num_classes=4, count=200, channels=3, **kw)


def test_synthetic_deterministic_and_learnable():
    a, b = _synth(seed=0), _synth(seed=0)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.train.images, _synth(seed=0, synthetic_seed=1).train.images)
    torch.manual_seed(0)
    model = torch.nn.Linear(3 * 8 * 8, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = a.train.images.flatten(1).float() / 255, a.train.labels
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: 2 OpenMP threads on a busy 2-core box are ~50x slower
    try:
        for _ in range(20):
            opt.zero_grad()
            F.cross_entropy(model(x - 0.5), y).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    acc = (model(a.test.images.flatten(1).float() / 255 - 0.5).argmax(1) == a.test.labels).float().mean()
    assert acc > 0.7  # chance is 0.25


def test_splits_deterministic_stratified_disjoint():
    a, b, c = _synth(seed=3), _synth(seed=3), _synth(seed=4)
    assert torch.equal(a.val.images, b.val.images) and torch.equal(a.train.labels, b.train.labels)
    assert not torch.equal(a.val.images, c.val.images)
    assert a.val.class_counts(4).tolist() == [5] * 4 and a.test.class_counts(4).tolist() == [5] * 4
    assert a.train.class_counts(4).tolist() == [40] * 4
    rows = {tuple(x.flatten().tolist()) for part in (a.train, a.val, a.test) for x in part.images}
    assert len(rows) == 200  # disjoint and complete (noise makes every image distinct)


def test_spec_roundtrip_and_cli(tmp_path):
    s = _synth(seed=2, val_fraction=0.2)
    spec = json.loads(json.dumps(s.spec()))
    r = load_data_from_spec(spec)
    assert torch.equal(r.val.images, s.val.images) and r.spec() == s.spec()
    with pytest.raises(RaclError, match="changed since"):
        load_data_from_spec({**spec, "sizes": {"train": 1, "val": 1, "test": 1}})
    parser = argparse.ArgumentParser()
    add_data_arguments(parser)
    args = parser.parse_args("--dataset synthetic --image-size 8 --limit 5 --data-seed 1".split())
    d = data_from_args(args)
    assert (len(d.train) + len(d.val) + len(d.test), d.image_size) == (50, 8)
    assert parser.parse_args([]).dataset is None and data_from_args(parser.parse_args([])).name == "digits"


# ---------------------------------------------------------------- augmentation and batches


def _batch(n=6, c=3, s=8):
    return torch.randint(0, 256, (n, c, s, s), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


def test_augment_shape_range_reproducible_and_changes():
    x = _batch()
    cfg = AugmentConfig(crop_padding=2, flip=True, cutout=3)
    a = augment_batch(x, torch.Generator().manual_seed(0), cfg)
    b = augment_batch(x, torch.Generator().manual_seed(0), cfg)
    assert a.shape == x.shape and a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(a, x)
    xf = x.float() / 255
    af = augment_batch(xf, torch.Generator().manual_seed(0), cfg)
    assert torch.allclose(af, a.float() / 255) and af.min() >= 0 and af.max() <= 1


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_crop_is_a_shift_of_the_padded_image(mode):
    x, p = _batch(), 2
    padded = F.pad(x.float(), (p, p, p, p), mode="constant" if mode == "zeros" else "reflect")
    shifts = torch.tensor([[0, 0], [4, 4], [1, 3], [2, 2], [3, 0], [0, 4]])
    out = crop_shift(x, shifts, p, mode)
    for i, (dy, dx) in enumerate(shifts.tolist()):
        assert torch.equal(out[i].float(), padded[i, :, dy : dy + 8, dx : dx + 8])
    assert out[1, 0, 0, 0] == x[1, 0, 2, 2]  # one pixel: shift (4, 4) with pad 2 moves (2, 2) to (0, 0)


def test_flip_only_and_cutout_only():
    x = _batch(n=32)
    f = augment_batch(x, torch.Generator().manual_seed(0), AugmentConfig(crop_padding=0, flip=True))
    flipped = [torch.equal(f[i], x[i].flip(-1)) for i in range(32)]
    assert all(flipped[i] or torch.equal(f[i], x[i]) for i in range(32)) and 0 < sum(flipped) < 32
    ones = torch.full((8, 1, 8, 8), 255, dtype=torch.uint8)
    cut = augment_batch(ones, torch.Generator().manual_seed(0), AugmentConfig(crop_padding=0, flip=False, cutout=3))
    zeros = (cut == 0).flatten(1).sum(1)
    assert (zeros > 0).all() and (zeros <= 9).all()


def test_iterate_batches_covers_once_and_resumes():
    s = _synth()
    ds = ArrayDataset(s.train.images, torch.arange(len(s.train)))  # labels = positions, to track samples
    g = torch.Generator().manual_seed(0)
    batches = list(iterate_batches(ds, 7, shuffle=True, generator=g, augment=AugmentConfig(crop_padding=1)))
    seen = torch.cat([y for _, y in batches])
    assert sorted(seen.tolist()) == list(range(len(ds))) and not torch.equal(seen, torch.arange(len(ds)))
    assert all(x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1 for x, _ in batches)
    assert [len(y) for _, y in batches][-1] == len(ds) % 7
    g2 = torch.Generator().manual_seed(0)
    aug = AugmentConfig(crop_padding=1)
    tail = list(iterate_batches(ds, 7, shuffle=True, generator=g2, augment=aug, start_batch=5))
    assert len(tail) == len(batches) - 5
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches[5:], tail, strict=True))
    assert torch.equal(g.get_state(), g2.get_state())
    dropped = list(iterate_batches(ds, 7, shuffle=False, generator=None, drop_last=True))
    assert all(len(y) == 7 for _, y in dropped) and dropped[0][1].tolist() == list(range(7))
