"""Every test runs with one torch thread: the grids and networks in tests are tiny, and on a shared 2-core
machine torch's thread barriers made them ~10-30x slower (tests/fem: 136 s with 2 threads vs 10-25 s).
``tiny_model``: an untrained tiny-preset particle prior on 8x8 fields of the shipped catalogue;
``fem_fails_for_sample_1``: guidance's bulk-modulus solves fail for sample 1 (as when its retry fails too)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread_session():
    """Build every fixture, module-scoped ones included, with torch.set_num_threads(1).

    A module fixture built under the default thread count would train or solve in other floating-point
    orders than the one-thread test that compares against it (a resumed run differed in the last bits)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _single_thread(_single_thread_session):
    """Run one test with one torch thread, restoring one thread after a test that changed it."""
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_model():
    """An untrained tiny-preset DiffusionModel of 3-channel 8x8 particle fields (seeded initialization)."""
    from matdiff.diffusion import untrained_model
    from matdiff.materials import load_catalogue

    return untrained_model("tiny", 8, catalogue_hash=load_catalogue().hash)


@pytest.fixture
def fem_fails_for_sample_1(monkeypatch):
    """Make guidance's bulk-modulus solve of sample 1 of every batch fail (NaN, residual 0.5, retried)."""
    from matdiff import fem
    from matdiff.guidance.objectives import FEM_QUANTITIES

    def fails_for_sample_1(E, nu, **kwargs):
        value, status = fem.bulk_modulus(E, nu, **kwargs)
        failed = torch.arange(len(value)) == 1
        status = fem.SolveStatus(status.converged & ~failed, status.residual.masked_fill(failed, 0.5), failed)
        return value.masked_fill(failed, float("nan")), status

    monkeypatch.setitem(FEM_QUANTITIES, "bulk_modulus", fails_for_sample_1)
