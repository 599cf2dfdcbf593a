"""Every test runs with one torch thread: the grids and networks in tests are tiny, and on a shared 2-core
machine torch's thread barriers made them ~10-30x slower (tests/fem: 136 s with 2 threads vs 10-25 s).
``tiny_model``: an untrained tiny-preset particle prior on 8x8 fields of the shipped catalogue."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    """Run one test with torch.set_num_threads(1), restoring the previous count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_model():
    """An untrained tiny-preset DiffusionModel of 3-channel 8x8 particle fields (seeded initialization)."""
    from matdiff.diffusion import DiffusionModel, UNet, get_preset
    from matdiff.materials import load_catalogue

    torch.manual_seed(0)
    preset = get_preset("tiny")
    config = {
        "unet": preset["unet"],
        "scheduler": preset["scheduler"],
        "prediction_type": preset["scheduler"]["prediction_type"],
        "dim": 2,
        "size": 8,
        "channels": 3,
        "catalogue_hash": load_catalogue().hash,
    }
    return DiffusionModel(UNet(**preset["unet"]), config)
