"""Every test runs with one torch thread: the grids and networks in tests are tiny, and on a shared 2-core
machine torch's thread barriers made them ~10-30x slower (tests/fem: 136 s with 2 threads vs 10-25 s)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    """Run one test with torch.set_num_threads(1), restoring the previous count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
