"""TensorBoard logging (racl.tblog): no-op paths, event files from train() and run_search()."""
import json

import pytest

from racl import tblog
from racl.data import load_data
from racl.tblog import TensorBoardLog, scalars
from racl.training import train

from _tiny import train_config


def _events(path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} read back with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_scalars_keep_finite_numbers_only():
    record = {"epoch": 2, "loss": 0.5, "acc": 1, "ok": True, "phase": "search", "g": {"a": 1},
              "none": None, "nan": float("nan"), "inf": float("inf")}
    assert scalars(record) == {"epoch": 2.0, "loss": 0.5, "acc": 1.0}


def test_disabled_is_a_silent_noop(tmp_path, capsys):
    log = TensorBoardLog(tmp_path, enabled=False)
    log.write({"epoch": 1, "loss": 1.0})
    log.close()
    assert not log.active and list(tmp_path.iterdir()) == []
    assert capsys.readouterr().err == ""


def test_missing_package_warns_once_and_does_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tblog, "_writer_class", lambda: None)
    with pytest.warns(UserWarning) as caught:
        log = TensorBoardLog(tmp_path, enabled=True)
        log.write({"epoch": 1, "loss": 1.0})
        log.close()
    assert len(caught) == 1 and "racl[tensorboard]" in str(caught[0].message)  # library code warns, never prints
    assert not log.active and list(tmp_path.iterdir()) == []


def test_writes_scalars_per_epoch(tmp_path):
    import tensorboard  # noqa: F401 - a pinned test dependency (make install): missing = a broken install, a failure
    log = TensorBoardLog(tmp_path, enabled=True)
    log.write({"epoch": 1, "loss": 2.0, "phase": "warmup"})
    log.write({"epoch": 2, "loss": 1.5, "phase": "search"})
    log.close()
    assert _events(tmp_path) == {"loss": [(1, 2.0), (2, 1.5)]}


def test_train_writes_events_matching_metrics(tmp_path):
    import tensorboard  # noqa: F401 - a pinned test dependency (make install): missing = a broken install, a failure
    data = load_data("synthetic", image_size=16, count=48, num_classes=4, noise=0.25)
    cfg = train_config(epochs=2, channels=4, layers=3, batch_size=8, steps=1, val_images=8, drop_path=0.0)
    train("RACL", data, cfg, tmp_path, log=None, tensorboard=True)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    events = _events(tmp_path)
    assert list(tmp_path.glob("events.out.tfevents.*"))
    for key in ("train_loss", "val_robust_acc", "lr", "seconds"):
        assert [s for s, _ in events[key]] == [1, 2]
        assert [v for _, v in events[key]] == pytest.approx([r[key] for r in records], rel=1e-6)


def test_train_without_flag_writes_no_events(tmp_path):
    data = load_data("synthetic", image_size=16, count=48, num_classes=4, noise=0.25)
    cfg = train_config(epochs=1, channels=4, layers=3, batch_size=8, steps=1, val_images=8, drop_path=0.0)
    train("RACL", data, cfg, tmp_path, log=None)
    assert not list(tmp_path.glob("events.out.tfevents.*"))


def test_search_writes_events(tmp_path):
    import tensorboard  # noqa: F401 - a pinned test dependency (make install): missing = a broken install, a failure
    from racl.search import apply_overrides, get_preset, run_search

    data = load_data("synthetic", image_size=16, count=40, channels=3)
    config = apply_overrides(get_preset("tiny"), ["epochs=1"])
    result = run_search(config, data, tmp_path, draw=False, log=None, tensorboard=True)
    events = _events(tmp_path)
    assert events["train_loss"] == [(1, pytest.approx(result.metrics[0]["train_loss"], rel=1e-6))]
    assert "genotype" not in events and "phase" not in events


def test_cli_train_flag(tmp_path):
    import tensorboard  # noqa: F401 - a pinned test dependency (make install): missing = a broken install, a failure
    from racl.cli import main

    out = tmp_path / "run"
    args = ["train", "--genotype", "RACL", "--dataset", "synthetic", "--limit", "6", "--val-fraction", "0.2",
            "--image-size", "16", "--epochs", "1", "--channels", "4", "--layers", "3", "--batch-size", "8",
            "--steps", "1", "--val-images", "8", "--tensorboard", "--out", str(out)]
    assert main(args) == 0
    assert [s for s, _ in _events(out)["train_loss"]] == [1]
