"""racl.threads: the thread count follows the free cores; explicit settings win."""
import torch

import racl.threads as threads


def test_choose_threads_leaves_busy_cores_alone():
    assert threads.choose_threads(2, 0.1) == 2
    assert threads.choose_threads(2, 1.2) == 1
    assert threads.choose_threads(2, 3.0) == 1  # never below one
    assert threads.choose_threads(16, 5.6) == 10
    assert threads.choose_threads(4, None) == 4  # unknown load: all of them


def test_explicit_settings_are_used(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("RACL_THREADS", "1")
        monkeypatch.setattr(threads, "busy_cores", lambda: (_ for _ in ()).throw(AssertionError("measured")))
        assert threads.configure() == 1 and torch.get_num_threads() == 1
        monkeypatch.delenv("RACL_THREADS")
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert threads.configure() == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_measured_load_sets_the_count(monkeypatch):
    before = torch.get_num_threads()
    try:
        for name in ("RACL_THREADS", "OMP_NUM_THREADS"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setattr(threads.os, "sched_getaffinity", lambda _pid: {0, 1})
        monkeypatch.setattr(threads.torch, "get_num_threads", lambda: 2)
        monkeypatch.setattr(threads, "busy_cores", lambda: 1.0)
        assert threads.configure() == 1
        monkeypatch.setattr(threads, "busy_cores", lambda: 0.05)
        assert threads.configure() == 2
    finally:
        torch.set_num_threads(before)


def test_busy_cores_reads_proc_stat(monkeypatch):
    samples = iter([(100.0, 400.0), (150.0, 600.0)])  # 50 of 200 jiffies busy
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    assert threads.busy_cores(0.0) == 1.0
    monkeypatch.setattr(threads, "_cpu_times", lambda: None)
    assert threads.busy_cores(0.0) is None


def test_the_racl_command_sets_threads_before_running(monkeypatch, capsys):
    import sys

    from racl import cli

    calls = []
    monkeypatch.setattr(threads, "configure", lambda: calls.append("threads") or 1)
    monkeypatch.setattr(cli, "main", lambda argv=None: calls.append("main") or 0)
    monkeypatch.setattr(sys, "argv", ["racl", "zoo", "list"])
    assert cli.entry() == 0 and calls == ["threads", "main"]
