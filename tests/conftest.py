"""Suite-wide settings: one torch thread.

The tests use tiny tensors, for which a second OpenMP thread costs more than it gives, and on a
busy 2-core machine it made small convolutions 30-100x slower (measured while developing).
"""
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
