"""The bad-input catalogue (issue 6, item 3; table in docs/bad-inputs.md): one test per case.

Each case runs the real CLI in-process (`racl.cli.main`) and checks what the user sees: a non-zero
exit status, exactly one line on stderr starting `racl: error:` that names the problem, no traceback,
and no partial output (the --out folder is not created; a folder that existed keeps its files and
holds no temporary files).
"""
from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
from PIL import Image

from racl.cli import main

TRAIN = ["train", "--genotype", "RACL", "--channels", "4", "--layers", "3", "--epochs", "1", "--batch-size", "4",
         "--steps", "1", "--val-images", "4", "--val-steps", "1"]
SYNTH = ["--dataset", "synthetic", "--image-size", "16", "--limit", "6"]
SEARCH = ["search", "--preset", "tiny", "--no-draw", *SYNTH]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RACL_CACHE", str(tmp_path / "cache"))  # never touch ~/.cache


# ---------------------------------------------------------------- input builders
def png(size: int = 8, colour: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (colour, 255 - colour, 128)).save(buf, format="PNG")
    return buf.getvalue()


def image_folder(root: Path, extra: dict[str, bytes] | None = None, classes: tuple[str, ...] = ("a", "b")) -> Path:
    """root/<class>/<i>.png, 3 images of 8x8 per class, plus `extra` files (relative path -> bytes)."""
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            (root / c / f"{i}.png").write_bytes(png(8, 40 * i))
    for rel, data in (extra or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def tiny_folder(tmp: Path, annotations: bytes | None) -> Path:
    """A two-class Tiny-ImageNet zip (wnids n01, n02; 2 train images each; val image v0.JPEG) with the
    given val_annotations.txt (None: left out)."""
    entries = {"tiny-imagenet-200/wnids.txt": b"n01\nn02\n", "tiny-imagenet-200/val/images/v0.JPEG": png(8)}
    entries |= {f"tiny-imagenet-200/train/{w}/images/{w}_{i}.JPEG": png(8, 40 * i) for w in ("n01", "n02")
                for i in range(2)}
    if annotations is not None:
        entries["tiny-imagenet-200/val/val_annotations.txt"] = annotations
    return zipped(tmp, entries)


def zipped(tmp: Path, entries: dict[str, bytes]) -> Path:
    path = tmp / "data.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def good_zip(tmp: Path) -> Path:
    return zipped(tmp, {f"{c}/{i}.png": png(8, 40 * i) for c in "ab" for i in range(3)})


def genotype_file(tmp: Path, change: Callable[[dict], None] | None = None, text: str | None = None) -> Path:
    from racl.search_space import resolve_genotype

    data = resolve_genotype("RACL").to_dict()
    if change:
        change(data)
    path = tmp / "genotype.json"
    path.write_text(text if text is not None else json.dumps(data))
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained RACL net (C = 4, 3 cells, 4 classes) saved with a synthetic-data spec in its sidecar."""
    from racl.checkpoint import model_spec, save_model_checkpoint
    from racl.data import load_data
    from racl.models import build_model

    data = load_data("synthetic", image_size=8, count=40, num_classes=4)
    kwargs = dict(num_classes=4, channels=4, layers=3, mean=data.mean, std=data.std)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "net.safetensors"
    save_model_checkpoint(path, build_model("RACL", **kwargs), model_spec("RACL", **kwargs), data=data.spec())
    return path


def copy_checkpoint(src: Path, tmp: Path, sidecar: Callable[[dict], None] | None = None,
                    weights: Callable[[bytes], bytes] | None = None) -> Path:
    dst = tmp / "ckpt" / "net.safetensors"
    dst.parent.mkdir()
    data = src.read_bytes()
    dst.write_bytes(weights(data) if weights else data)
    meta = json.loads(src.with_suffix(".json").read_text())
    if sidecar:
        sidecar(meta)
    dst.with_suffix(".json").write_text(json.dumps(meta))
    return dst


def evaluate(ckpt: Path | str, *extra: str) -> list[str]:
    return ["evaluate", "--checkpoint", str(ckpt), "--attacks", "fgsm", "--n-images", "4", *extra]


def edit_genotype(cell: str, edge: int, value: list) -> Callable[[dict], None]:
    def change(d: dict) -> None:
        d[cell][edge] = value
    return change


def other_arch(meta: dict) -> None:
    meta["model"] = "DARTS_V2"


def other_classes(meta: dict) -> None:
    meta["model_args"]["num_classes"] = 10


# ---------------------------------------------------------------- the catalogue
@dataclass
class Case:
    name: str
    argv: Callable[[Path, Path], list[str]]  # (tmp folder, checkpoint) -> argv; "OUT" is the --out folder
    message: str                             # regex the one error line must match
    existing: dict[str, str] | None = None   # files already in OUT (a run there), kept as they are
    leaves: tuple[str, ...] = ()             # files a stopped run may leave in OUT (never temporaries)


def out(tmp: Path) -> str:
    return str(tmp / "OUT")


CASES = [
    # data
    Case("data_dir_missing", lambda t, c: [*TRAIN, "--dataset", "imagefolder", "--data-dir", str(t / "nope"),
                                           "--out", out(t)], r"image folder not found: .*nope; pass --data-dir"),
    Case("torchvision_dir_missing", lambda t, c: [*TRAIN, "--dataset", "cifar10", "--data-dir", str(t / "nope"),
                                                  "--out", out(t)], r"data dir not found: .*--download"),
    Case("data_path_not_folder_or_zip", lambda t, c: [
        *TRAIN, "--dataset", "imagefolder", "--data-dir", str(_write(t / "notes.txt", b"hello")), "--out", out(t)],
        r"not a readable zip archive"),
    Case("unreadable_image_file", lambda t, c: [
        *TRAIN, "--dataset", "imagefolder", "--data-dir", str(_broken_link(image_folder(t / "imgs"))),
        "--out", out(t)], r"cannot read .*dangling\.png"),
    Case("corrupt_zip", lambda t, c: [*TRAIN, "--dataset", "imagefolder", "--data-dir",
                                      str(_write(t / "d.zip", b"PK\x03\x04" + bytes(range(256)) * 4)),
                                      "--out", out(t)], r"not a readable zip archive.*corrupt or truncated"),
    Case("truncated_zip", lambda t, c: [*TRAIN, "--dataset", "imagefolder", "--data-dir", str(_truncate(good_zip(t))),
                                        "--out", out(t)], r"not a readable zip archive.*corrupt or truncated"),
    Case("zip_entry_escapes", lambda t, c: [
        *TRAIN, "--dataset", "imagefolder", "--data-dir",
        str(zipped(t, {"a/0.png": png(), "b/0.png": png(), "../evil.png": png()})), "--out", out(t)],
        r"refusing unsafe zip entry '\.\./evil\.png'"),
    Case("zip_absolute_entry", lambda t, c: [
        *TRAIN, "--dataset", "imagefolder", "--data-dir",
        str(zipped(t, {"a/0.png": png(), "b/0.png": png(), "/etc/evil.png": png()})), "--out", out(t)],
        r"refusing unsafe zip entry"),
    Case("non_image_file", lambda t, c: [
        *TRAIN, "--dataset", "imagefolder", "--data-dir", str(image_folder(t / "imgs", {"a/notes.txt": b"x"})),
        "--out", out(t)], r"notes\.txt is not an image file"),
    Case("undecodable_image", lambda t, c: [
        *TRAIN, "--dataset", "imagefolder", "--data-dir", str(image_folder(t / "imgs", {"b/bad.png": b"not a png"})),
        "--out", out(t)], r"cannot decode image .*bad\.png"),
    Case("inconsistent_image_sizes", lambda t, c: [
        *TRAIN, "--dataset", "imagefolder", "--data-dir", str(image_folder(t / "imgs", {"b/big.png": png(12)})),
        "--out", out(t)], r"big\.png is 12x12 but .* is 8x8; pass --image-size"),
    Case("empty_class_folder", lambda t, c: [
        *TRAIN, "--dataset", "imagefolder", "--data-dir", str(_mkdir(image_folder(t / "imgs") / "c")),
        "--out", out(t)], r"class folder .*c has no images"),
    Case("single_class", lambda t, c: [
        *TRAIN, "--dataset", "imagefolder", "--data-dir", str(image_folder(t / "imgs", classes=("a",))),
        "--out", out(t)], r"1 class folder\(s\); classification needs at least 2"),
    Case("split_and_class_folders_mixed", lambda t, c: [
        *TRAIN, "--dataset", "imagefolder", "--data-dir", str(image_folder(t / "imgs", classes=("train", "test", "c"))),
        "--out", out(t)], r"class folder .*c sits beside split folders test/, train/"),
    Case("split_folders_disagree_on_classes", lambda t, c: [
        *TRAIN, "--dataset", "imagefolder", "--data-dir",
        str(image_folder(t / "imgs", {f"test/{k}/0.png": png() for k in "ac"} | {f"train/{k}/0.png": png() for k in "ab"},
                         classes=())), "--out", out(t)],
        r"split folders disagree on classes: .*test lacks b and has c that .*train lacks"),
    Case("test_dir_classes_differ", lambda t, c: [
        *TRAIN, "--dataset", "imagefolder", "--data-dir", str(image_folder(t / "imgs")),
        "--test-dir", str(image_folder(t / "test", classes=("a", "z"))), "--out", out(t)],
        r"--test-dir .*test lacks b and has z"),
    Case("test_dir_not_imagefolder", lambda t, c: [*TRAIN, *SYNTH, "--test-dir", str(t), "--out", out(t)],
         r"--test-dir applies to --dataset imagefolder only, not synthetic"),
    Case("tinyimagenet_no_annotations", lambda t, c: [
        *TRAIN, "--dataset", "tinyimagenet", "--data-dir", str(tiny_folder(t, annotations=None)), "--out", out(t)],
        r"val_annotations\.txt not found: it holds the val labels"),
    Case("tinyimagenet_unknown_class", lambda t, c: [
        *TRAIN, "--dataset", "tinyimagenet", "--data-dir", str(tiny_folder(t, annotations=b"v0.JPEG\tn09\t0\t0\t1\t1\n")),
        "--out", out(t)], r"val_annotations\.txt line 1: v0\.JPEG is labelled 'n09', which is not a class in wnids"),
    Case("tinyimagenet_listed_image_missing", lambda t, c: [
        *TRAIN, "--dataset", "tinyimagenet", "--data-dir",
        str(tiny_folder(t, annotations=b"v0.JPEG\tn01\nv9.JPEG\tn02\n")), "--out", out(t)],
        r"lists v9\.JPEG but .*val/images/v9\.JPEG does not exist"),
    Case("unknown_dataset", lambda t, c: [*TRAIN, "--dataset", "mnist", "--out", out(t)],
         r"unknown dataset 'mnist'; known: cifar10"),
    Case("limit_zero", lambda t, c: [*TRAIN, *SYNTH[:4], "--limit", "0", "--out", out(t)],
         r"--limit .* must be a positive integer"),
    # genotypes
    Case("genotype_malformed_json", lambda t, c: [*TRAIN, *SYNTH, "--genotype",
                                                  str(genotype_file(t, text='{"normal": [')),
                                                  "--out", out(t)], r"genotype file .* is not valid JSON"),
    Case("genotype_unknown_op", lambda t, c: [
        *TRAIN, *SYNTH, "--genotype", str(genotype_file(t, edit_genotype("normal", 0, ["conv_9x9", 0]))),
        "--out", out(t)], r"normal edge 0: unknown op 'conv_9x9'; known: "),
    Case("genotype_bad_node_index", lambda t, c: [
        *TRAIN, *SYNTH, "--genotype", str(genotype_file(t, edit_genotype("reduce", 1, ["skip_connect", 5]))),
        "--out", out(t)], r"reduce edge 1: input node 5 is invalid for node 2 \(must be 0\.\.1\)"),
    Case("genotype_unknown_name", lambda t, c: [*TRAIN[:1], "--genotype", "DARTS_V9", *TRAIN[3:], *SYNTH,
                                                "--out", out(t)], r"'DARTS_V9' .*\(did you mean DARTS_V2 or DARTS_V1"),
    # the model name is checked before the data: the data dir here does not exist
    Case("model_name_before_data", lambda t, c: [*TRAIN[:1], "--genotype", "resnet-19", *TRAIN[3:], "--dataset",
                                                 "imagefolder", "--data-dir", str(t / "nope"), "--out", out(t)],
         r"'resnet-19' is neither a zoo genotype, a model name nor a genotype JSON file \(did you mean resnet18 "),
    Case("genotype_file_before_data", lambda t, c: [
        *TRAIN[:1], "--genotype", str(genotype_file(t, text="[")), *TRAIN[3:], "--dataset", "imagefolder",
        "--data-dir", str(t / "nope"), "--out", out(t)], r"genotype file .* is not valid JSON"),
    Case("compare_name_before_data", lambda t, c: [
        "compare", "--genotypes", "RACL", "DARTS-V3", "--epochs", "1", "--dataset", "imagefolder", "--data-dir",
        str(t / "nope"), "--out", out(t)], r"'DARTS-V3' is neither .*\(did you mean DARTS_V2"),
    Case("genotype_too_few_edges", lambda t, c: [
        *TRAIN, *SYNTH, "--genotype", str(genotype_file(t, lambda d: d.update(normal=d["normal"][:6]))),
        "--out", out(t)], r"genotype normal cell has 6 edges \(3 intermediate nodes\) but normal_concat .* names "
                          r"node 5"),
    # checkpoints
    Case("checkpoint_missing", lambda t, c: [*evaluate(t / "none.safetensors"), "--out", out(t)],
         r"checkpoint sidecar not found"),
    Case("checkpoint_other_architecture", lambda t, c: [*evaluate(copy_checkpoint(c, t, sidecar=other_arch)),
                                                        "--out", out(t)],
         r"does not match the architecture in its sidecar"),
    Case("checkpoint_other_num_classes", lambda t, c: [*evaluate(copy_checkpoint(c, t, sidecar=other_classes)),
                                                       "--out", out(t)],
         r"does not match the architecture in its sidecar: size mismatch"),
    Case("checkpoint_vs_data_classes", lambda t, c: [*evaluate(c, "--dataset", "synthetic", "--image-size", "8"),
                                                     "--out", out(t)],
         r"does not match what the model was trained on: classes 10 \(data\) vs 4 \(the checkpoint\)"),
    Case("checkpoint_vs_data_channels", lambda t, c: [*evaluate(c, "--dataset", "digits", "--image-size", "8"),
                                                      "--out", out(t)],
         r"classes 10 \(data\) vs 4 \(the checkpoint\); channels 1 \(data\) vs 3 \(the checkpoint\)"),
    Case("checkpoint_vs_data_image_size", lambda t, c: [*evaluate(c, "--image-size", "16"), "--out", out(t)],
         r"image size 16 \(data\) vs 8 \(the checkpoint\)"),  # --image-size alone replaces the sidecar's size
    Case("checkpoint_vs_data_class_names", lambda t, c: [*evaluate(copy_checkpoint(c, t, sidecar=other_names)),
                                                         "--out", out(t)],
         r"class names .* \(data\) vs w,x,y,z \(the checkpoint\)"),
    Case("evaluate_test_dir_on_other_data", lambda t, c: [*evaluate(c, "--test-dir", str(t)), "--out", out(t)],
         r"--test-dir applies to --dataset imagefolder only, and this data is synthetic"),
    Case("search_checkpoint_as_model", lambda t, c: [*evaluate(_search_state(t)), "--out", out(t)],
         r"checkpoint\.safetensors is a search checkpoint .*not a trained model; train its genotype first: "
         r"racl train --genotype .*genotype\.json"),
    Case("train_state_as_model", lambda t, c: [*evaluate(_train_state(t)), "--out", out(t)],
         r"state\.safetensors is a training run's resume state, not a model checkpoint; pass .*best\.safetensors"),
    Case("run_folder_as_checkpoint", lambda t, c: [*evaluate(_run_folder(t, c)), "--out", out(t)],
         r"run is a training run folder; pass .*run/best\.safetensors"),
    Case("search_folder_as_checkpoint", lambda t, c: [*evaluate(_search_state(t).parent), "--out", out(t)],
         r"is a search run folder, not a trained model; train its genotype first"),
    Case("device_unavailable", lambda t, c: [*evaluate(c, "--device", "cuda:99"), "--out", out(t)],
         r"--device cuda:99: torch (.* sees no CUDA GPU here; use --device cpu|sees \d+ CUDA GPU)"),
    Case("evaluate_out_holds_results", lambda t, c: [*evaluate(c), "--out", out(t)],
         r"OUT already holds an evaluation \(results\.json\); pass --resume .* or --overwrite",
         existing={"results.json": "{}"}),
    Case("report_run_folder_missing", lambda t, c: ["report", str(t / "nope"), "--out", out(t)],
         r"run folder not found: .*nope; pass search, training or evaluation run folders"),
    Case("report_folder_holds_no_run", lambda t, c: ["report", str(_mkdir(t / "empty") / "empty"), "--out", out(t)],
         r"empty holds no racl run \(no genotype.json"),
    Case("truncated_safetensors", lambda t, c: [*evaluate(copy_checkpoint(c, t, weights=lambda b: b[: len(b) // 2])),
                                                "--out", out(t)],
         r"not a readable safetensors checkpoint .*truncated"),
    Case("pickle_checkpoint_suffix", lambda t, c: [*evaluate(_write(t / "model.pt", b"\x80\x04N.")), "--out", out(t)],
         r"model\.pt: racl reads only X\.safetensors .* never unpickles"),
    # numbers and names
    Case("eps_above_one", lambda t, c: [*evaluate(c, "--eps", "2"), "--out", out(t)],
         r"eps '2' = 2\.0 is outside \[0, 1\]"),
    Case("eps_negative", lambda t, c: [*evaluate(c, "--eps=-0.1"), "--out", out(t)],
         r"cannot read eps '-0\.1'; write it like 8/255"),
    Case("eps_train_above_one", lambda t, c: [*TRAIN, *SYNTH, "--eps", "300/255", "--out", out(t)],
         r"eps '300/255' = .* is outside \[0, 1\]"),
    Case("eps_unparsable", lambda t, c: [*evaluate(c, "--eps", "8//255"), "--out", out(t)],
         r"cannot read eps '8//255'"),
    Case("eps_search_divides_by_zero", lambda t, c: [*SEARCH, "--set", "attack.eps=8/0", "--out", out(t)],
         r"attack.eps must be a number, got '8/0'"),
    Case("unknown_attack", lambda t, c: [*evaluate(c, "--attacks", "fgsm,pgdx"), "--out", out(t)],
         r"unknown attack 'pgdx' \(did you mean pgd or .*\); known: fgsm, pgd, pgd<N>"),
    Case("attack_cw2_means_cw_l2", lambda t, c: [*evaluate(c, "--attacks", "cw2"), "--out", out(t)],
         r"unknown attack 'cw2' \(did you mean cw or cwinf2\?\); racl's CW is CW-inf .* L2 attack of Carlini & "
         r"Wagner is not provided"),
    Case("train_zero_epochs", lambda t, c: [*TRAIN, *SYNTH, "--epochs", "0", "--out", out(t)],
         r"epochs must be >= 1, got 0"),
    Case("search_zero_epochs", lambda t, c: [*SEARCH, "--epochs", "0", "--out", out(t)], r"need epochs >= 1"),
    Case("train_negative_batch_size", lambda t, c: [*TRAIN, *SYNTH, "--batch-size", "-4", "--out", out(t)],
         r"batch_size must be >= 1, got -4"),
    Case("search_zero_batch_size", lambda t, c: [*SEARCH, "--set", "batch_size=0", "--out", out(t)],
         r"batch_size must be >= 2 \(BatchNorm\), got 0"),
    Case("evaluate_zero_batch_size", lambda t, c: [*evaluate(c, "--batch-size", "0"), "--out", out(t)],
         r"--batch-size must be a positive integer, got 0"),
    Case("not_a_number_flag", lambda t, c: [*TRAIN, *SYNTH, "--epochs", "ten", "--out", out(t)],
         r"racl train: argument --epochs: invalid int value: 'ten'; see 'racl train --help'"),
    Case("unknown_choice_flag", lambda t, c: [*TRAIN, *SYNTH, "--adv", "pgd-l2", "--out", out(t)],
         r"argument --adv: invalid choice: 'pgd-l2'"),
    # configs
    Case("search_unknown_config_key", lambda t, c: [*SEARCH, "--set", "bogus=1", "--out", out(t)],
         r"unknown search config key 'bogus'; racl config show search lists every key"),
    Case("search_config_key_misspelt", lambda t, c: [*SEARCH, "--set", "etaa=0.8", "--out", out(t)],
         r"unknown search config key 'etaa' \(did you mean constraint\.eta\?\); racl config show search lists every key"),
    Case("search_bare_section_key", lambda t, c: [*SEARCH, "--set", "eta=0.8", "--out", out(t)],
         r"unknown search config key 'eta' \(did you mean constraint\.eta\?\); racl config show search lists every key"),
    Case("search_unknown_section", lambda t, c: [*SEARCH, "--set", "constrant.eta=0.8", "--out", out(t)],
         r"unknown search config key 'constrant\.eta' \(did you mean constraint\.eta\?\)"),
    Case("train_bare_section_key_in_file", lambda t, c: [*TRAIN, *SYNTH, "--config",
                                                         str(_write(t / "c.yaml", b"eps: 4/255\n")), "--out", out(t)],
         r"unknown training config key 'eps' \(did you mean attack\.eps\?\); racl config show train lists every key"),
    Case("train_unknown_config_key", lambda t, c: [*TRAIN, *SYNTH, "--config", str(_write(t / "c.yaml", b"epoch: 1\n")),
                                                   "--out", out(t)],
         r"unknown training config key 'epoch' \(did you mean epochs\?\); racl config show train"),
    Case("unknown_flag", lambda t, c: [*TRAIN, *SYNTH, "--epoch", "1", "--bogus", "--out", out(t)],
         r"^racl: error: racl train: unrecognized arguments: --bogus; see 'racl train --help'"),
    Case("config_not_yaml", lambda t, c: [*TRAIN, *SYNTH, "--config", str(_write(t / "c.yaml", b"a: [1, 2\nb: }")),
                                          "--out", out(t)], r"training config .*c\.yaml is not valid YAML"),
    Case("config_wrong_type", lambda t, c: [*SEARCH, "--set", "supernet.channels=many", "--out", out(t)],
         r"channels must be a number, got 'many'"),
    # output folders
    Case("out_under_a_file", lambda t, c: [*TRAIN, *SYNTH, "--out", str(_write(t / "afile", b"x") / "run")],
         r"cannot create the output folder .*afile/run"),
    Case("out_is_a_file", lambda t, c: [*SEARCH, "--out", str(_write(t / "afile", b"x"))], r"is a file, not a folder"),
    Case("out_holds_a_training_run", lambda t, c: [*TRAIN, *SYNTH, "--out", out(t)],
         r"already holds a training run \(config.yaml\); pass --resume to continue it or --overwrite",
         existing={"config.yaml": "x: 1\n"}),
    Case("out_holds_a_search_run", lambda t, c: [*SEARCH, "--out", out(t)],
         r"already holds a search run \(metrics.jsonl\); pass --resume .* or --overwrite",
         existing={"metrics.jsonl": "{}\n"}),
    Case("resume_and_overwrite", lambda t, c: [*TRAIN, *SYNTH, "--out", out(t), "--resume", "--overwrite"],
         r"either --resume .* or --overwrite .*not both", existing={"state.safetensors": "x"}),
    Case("resume_nothing_saved", lambda t, c: ["train", "--out", out(t), "--resume"],
         r"nothing to resume in .*OUT \(no state.safetensors: no epoch finished\)", existing={}),
    Case("resume_damaged_state", lambda t, c: ["train", "--out", out(t), "--resume"],
         r"state.safetensors is not a readable safetensors checkpoint", existing={"state.safetensors": "garbage"}),
    # mixed precision: bf16 or none; fp16 refused with the reason
    Case("amp_fp16_search", lambda t, c: [*SEARCH, "--amp", "fp16", "--out", out(t)],
         r"--amp fp16 is not supported: fp16's narrow exponent underflows"),
    Case("amp_fp16_train", lambda t, c: [*TRAIN, *SYNTH, "--amp", "fp16", "--out", out(t)],
         r"--amp fp16 is not supported"),
    Case("amp_fp16_evaluate", lambda t, c: ["evaluate", "--checkpoint", str(c), "--amp", "fp16", "--out", out(t)],
         r"--amp fp16 is not supported"),
    Case("amp_unknown", lambda t, c: [*TRAIN, *SYNTH, "--amp", "int8", "--out", out(t)],
         r"amp must be one of none, bf16, got 'int8'"),
    # numerical failures: the run stops at the first non-finite value; config.yaml (and any earlier checkpoint) stay
    Case("nan_in_search", lambda t, c: [*SEARCH, "--strategy", "darts", "--set", "optim.w_lr=1e30",
                                        "--set", "optim.w_lr_min=0", "--set", "optim.grad_clip=0", "--out", out(t)],
         r"((weight|architecture) loss is nan at epoch 1, step \d+|non-finite values in supernet\.\S+ at the end of "
         r"epoch 1); the run stopped \(no checkpoint was written yet\); lower optim\.w_lr",
         leaves=("config.yaml", "metrics.jsonl")),
    Case("nan_in_training", lambda t, c: [*TRAIN, *SYNTH, "--lr", "1e30", "--grad-clip", "0", "--adv", "none",
                                          "--out", out(t)],
         r"training diverged: .* at epoch 1, step \d+; the run stopped \(no checkpoint was written yet\); lower --lr",
         leaves=("config.yaml",)),
]


def other_names(meta: dict) -> None:
    meta["data_info"] = {"channels": 3, "image_size": 8, "num_classes": 4, "class_names": ["w", "x", "y", "z"]}


def _search_state(tmp: Path) -> Path:
    """A search run folder: genotype.json and a (small) search checkpoint in racl.state's format."""
    from racl.state import save_state

    run = tmp / "search"
    run.mkdir()
    (run / "genotype.json").write_text(genotype_file(tmp).read_text())
    return save_state(run / "checkpoint.safetensors", {"format": "racl-search-v2", "epoch": 1,
                                                        "supernet": {"w": torch.zeros(2)}})


def _train_state(tmp: Path) -> Path:
    from racl.state import save_state

    (tmp / "run").mkdir()
    return save_state(tmp / "run" / "state.safetensors", {"version": 1, "data_generator": torch.zeros(3)})


def _run_folder(tmp: Path, ckpt: Path) -> Path:
    run = tmp / "run"
    run.mkdir()
    for suffix in (".safetensors", ".json"):
        (run / f"best{suffix}").write_bytes(ckpt.with_suffix(suffix).read_bytes())
    return run


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path.parent


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _broken_link(root: Path) -> Path:
    (root / "a" / "dangling.png").symlink_to(root / "missing.png")
    return root


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse errors
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, checkpoint: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "OUT"
    if case.existing is not None:
        target.mkdir()
        for name, text in case.existing.items():
            (target / name).write_text(text)
    before = {p.name: p.read_bytes() for p in target.iterdir()} if target.exists() else None
    argv = case.argv(tmp_path, checkpoint)
    code, stdout, stderr = run_cli(argv, capsys)
    lines = stderr.splitlines()
    assert code == 2, (code, stderr)
    assert len(lines) == 1 and lines[0].startswith("racl: error: "), stderr
    assert re.search(case.message, lines[0]), lines[0]
    assert "Traceback" not in stdout + stderr
    if before is None:
        left = sorted(p.name for p in target.iterdir()) if target.exists() else []
        assert set(left) <= set(case.leaves), left  # nothing half-made
    else:
        assert {p.name: p.read_bytes() for p in target.iterdir()} == before  # an existing run is untouched
    assert not [p for p in tmp_path.rglob(".*") if p.name.endswith(".tmp") or p.name.startswith(".tmp")], \
        "temporary file left behind"


def test_catalogue_has_at_least_20_cases_and_a_documented_row_each() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "bad-inputs.md").read_text()
    assert len(CASES) >= 20
    missing = [c.name for c in CASES if f"`{c.name}`" not in doc]
    assert not missing, f"cases without a row in docs/bad-inputs.md: {missing}"


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    from racl.errors import RaclError

    with pytest.raises(RaclError, match="unknown dataset"):
        main(["--debug", *TRAIN, "--dataset", "mnist", "--out", str(tmp_path / "o")])
