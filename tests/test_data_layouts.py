"""Image-folder layouts (issue 15): split folders, --test-dir, Tiny-ImageNet, and the streaming path."""
from __future__ import annotations

import io
import json
import os
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

from racl import distributed
from racl.cli import main
from racl.data import AugmentConfig, iterate_batches, load_data, load_data_from_spec
from racl.data.streaming import StreamingDataset
from racl.errors import RaclError
from racl.models import build_model


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("RACL_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------- builders
def colour(i: int) -> tuple[int, int, int]:
    """A distinct colour per image number i < 4096 (identifies the image in any crop of it)."""
    return (16 * (i % 16) + 8, 16 * ((i // 16) % 16) + 8, 16 * (i // 256) + 8)


def image_bytes(i: int, size: int = 8, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour(i)).save(buf, format=fmt)
    return buf.getvalue()


def write(root: Path, entries: dict[str, bytes]) -> Path:
    for rel, data in entries.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def zipped(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for rel, data in entries.items():
            zf.writestr(rel, data)
    return path


def split_entries(splits: dict[str, int], classes=("cat", "dog", "emu"), top: str = "", start: int = 0,
                  size: int = 8) -> dict[str, bytes]:
    """{top}{split}/{class}/{k}.png with `splits[split]` images per class, numbered from `start`."""
    out, i = {}, start
    for split, per_class in splits.items():
        for c in classes:
            for k in range(per_class):
                out[f"{top}{split}{'/' if split else ''}{c}/{k:03d}.png"] = image_bytes(i, size)
                i += 1
    return out


def sizes(s) -> tuple[int, int, int]:
    return len(s.train), len(s.val), len(s.test)


def ids(x: torch.Tensor) -> list[int]:
    """The image numbers of a batch (B, 3, S, S) in [0, 1] of constant-colour images."""
    rgb = (x[:, :, 0, 0] * 255).round().long()  # (B, 3)
    return (((rgb[:, 0] - 8) // 16) + 16 * ((rgb[:, 1] - 8) // 16) + 256 * ((rgb[:, 2] - 8) // 16)).tolist()


# ---------------------------------------------------------------- split folders
@pytest.mark.parametrize("as_zip", [False, True])
def test_three_split_folders_are_the_splits(tmp_path, as_zip):
    entries = split_entries({"train": 6, "val": 2, "test": 3}, top="data/")
    src = zipped(tmp_path / "d.zip", entries) if as_zip else write(tmp_path / "d", entries)
    s = load_data("imagefolder", str(src), val_fraction=0.5, test_fraction=0.4)  # fractions unused
    assert s.class_names == ("cat", "dog", "emu") and sizes(s) == (18, 6, 9)
    assert s.test.class_counts(3).tolist() == [3, 3, 3] and s.val.class_counts(3).tolist() == [2, 2, 2]
    first_test = np.array(Image.open(io.BytesIO(entries["data/test/cat/000.png"])))
    assert torch.equal(s.test.images[0], torch.from_numpy(first_test).permute(2, 0, 1))
    assert s.test.labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3


def test_train_and_test_folders_carve_val_from_train(tmp_path):
    # the CIFAR-10-images / Kaggle layout: cifar10/train/<class>, cifar10/test/<class>
    root = write(tmp_path / "cifar10", split_entries({"train": 10, "test": 4}, top="cifar10/"))
    s = load_data("imagefolder", str(root), val_fraction=0.2, seed=1)
    assert s.class_names == ("cat", "dog", "emu")  # not ("test", "train")
    assert sizes(s) == (24, 6, 12) and s.val.class_counts(3).tolist() == [2, 2, 2]
    test_ids = set(ids(s.test.images.float() / 255))
    assert test_ids == set(range(30, 42))  # exactly the test/ folder's images
    assert not test_ids & (set(ids(s.train.images.float() / 255)) | set(ids(s.val.images.float() / 255)))


@pytest.mark.parametrize("name", ["val", "valid", "validation"])
def test_single_held_out_folder_is_the_test_split(tmp_path, name):
    root = write(tmp_path / "d", split_entries({"train": 10, name: 3}))
    s = load_data("imagefolder", str(root), val_fraction=0.1)
    assert sizes(s) == (27, 3, 9) and set(ids(s.test.images.float() / 255)) == set(range(30, 39))


def test_only_train_folder_loads_as_before(tmp_path):
    s = load_data("imagefolder", str(write(tmp_path / "d", split_entries({"train": 10}))), val_fraction=0.2,
                  test_fraction=0.1)
    assert sizes(s) == (21, 6, 3)


@pytest.mark.parametrize("entries, message", [
    ({**split_entries({"train": 2, "test": 1}), "cow/0.png": image_bytes(99)},
     r"class folder .*cow sits beside split folders test/, train/; move it into a split folder"),
    (split_entries({"train": 2}) | split_entries({"test": 1}, classes=("cat", "dog")),
     r"split folders disagree on classes: .*test lacks emu; every split folder needs the same class folders"),
    (split_entries({"train": 2}, classes=("cat", "dog")) | split_entries({"val": 1}, classes=("cat", "dog", "owl")),
     r"split folders disagree on classes: .*val has owl that .*train lacks"),
    (split_entries({"train": 2, "val": 1, "valid": 1}), r"has two val folders, val/ and valid/; keep one"),
    (split_entries({"val": 2, "test": 1}), r"has split folders test/, val/ but no train/"),
    ({**split_entries({"train": 2, "test": 1}), "README.txt": b"hi"}, r"README.txt is not inside a split folder"),
    ({**split_entries({"train": 2, "val": 1}), "wnids.txt": b"cat\n"}, r"Tiny-ImageNet layout .*--dataset tinyimagenet"),
    ({**split_entries({"train": 2}), "test/.keep": b""}, r"test contains no images"),
])
@pytest.mark.parametrize("as_zip", [False, True])
def test_wrong_split_layouts(tmp_path, entries, message, as_zip):
    src = zipped(tmp_path / "d.zip", entries) if as_zip else write(tmp_path / "d", entries)
    with pytest.raises(RaclError, match=message) as e:
        load_data("imagefolder", str(src))
    assert "\n" not in str(e.value)


def test_test_dir_names_the_test_split(tmp_path):
    root = write(tmp_path / "pool", split_entries({"train": 10}))
    test = zipped(tmp_path / "t.zip", split_entries({"": 2}, start=100))  # <class>/<image> at the zip's top
    s = load_data("imagefolder", str(root), test_dir=str(test), val_fraction=0.1, test_fraction=0.5)
    assert sizes(s) == (27, 3, 6) and set(ids(s.test.images.float() / 255)) == set(range(100, 106))
    assert s.spec()["options"]["test_dir"] == str(test)
    again = load_data_from_spec(json.loads(json.dumps(s.spec())))
    assert torch.equal(again.test.images, s.test.images)
    with_val = write(tmp_path / "tv", split_entries({"train": 4, "val": 1}))
    s = load_data("imagefolder", str(with_val), test_dir=str(test))
    assert sizes(s) == (12, 3, 6)  # train/ and val/ as they are, test from --test-dir


@pytest.mark.parametrize("make, message", [
    (lambda t: split_entries({"": 1}, classes=("cat", "dog")), r"--test-dir .* lacks emu"),
    (lambda t: split_entries({"train": 1, "test": 1}), r"--test-dir .* holds split folders"),
])
def test_bad_test_dir(tmp_path, make, message):
    root = write(tmp_path / "pool", split_entries({"train": 3}))
    with pytest.raises(RaclError, match=message):
        load_data("imagefolder", str(root), test_dir=str(write(tmp_path / "t", make(tmp_path))))
    both = write(tmp_path / "both", split_entries({"train": 3, "test": 1}))
    with pytest.raises(RaclError, match="has its own test/ split folder"):
        load_data("imagefolder", str(both), test_dir=str(write(tmp_path / "t2", split_entries({"": 1}))))
    with pytest.raises(RaclError, match="--test-dir folder not found"):
        load_data("imagefolder", str(root), test_dir=str(tmp_path / "nope"))


def test_gray_majority_is_exact_and_sizes_checked_across_splits(tmp_path):
    rng = np.random.default_rng(0)
    grays = {}
    for split, c, k in [("train", "a", 0), ("train", "a", 1), ("train", "b", 0), ("test", "a", 0), ("test", "b", 0)]:
        grays[(split, c, k)] = rng.integers(0, 256, (8, 8), dtype=np.uint8)
        path = tmp_path / "d" / split / c / f"{k}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grays[(split, c, k)], "L").save(path)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "d" / "train" / "b" / "rgb.png")
    s = load_data("imagefolder", str(tmp_path / "d"), val_fraction=0.0)
    assert s.channels == 1 and torch.equal(s.test.images[0, 0], torch.from_numpy(grays[("test", "a", 0)]))
    assert torch.equal(s.train.images[1, 0], torch.from_numpy(grays[("train", "a", 1)]))
    assert int(s.train.images[-1, 0, 0, 0]) == round(0.299 * 200 + 0.587 * 10 + 0.114 * 10)  # luma of the RGB one
    Image.new("L", (12, 12)).save(tmp_path / "d" / "test" / "b" / "big.png")
    with pytest.raises(RaclError, match=r"big.png is 12x12 but .*train/a/0.png is 8x8; pass --image-size"):
        load_data("imagefolder", str(tmp_path / "d"))


def test_split_zip_cache_holds_every_split(tmp_path, monkeypatch):
    z = zipped(tmp_path / "d.zip", split_entries({"train": 4, "val": 1, "test": 2}))
    first = load_data("imagefolder", str(z))
    monkeypatch.setattr("racl.data.imagefolder.decode_many", lambda *a, **k: pytest.fail("decoded despite cache"))
    again = load_data("imagefolder", str(z))
    assert sizes(again) == sizes(first) == (12, 3, 6)
    assert torch.equal(again.test.images, first.test.images) and torch.equal(again.val.labels, first.val.labels)


# ---------------------------------------------------------------- Tiny-ImageNet
WNIDS = ("n02", "n01", "n03")  # deliberately unsorted, as in the real wnids.txt


def tiny_entries(train_per_class: int = 4, val_per_class: int = 2, top: str = "tiny-imagenet-200/") -> dict:
    out = {f"{top}wnids.txt": "\n".join(WNIDS).encode() + b"\n", f"{top}words.txt": b"n01\tthing\n"}
    for c, w in enumerate(WNIDS):
        for k in range(train_per_class):
            out[f"{top}train/{w}/images/{w}_{k}.JPEG"] = image_bytes(10 * c + k, 64, "PNG")
        out[f"{top}train/{w}/{w}_boxes.txt"] = b"box\n"
    lines, i = [], 0
    for c, w in enumerate(WNIDS):
        for k in range(val_per_class):
            out[f"{top}val/images/val_{i}.JPEG"] = image_bytes(100 + i, 64, "PNG")
            lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
            i += 1
    out[f"{top}val/val_annotations.txt"] = ("\n".join(lines) + "\n").encode()
    out[f"{top}test/images/test_0.JPEG"] = image_bytes(999, 64, "PNG")  # unlabelled: not used
    return out


@pytest.mark.parametrize("as_zip", [False, True])
def test_tinyimagenet_official_splits(tmp_path, as_zip):
    entries = tiny_entries()
    src = zipped(tmp_path / "tiny.zip", entries) if as_zip else write(tmp_path / "t", entries)
    s = load_data("tinyimagenet", str(src), val_fraction=0.25)
    assert s.class_names == ("n01", "n02", "n03") and s.num_classes == 3 and s.image_size == 64
    assert sizes(s) == (9, 3, 6)  # val carved from train (1 per class); test = the official val/
    test_ids = ids(s.test.images.float() / 255)
    by_id = {100 + i: sorted(WNIDS).index(WNIDS[i // 2]) for i in range(6)}  # annotation -> sorted label
    assert [by_id[i] for i in test_ids] == s.test.labels.tolist()
    train_ids = ids(torch.cat([s.train.images, s.val.images]).float() / 255)
    labels = torch.cat([s.train.labels, s.val.labels]).tolist()
    assert all(sorted(WNIDS).index(WNIDS[i // 10]) == y for i, y in zip(train_ids, labels, strict=True))


def _edit(entries: dict, path: str, data: bytes | None) -> dict:
    out = dict(entries)
    if data is None:
        out.pop(path)
    else:
        out[path] = data
    return out


T = "tiny-imagenet-200/"


@pytest.mark.parametrize("change, message", [
    (lambda e: _edit(e, f"{T}val/val_annotations.txt", None), r"val_annotations.txt not found: it holds the val labels"),
    (lambda e: _edit(e, f"{T}val/val_annotations.txt", b"val_0.JPEG\tn99\t0\t0\t1\t1\n"),
     r"val_annotations.txt line 1: val_0.JPEG is labelled 'n99', which is not a class in wnids.txt"),
    (lambda e: _edit(e, f"{T}val/images/val_3.JPEG", None),
     r"val_annotations.txt lists val_3.JPEG but .*val/images/val_3.JPEG does not exist"),
    (lambda e: _edit(e, f"{T}val/images/extra.JPEG", image_bytes(5, 64)), r"extra.JPEG is not in val_annotations.txt"),
    (lambda e: _edit(e, f"{T}val/val_annotations.txt", b"val_0.JPEG\n"), r"line 1: expected <file> <wnid>"),
    (lambda e: _edit(e, f"{T}wnids.txt", None), r"has no wnids.txt: not the Tiny-ImageNet layout"),
    (lambda e: _edit(e, f"{T}train/n77/images/x.JPEG", image_bytes(5, 64)), r"train/n77 is not a class in wnids.txt"),
    (lambda e: {k: v for k, v in e.items() if "/train/n03/images/" not in k}, r"class n03 of wnids.txt has no images"),
    (lambda e: _edit(e, f"{T}train/n01/x.JPEG", image_bytes(5, 64)), r"train/n01/x.JPEG is not where Tiny-ImageNet"),
    (lambda e: _edit(e, f"{T}wnids.txt", b"n01\nn01\n"), r"must list at least 2 distinct class ids"),
])
@pytest.mark.parametrize("as_zip", [False, True])
def test_wrong_tinyimagenet(tmp_path, change, message, as_zip):
    entries = change(tiny_entries())
    src = zipped(tmp_path / "tiny.zip", entries) if as_zip else write(tmp_path / "t", entries)
    with pytest.raises(RaclError, match=message) as e:
        load_data("tinyimagenet", str(src))
    assert "\n" not in str(e.value)


def test_models_run_at_64x64():
    """Choice for 64x64 inputs: the CIFAR stems are kept (stride 1); global average pooling (and the DARTS
    auxiliary head's adaptive pooling) absorb the 4x larger maps, at 4x the FLOPs of 32x32."""
    x = torch.rand(2, 3, 64, 64)
    torch.manual_seed(0)
    darts = build_model("RACL", num_classes=200, channels=4, layers=5, auxiliary=True)
    darts.train()
    logits, aux = darts(x, with_aux=True)
    assert logits.shape == (2, 200) and aux.shape == (2, 200)
    resnet = build_model("resnet18", num_classes=200, width=8).eval()
    assert resnet(x).shape == (2, 200)


# ---------------------------------------------------------------- streaming
def _stream_folder(tmp_path: Path, per_class: int = 8) -> Path:
    return write(tmp_path / "s", split_entries({"train": per_class, "test": 2}, size=16))


def test_streaming_keeps_the_splits_and_labels(tmp_path):
    root = _stream_folder(tmp_path)
    mem = load_data("imagefolder", str(root), val_fraction=0.25, streaming=False)
    st = load_data("imagefolder", str(root), val_fraction=0.25, streaming=True, workers=0, image_size=16)
    assert isinstance(st.train, StreamingDataset) and (st.image_size, st.channels) == (16, 3)
    assert sizes(st) == sizes(mem) == (18, 6, 6)
    for part in ("train", "val", "test"):
        a, b = getattr(mem, part), getattr(st, part)
        assert torch.equal(a.labels, b.labels)
        x, y = next(iterate_batches(b, len(b), shuffle=False, generator=None))  # evaluation transforms
        assert x.shape == (len(b), 3, 16, 16) and x.dtype == torch.float32
        assert ids(x) == ids(a.images.float() / 255) and torch.equal(y, a.labels)  # same images, same order
    assert st.mean == pytest.approx(mem.mean, abs=1e-6) and st.std == pytest.approx(mem.std, abs=1e-6)
    assert st.spec()["options"] == {"streaming": True, "workers": 0}
    assert sizes(load_data_from_spec(st.spec())) == sizes(st)


def test_streaming_batches_reproducible_for_any_workers_and_resumable(tmp_path):
    st = load_data("imagefolder", str(_stream_folder(tmp_path)), streaming=True, workers=0, image_size=12)
    aug = AugmentConfig(cutout=4)

    def epoch(ds, start=0):
        g = torch.Generator().manual_seed(5)
        return [(x, y) for x, y in iterate_batches(ds, 4, shuffle=True, generator=g, augment=aug, drop_last=True,
                                                   start_batch=start)], g.get_state()

    base, state = epoch(st.train)
    assert len(base) == len(st.train) // 4 and base[0][0].shape == (4, 3, 12, 12)
    two = StreamingDataset(st.train.folder, st.train.keys, st.train.labels, 12, workers=2)
    other, other_state = epoch(two)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(base, other, strict=True))
    assert torch.equal(state, other_state)
    resumed, _ = epoch(st.train, start=2)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(base[2:], resumed, strict=True))
    x = torch.cat([b[0] for b in base])
    assert (x == 0).all(1).any()  # cutout squares
    # a crop/flip of a constant image is that image's colour: labels still match the images
    label_of = {i: lab for i, lab in zip(ids(torch.stack([img for img, _ in _each(st.train)])), st.train.labels.tolist(),
                                           strict=True)}
    for xb, yb in base:
        centre = xb[:, :, 6:7, 6:7]
        kept = (centre != 0).all(1).flatten()  # centre pixel not cut out
        assert [label_of[i] for i, k in zip(ids(centre), kept, strict=True) if k] == yb[kept].tolist()
    other_seed = iterate_batches(st.train, 4, shuffle=True, generator=torch.Generator().manual_seed(6),
                                 augment=aug, drop_last=True)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(base, other_seed, strict=True))


def _each(ds):
    return [(x[0], y[0]) for x, y in iterate_batches(ds, 1, shuffle=False, generator=None)]


def test_streaming_shards_like_the_in_memory_path(tmp_path):
    """Under torchrun (2 ranks, simulated) each rank gets the images the in-memory sharding gives it."""
    root = _stream_folder(tmp_path)
    mem = load_data("imagefolder", str(root), streaming=False)
    st = load_data("imagefolder", str(root), streaming=True, workers=0, image_size=16)
    got = {}
    for r in (0, 1):
        rt = distributed.Runtime(rank=r, world=2)
        got[r] = [[ids(x), y.tolist()] for x, y in rt.batches(
            st.train, 3, shuffle=True, generator=torch.Generator().manual_seed(1), drop_last=True)]
        want = [[ids(x), y.tolist()] for x, y in rt.batches(
            mem.train, 3, shuffle=True, generator=torch.Generator().manual_seed(1), drop_last=True)]
        assert got[r] == want and len(want) == len(mem.train) // 6
    flat = [i for r in (0, 1) for batch in got[r] for i in batch[0]]
    assert len(set(flat)) == len(flat)  # the ranks never see the same image in an epoch


def _shard_worker(rank: int, port: int, root: str, world: int) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    distributed.init_distributed("cpu")
    try:
        got = {}
        for streaming in (True, False):
            s = load_data("imagefolder", root, streaming=streaming, workers=0, image_size=16)
            got[str(streaming)] = [ids(x) for x, _ in distributed.Runtime.current().batches(
                s.train, 3, shuffle=True, generator=torch.Generator().manual_seed(1), drop_last=True)]
        Path(root).parent.joinpath(f"rank{rank}.json").write_text(json.dumps(got))  # not in the image folder
    finally:
        distributed.destroy()


def test_streaming_shards_under_a_real_process_group(tmp_path):
    """Two gloo processes (as torchrun starts them): the DistributedSampler gives each rank the images
    the in-memory sharding gives it, and the ranks' images are disjoint."""
    root = _stream_folder(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_shard_worker, args=(port, str(root), 2), nprocs=2, join=True)
    got = [json.loads((root.parent / f"rank{r}.json").read_text()) for r in range(2)]
    for g in got:
        assert g["True"] == g["False"] and len(g["True"]) == 21 // 6
    flat = [i for g in got for batch in g["True"] for i in batch]
    assert len(flat) == 18 and len(set(flat)) == 18


def test_auto_streaming_above_the_threshold(tmp_path, monkeypatch):
    root = _stream_folder(tmp_path)
    assert not isinstance(load_data("imagefolder", str(root)).train, StreamingDataset)  # 30 x 3 x 16 x 16 bytes
    monkeypatch.setattr("racl.data.sources.STREAM_ABOVE_BYTES", 30 * 3 * 16 * 16 - 1)
    s = load_data("imagefolder", str(root), workers=0)
    assert isinstance(s.train, StreamingDataset) and s.image_size == 224  # the ImageNet default size
    t = load_data("tinyimagenet", str(write(tmp_path / "t", tiny_entries())), streaming=True, workers=0,
                  val_fraction=0.25)
    assert t.image_size == 64 and sizes(t) == (9, 3, 6)


def test_streamed_damaged_image_is_one_line(tmp_path):
    root = _stream_folder(tmp_path)
    (root / "test" / "dog" / "001.png").write_bytes(b"not a png")
    st = load_data("imagefolder", str(root), streaming=True, workers=2, image_size=16)
    one_line = r"^cannot decode image .*001.png .*damaged or not an image$"
    with pytest.raises(RaclError, match=one_line):  # raised in a DataLoader worker
        list(iterate_batches(st.test, 4, shuffle=False, generator=None))
    (root / "train" / "dog" / "001.png").write_bytes(b"not a png")
    with pytest.raises(RaclError, match=one_line):  # while sampling the channel statistics
        load_data("imagefolder", str(root), streaming=True, workers=2, image_size=16)


def test_train_and_evaluate_on_split_folders_attack_the_official_test_split(tmp_path, capsys):
    """racl train on a split-folder zip (streamed and in memory), then racl evaluate with no data flags."""
    z = zipped(tmp_path / "d.zip", split_entries({"train": 8, "test": 3}, size=16))
    for mode in ("off", "on"):
        out = tmp_path / f"run-{mode}"
        argv = ["train", "--genotype", "RACL", "--channels", "4", "--layers", "3", "--epochs", "1", "--batch-size",
                "6", "--val-images", "3", "--val-steps", "1", "--adv", "none", "--dataset", "imagefolder",
                "--data-dir", str(z), "--image-size", "16", "--streaming", mode, "--workers", "0", "--out", str(out)]
        assert main(argv) == 0, capsys.readouterr().err
        ckpt = next(out.rglob("best.safetensors"))
        ev = tmp_path / f"eval-{mode}"
        assert main(["evaluate", "--checkpoint", str(ckpt), "--attacks", "fgsm", "--out", str(ev)]) == 0
        result = json.loads((ev / "results.json").read_text())
        assert result["split"] == "test" and result["n_images"] == 9  # the test/ folder: 3 per class
        assert result["data"]["sizes"] == {"train": 21, "val": 3, "test": 9}
    capsys.readouterr()


def test_search_runs_on_a_streamed_folder(tmp_path, capsys):
    z = zipped(tmp_path / "d.zip", split_entries({"train": 12, "test": 2}, size=16))
    out = tmp_path / "search"
    argv = ["search", "--preset", "tiny", "--no-draw", "--dataset", "imagefolder", "--data-dir", str(z),
            "--image-size", "16", "--streaming", "on", "--workers", "0", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and records[-1]["phase"] == "search" and records[-1]["val_acc"] is not None
    assert (out / "genotype.json").is_file()
    capsys.readouterr()


def test_data_flags_for_other_sets_refused(tmp_path, capsys):
    for flags, message in ((["--test-dir", "x"], "--test-dir applies to --dataset imagefolder only"),
                           (["--streaming", "on"], "--streaming applies to image folders")):
        code = main(["train", "--genotype", "RACL", "--dataset", "synthetic", *flags, "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.splitlines()) == 1
