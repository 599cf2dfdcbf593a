"""The training recipe's pieces: patches, grid symmetries, Min-SNR weights, conditioning, bf16, monitoring."""

import json

import numpy as np
import pytest
import torch
from test_diffusion_training import make_store

from matdiff.diffusion import UNet, get_preset, train
from matdiff.diffusion.data import symmetry_augment
from matdiff.diffusion.presets import PRESETS
from matdiff.diffusion.schedule import alphas_cumprod, loss_weights, signal_to_noise
from matdiff.diffusion.unet import depth_to_space, space_to_depth


@pytest.mark.parametrize("shape", [(2, 3, 8, 12), (2, 1, 4, 8, 6)])
def test_space_to_depth_folds_blocks_into_channels_and_back(shape):
    x = torch.randn(shape)
    folded = space_to_depth(x, 2)
    assert folded.shape == (shape[0], shape[1] * 2 ** (len(shape) - 2), *(s // 2 for s in shape[2:]))
    assert torch.equal(depth_to_space(folded, 2), x)
    if len(shape) == 4:  # the 2D fold is PyTorch's pixel_unshuffle
        assert torch.equal(folded, torch.nn.functional.pixel_unshuffle(x, 2))


def test_patch_unet_keeps_shape_and_rejects_sizes_it_cannot_fold():
    unet = UNet(**{**get_preset("tiny")["unet"], "patch_size": 2})
    x = torch.randn(2, 3, 16, 16)
    assert unet(x, torch.tensor([3, 500])).shape == x.shape
    with pytest.raises(ValueError, match="divisible by 8"):
        unet(torch.randn(1, 3, 12, 12), 3)


def test_matdiff_preset_runs_at_half_resolution():
    preset = PRESETS["matdiff-2d"]
    unet = UNet(**preset["unet"])
    assert unet.stem.in_channels == 12 and preset["training"]["augment"]
    assert unet(torch.randn(1, 3, 64, 64), 10).shape == (1, 3, 64, 64)


def _symmetries(field: np.ndarray) -> list[np.ndarray]:
    """All 8 images of a (C, n, n) field under the square's symmetries."""
    out = []
    for transpose in (False, True):
        base = field.transpose(0, 2, 1) if transpose else field
        for flips in ((), (1,), (2,), (1, 2)):
            out.append(np.flip(base, flips) if flips else base)
    return out


def test_symmetry_augment_draws_grid_symmetries_uniformly_and_deterministically():
    field = np.arange(2 * 5 * 5, dtype=np.float32).reshape(1, 2, 5, 5)
    batch = np.repeat(field, 4000, axis=0)
    out = symmetry_augment(batch, np.random.default_rng(0))
    images = _symmetries(field[0])
    which = [next(k for k, im in enumerate(images) if np.array_equal(o, im)) for o in out]
    counts = np.bincount(which, minlength=8)
    assert counts.min() > 400  # each of the 8 maps about 500 times
    again = symmetry_augment(batch[:10], np.random.default_rng(0))
    np.testing.assert_array_equal(again, out[:10])
    cube = symmetry_augment(np.random.rand(3, 2, 4, 4, 4).astype(np.float32), np.random.default_rng(1))
    assert cube.shape == (3, 2, 4, 4, 4)
    with pytest.raises(ValueError, match="square/cubic"):
        symmetry_augment(np.zeros((1, 1, 4, 5)), np.random.default_rng(0))


def test_min_snr_weights():
    abar = alphas_cumprod(get_preset("seedA-2d")["scheduler"])
    t = torch.arange(1000)
    snr = signal_to_noise(abar, t)
    assert snr[-1] == 0 and bool((snr[:-1] > 0).all())
    assert torch.equal(loss_weights(abar, t, "v_prediction", None), torch.ones(1000))
    assert torch.equal(loss_weights(abar, t, "v_prediction", 0.0), torch.ones(1000))
    w = loss_weights(abar, t, "v_prediction", 5.0)
    expected = torch.minimum(snr, torch.tensor(5.0)) / (snr + 1)
    torch.testing.assert_close(w[:-1], expected[:-1])
    assert w[-1] == 1  # the pure-noise step keeps weight 1
    eps = loss_weights(abar, t, "epsilon", 5.0)
    assert torch.allclose(eps[snr < 5][:-1], torch.ones(1)) and bool((eps[snr > 5] < 1).all())


def test_condition_embedding_uses_a_null_label_for_none_and_nan():
    unet = UNet(**{**get_preset("tiny")["unet"], "condition_dim": 1})
    x, t = torch.randn(3, 3, 8, 8), torch.tensor([5, 5, 5])
    label = torch.tensor([[0.1], [float("nan")], [0.5]])
    out = unet(x, t, label)
    null = unet(x, t)
    torch.testing.assert_close(out[1], null[1])
    assert not torch.allclose(out[0], null[0]) or not torch.allclose(out[2], null[2])
    with pytest.raises(ValueError, match="unconditional"):
        UNet(**get_preset("tiny")["unet"])(x, t, label)


def test_recipe_options_resume_exactly_and_monitor_logs_cpu_time(tmp_path):
    data = make_store(tmp_path / "d.zarr", n=8)
    calls = []

    def monitor(unet, config, step):
        calls.append(step)
        return {"steps_seen": step}

    options = dict(preset="tiny", batch=2, device="cpu", progress=False)
    options |= dict(min_snr_gamma=5.0, augment=True, precision="bf16")
    full = train(data, tmp_path / "full", steps=4, **options, monitor=monitor, monitor_every=2)
    assert calls == [2, 4]
    log = [json.loads(line) for line in (tmp_path / "full" / "monitor_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4] and log[1]["cpu_seconds"] >= log[0]["cpu_seconds"] > 0
    from matdiff.diffusion import load_model

    reported = load_model(tmp_path / "full" / "reported" / "step_00000002")  # kept beyond `keep`
    assert reported.config["step"] == 2 and reported.config["cpu_seconds"] == log[0]["cpu_seconds"]
    train(data, tmp_path / "split", steps=4, stop_after=2, **options)
    split = train(data, tmp_path / "split", steps=4, **options)
    assert split.losses == full.losses[2:]
    last = sorted((tmp_path / "split" / "checkpoints").iterdir())[-1]
    config = json.loads((last / "config.json").read_text())
    assert config["training"]["augment"] and config["training"]["min_snr_gamma"] == 5.0
    with pytest.raises(ValueError, match="precision"):
        train(data, tmp_path / "bad", steps=1, **{**options, "precision": "fp16"})


def test_a_second_phase_starts_from_another_runs_weights(tmp_path):
    data = make_store(tmp_path / "d.zarr", n=8)
    options = dict(preset="tiny", batch=2, device="cpu", progress=False)
    first = train(data, tmp_path / "one", steps=3, **options)
    second = train(data, tmp_path / "two", steps=2, init_from=tmp_path / "one", min_snr_gamma=5.0, **options)
    config = json.loads((second.checkpoint / "config.json").read_text())
    assert config["init_from"]["step"] == 3 and config["training"]["min_snr_gamma"] == 5.0
    assert config["init_from"]["training"]["min_snr_gamma"] is None
    from matdiff.diffusion import load_model

    before, after = load_model(first.checkpoint).unet, load_model(second.checkpoint).unet
    changed = [not torch.equal(a, b) for a, b in zip(before.parameters(), after.parameters(), strict=True)]
    assert any(changed) and not all(torch.equal(a, torch.zeros_like(a)) for a in after.parameters())
    again = train(data, tmp_path / "two", steps=3, init_from=tmp_path / "one", min_snr_gamma=5.0, **options)
    assert again.step == 3  # a started run resumes from its own checkpoint
    from matdiff.diffusion import export_model

    exported = export_model(tmp_path / "two", tmp_path / "shipped")  # EMA weights and config only
    third = train(data, tmp_path / "four", steps=1, init_from=exported, **options)
    assert json.loads((third.checkpoint / "config.json").read_text())["init_from"]["step"] == 3
    with pytest.raises(ValueError, match="keeps that run's preset"):
        train(data, tmp_path / "three", steps=1, init_from=tmp_path / "one", **{**options, "preset": "seedB"})
