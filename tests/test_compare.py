"""racl compare: the grid, identical data across architectures, mean/std table, resume, bad inputs.

Tiny CPU settings: synthetic 16x16 data (4 classes), C = 4, 3 cells, 1 epoch of PGD-2 training,
FGSM and PGD-2 on 8 test images.
"""
import json
import statistics

import pytest

from racl.cli import main
from racl.compare import ComparePlan, check_compatible, load_plan, make_plan, mean_std, parse_arch, run_comparison
from racl.compare.plan import MIN_WIDTH, count_params
from racl.data import load_data
from racl.errors import RaclError
from _tiny import train_config
from racl.training.trainer import TrainLoop

TINY = dict(epochs=1, channels=4, layers=3, batch_size=8, steps=2, val_images=8, drop_path=0.0)
CLI = ["compare", "--dataset", "synthetic", "--limit", "8", "--image-size", "16", "--val-fraction", "0.2",
       "--test-fraction", "0.2", "--epochs", "1", "--channels", "4", "--layers", "3", "--batch-size", "8",
       "--steps", "2", "--val-images", "8", "--drop-path", "0", "--attacks", "fgsm,pgd2", "--n-images", "8"]


@pytest.fixture(scope="module")
def data():
    return load_data("synthetic", image_size=16, count=48, num_classes=4, noise=0.25)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A 2 x 2 comparison run through the CLI; records every training batch each run saw."""
    out = tmp_path_factory.mktemp("cmp") / "cmp"
    seen: dict[str, list] = {}
    original = TrainLoop.train_step

    def record(self, x, y, epoch, i, totals):
        seen.setdefault(str(self.run.path), []).append((float(x.double().sum()), y.tolist()))
        return original(self, x, y, epoch, i, totals)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TrainLoop, "train_step", record)
        code = main(CLI + ["--genotypes", "RACL", "darts_v2", "--seeds", "0", "1", "--out", str(out)])
    assert code == 0
    return out, seen


def test_mean_std_is_the_sample_std():
    m = mean_std([0.5, 0.7, 0.9])
    assert m["mean"] == pytest.approx(0.7) and m["std"] == pytest.approx(statistics.stdev([0.5, 0.7, 0.9]))
    assert mean_std([0.3])["std"] is None and mean_std([])["mean"] is None


def test_outputs_and_table_from_per_run_results(finished):
    out, _ = finished
    summary = json.loads((out / "results.json").read_text())
    assert [r["label"] for r in summary["archs"]] == ["RACL", "DARTS_V2"]
    assert summary["metrics"] == ["clean", "fgsm", "pgd2", "worst_case"]
    for row in summary["archs"]:
        runs = [json.loads((out / "runs" / row["label"] / f"seed{s}" / "result.json").read_text()) for s in (0, 1)]
        for name, values in (("clean", [r["clean_accuracy"] for r in runs]),
                             ("pgd2", [r["robust_accuracy"]["pgd2"] for r in runs]),
                             ("train_seconds", [r["train_seconds"] for r in runs])):
            assert row["metrics"][name]["mean"] == pytest.approx(statistics.mean(values))
            assert row["metrics"][name]["std"] == pytest.approx(statistics.stdev(values))
        assert row["metrics"]["params"]["values"] == [row["params"]] * 2
        assert all(r["n_images"] == 8 and r["epochs"] == 1 for r in runs)
    md = (out / "results.md").read_text()
    assert "| RACL |" in md and "± " in md and "pgd2 %" in md
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_identical_data_order_across_architectures(finished):
    out, seen = finished
    runs = {(a, s): seen[str(out / "runs" / a / f"seed{s}" / "train")] for a in ("RACL", "DARTS_V2") for s in (0, 1)}
    assert runs["RACL", 0] == runs["DARTS_V2", 0] and runs["RACL", 1] == runs["DARTS_V2", 1]
    assert runs["RACL", 0] != runs["RACL", 1]


def test_resume_skips_finished_runs(finished, monkeypatch, capsys):
    out, _ = finished
    before = (out / "results.json").read_text()
    (out / "runs" / "DARTS_V2" / "seed1" / "result.json").unlink()  # evaluation lost: only it runs again
    calls = []
    import racl.training

    real = racl.training.train
    monkeypatch.setattr(racl.training, "train", lambda *a, **k: calls.append(k["resume"]) or real(*a, **k))
    assert main(["compare", "--resume", "--out", str(out)]) == 0
    assert calls == [True]  # the finished training was reopened, not repeated
    assert "nothing to do" in capsys.readouterr().out
    def table(text):  # everything but the evaluation's wall time, which was measured again
        return [{**r, "metrics": {k: v for k, v in r["metrics"].items() if k != "eval_seconds"}}
                for r in json.loads(text)["archs"]]

    assert table((out / "results.json").read_text()) == table(before)


def test_interrupted_comparison_resumes_to_the_same_numbers(data, tmp_path, monkeypatch):
    config = train_config(**{**TINY, "epochs": 2})
    plan = make_plan(["RACL"], [0], config, data, attacks=["pgd2"], eval_limit=8)
    whole = run_comparison(plan, data, tmp_path / "whole", log=None)
    import racl.training

    real = racl.training.train

    def killed(*a, **k):
        real(*a, **{**k, "max_epochs": 1})
        raise KeyboardInterrupt

    monkeypatch.setattr(racl.training, "train", killed)
    with pytest.raises(KeyboardInterrupt):
        run_comparison(plan, data, tmp_path / "cut", log=None)
    monkeypatch.setattr(racl.training, "train", real)
    lines = []
    resumed = run_comparison(plan, data, tmp_path / "cut", resume=True, log=lines.append)
    assert any("resuming training" in line for line in lines)
    keys = ("clean_accuracy", "robust_accuracy", "epochs")
    assert [{k: r[k] for k in keys} for r in resumed["runs"]] == [{k: r[k] for k in keys} for r in whole["runs"]]


def test_labels_and_genotype_files(tmp_path):
    from racl.search_space import ZOO

    folder = tmp_path / "search-racl"
    folder.mkdir()
    ZOO["RACL"].save(folder / "genotype.json")
    assert parse_arch(str(folder / "genotype.json"))[0] == "search-racl"
    assert parse_arch(str(folder))[0] == "search-racl"
    assert parse_arch(f"mine={folder / 'genotype.json'}") == ("mine", ZOO["RACL"].to_dict())
    assert parse_arch("advrush") == ("ADVRUSH", "ADVRUSH") and parse_arch("ResNet-18")[1] == "resnet18"
    assert parse_arch("MobileNetV2") == ("MobileNetV2", "mobilenet_v2") and parse_arch("nasnet")[1] == "NASNET"
    assert parse_arch("nb201-resnet") == ("NB201_RESNET", "NB201_RESNET")  # zoo names of every space
    arch = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
    assert parse_arch(f"resnet_cell={arch}") == ("resnet_cell", {"space": "nb201", "arch": arch})


def test_resnet_width_matches_darts_size(data):
    config = train_config(**{**TINY, "channels": 16, "layers": 8})
    plan = make_plan(["RACL", "DARTS_V2", "resnet18", "mobilenet_v2"], [0], config, data, attacks=["fgsm"])
    assert plan.archs[3].params == 2_236_682 - 1281 * 6  # hand-designed: not in the DARTS-space mean; 4 classes
    target = (plan.archs[0].params + plan.archs[1].params) / 2
    width = plan.resnet_width["width"]
    assert width > MIN_WIDTH and plan.archs[2].model_args == {"width": width}
    gap = abs(plan.archs[2].params - target)
    for w in (width - 1, width + 1):
        assert abs(count_params("resnet18", {"width": w}, config, data) - target) >= gap
    assert ComparePlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


@pytest.mark.parametrize("archs, seeds, kw, message", [
    ([], [0], {}, "at least one"),
    (["RACL", "racl"], [0], {}, "labelled"),
    (["RACL"], [0, 0], {}, "distinct"),
    (["RACL"], [-1], {}, "distinct"),
    (["RACL"], [0], {"attacks": ["nope"]}, "unknown attack"),
    (["NOT_A_GENOTYPE"], [0], {}, "neither"),
    (["RACL"], [0], {"eval_limit": -1}, "n-images"),
    (["resnet18"], [0], {"resnet_width": 1}, "resnet-width"),
])
def test_bad_plans_are_refused(data, archs, seeds, kw, message):
    with pytest.raises(RaclError, match=message):
        make_plan(archs, seeds, train_config(**TINY), data, **kw)


def test_output_dir_refusals(data, finished, tmp_path, capsys):
    out, _ = finished
    plan = make_plan(["RACL"], [0], train_config(**TINY), data, attacks=["fgsm"])
    with pytest.raises(RaclError, match="already holds a comparison"):
        run_comparison(plan, data, out, log=None)
    with pytest.raises(RaclError, match="nothing to resume"):
        load_plan(tmp_path / "empty")  # what `racl compare --resume --out DIR` alone continues: nothing
    fresh = run_comparison(plan, data, tmp_path / "empty", resume=True, log=None)  # nothing saved: from the start
    assert [r["label"] for r in fresh["runs"]] == ["RACL"] and load_plan(tmp_path / "empty") == plan
    longer = make_plan(["RACL"], [0], train_config(**{**TINY, "epochs": 2}), data, attacks=["fgsm"])
    check_compatible(plan, longer)  # `epochs` may change on resume (racl.lifecycle's rule)
    changed = make_plan(["RACL"], [0], train_config(**{**TINY, "lr": 0.05}), load_data_like(out), attacks=["fgsm"])
    with pytest.raises(RaclError, match=r"budget\.optim\.lr"):
        run_comparison(changed, load_data_like(out), out, resume=True, log=None)
    assert load_plan(out).seeds == (0, 1)
    args = ["compare", "--genotypes", "RACL", "--out", str(tmp_path / "x"), "--dataset", "synthetic"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--epochs" in err and all(len(l) < 300 for l in err.splitlines())
    # compare takes --seeds only (its help lists no --seed it would then refuse); --seed abbreviates it
    from racl.cli import build_parser

    assert build_parser().parse_args([*args, "--seed", "4"]).seeds == [4]


def load_data_like(out):
    from racl.data import load_data_from_spec

    return load_data_from_spec(load_plan(out).data)


def test_processes_share_a_comparison_through_claims(data, tmp_path):
    """A cell another live process holds is left to it (and read back once it finished); a claim
    file left by a process that died is free again."""
    import subprocess
    import sys

    from racl.compare.run import cell_dir
    from racl.lifecycle import CLAIM, claim

    plan = make_plan(["RACL", "DARTS_V2"], [0], train_config(**TINY), data, attacks=["pgd2"], eval_limit=8)
    out = tmp_path / "cmp"
    racl_cell, darts_cell = (cell_dir(out, a, 0) for a in plan.archs)
    racl_cell.mkdir(parents=True)
    darts_cell.mkdir(parents=True)
    hold = ("import fcntl, json, os, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
            "f.write(json.dumps({'pid': os.getpid(), 'host': 'h'})); f.flush(); print('held', flush=True); "
            "time.sleep(float(sys.argv[2]))")
    subprocess.run([sys.executable, "-c", hold, str(darts_cell / CLAIM), "0"], check=True)  # died: lock gone
    other = subprocess.Popen([sys.executable, "-c", hold, str(racl_cell / CLAIM), "60"], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        lines = []
        first = run_comparison(plan, data, out, log=lines.append)
        assert any(f"RACL seed 0] skipped: process {other.pid} on h" in line for line in lines)
        assert [r["label"] for r in first["runs"]] == ["DARTS_V2"]  # the dead process's claim was free
        assert first["pending"] == [{"label": "RACL", "seed": 0}]
        assert "in progress in another process" in (out / "results.md").read_text()
        with claim(racl_cell) as holder:
            assert holder == {"pid": other.pid, "host": "h"}
    finally:
        other.kill()
        other.wait()
    second = run_comparison(plan, data, out, resume=True, log=None)  # the holder is gone: the cell runs
    assert [r["label"] for r in second["runs"]] == ["DARTS_V2", "RACL"] and second["pending"] == []
