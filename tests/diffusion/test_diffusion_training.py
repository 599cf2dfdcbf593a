"""Training, exact resume, checkpoints (round trip and clear errors), sampling, data stream and the CLI; a
resume that cannot be the same run is refused, a killed run's log and a truncated newest checkpoint are
repaired, and arguments that cannot train are refused before any work."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import zarr
from safetensors.torch import load_file
from typer.testing import CliRunner

from matdiff.diffusion import (
    BatchStream,
    CheckpointError,
    DiffusionModel,
    UNet,
    export_model,
    load_model,
    save_checkpoint,
    train,
)
from matdiff.diffusion.checkpoint import checkpoint_dirs

HASH = "ab" * 32


def make_store(path: Path, n: int = 16, spatial: tuple[int, ...] = (8, 8), channels: int = 3) -> Path:
    """A zarr group laid out like matdiff datasets: smooth random fields (n, C, *spatial) in [-1, 1]."""
    rng = np.random.default_rng(0)
    grids = np.meshgrid(*[np.linspace(0, 1, s) for s in spatial], indexing="ij")
    fields = np.stack(
        [
            np.stack(
                [np.sin(2 * np.pi * (rng.uniform() * sum(grids) + rng.uniform())) for _ in range(channels)]
            )
            for _ in range(n)
        ]
    ).astype(np.float32)
    root = zarr.open_group(str(path), mode="w")
    root.create_array("fields", data=fields, chunks=(4, channels, *spatial))
    root.attrs.update(
        {
            "catalogue_hash": HASH,
            "dim": len(spatial),
            "size": spatial[0],
            "complete": True,
            "lo": [1.0, 0.1, 1.0],
            "hi": [400.0, 0.45, 20.0],
            "channels": ["E", "nu", "rho"],
        }
    )
    return path


def tiny_train(data: Path, out: Path, **kwargs):
    args = dict(
        preset="tiny",
        steps=4,
        batch=4,
        lr=1e-3,
        warmup=1,
        ckpt_every=100,
        seed=0,
        device="cpu",
        progress=False,
        log_every=2,
    )
    return train(data, out, **{**args, **kwargs})


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("data") / "fields.zarr")


@pytest.fixture(scope="module")
def run(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    tiny_train(store, out, steps=3)
    return out


def _denoising_error(model: DiffusionModel, x0: torch.Tensor) -> float:
    """Mean ||x0_hat - x0||^2 over fixed timesteps spread over 0..999 and fixed noise."""
    t = torch.linspace(0, 999, len(x0)).long()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    abar = model.alphas_cumprod[t].view(-1, 1, 1, 1)
    with torch.no_grad():
        x0_hat, _ = model.predict(abar.sqrt() * x0 + (1 - abar).sqrt() * noise, t)
    return float((x0_hat - x0).square().mean())


def test_training_reduces_loss(store, tmp_path):
    result = tiny_train(store, tmp_path / "fit", steps=100, batch=8, lr=1e-2, warmup=0)
    losses = np.array(result.losses)
    assert len(losses) == 100 and np.isfinite(losses).all() and losses[-20:].mean() < losses[:20].mean()
    assert (tmp_path / "fit" / "train_log.jsonl").read_text().count("\n") == 50
    trained = load_model(tmp_path / "fit")
    torch.manual_seed(0)  # train() initializes with the run's seed
    initial = DiffusionModel(UNet(**trained.config["unet"]), trained.config)
    x0 = torch.from_numpy(zarr.open_group(str(store), mode="r")["fields"][:])
    assert _denoising_error(trained, x0) < 0.75 * _denoising_error(initial, x0)  # 0.39 vs 0.66 measured


def test_resume_is_exact(store, tmp_path):
    straight = tiny_train(store, tmp_path / "a")
    first = tiny_train(store, tmp_path / "b", stop_after=2)
    assert first.step == 2 and len(checkpoint_dirs(tmp_path / "b")) == 1
    second = tiny_train(store, tmp_path / "b")
    assert second.step == 4 and second.losses == straight.losses[2:]
    for name in ("model.safetensors", "weights.safetensors"):
        a = load_file(str(checkpoint_dirs(tmp_path / "a")[-1] / name))
        b = load_file(str(checkpoint_dirs(tmp_path / "b")[-1] / name))
        assert all(torch.equal(a[k], b[k]) for k in a)
    state_a, state_b = (
        torch.load(checkpoint_dirs(p)[-1] / "train_state.pt", weights_only=True)
        for p in (tmp_path / "a", tmp_path / "b")
    )
    assert state_a["lr_scheduler"] == state_b["lr_scheduler"]
    for k, v in state_a["optimizer"]["state"].items():
        assert torch.equal(v["exp_avg_sq"], state_b["optimizer"]["state"][k]["exp_avg_sq"])
    assert tiny_train(store, tmp_path / "b").losses == []  # already done: nothing to do


def test_resume_with_conflicting_arguments_fails(run, store, tmp_path):
    shutil.copytree(run, tmp_path / "r")
    with pytest.raises(CheckpointError, match="lr"):
        tiny_train(store, tmp_path / "r", lr=0.5, steps=5)


def test_checkpoint_round_trip(run, tmp_path):
    model = load_model(run)
    config = json.loads((checkpoint_dirs(run)[-1] / "config.json").read_text())
    assert model.config == config and model.config["step"] == 3
    assert model.config["catalogue_hash"] == HASH and model.config["normalization"]["hi"][0] == 400.0
    assert (model.dim, model.size, model.channels, model.sample_shape) == (2, 8, 3, (3, 8, 8))
    saved = load_file(str(checkpoint_dirs(run)[-1] / "model.safetensors"))
    assert all(torch.equal(v, saved[k]) for k, v in model.unet.state_dict().items())
    save_checkpoint(tmp_path / "copy", model.config, model.unet)
    again = load_model(tmp_path / "copy")
    assert again.config == model.config
    assert all(torch.equal(v, again.unet.state_dict()[k]) for k, v in model.unet.state_dict().items())
    assert not any(p.requires_grad for p in again.unet.parameters()) and not again.unet.training
    exported = export_model(run, tmp_path / "exported")
    assert sorted(p.name for p in exported.iterdir()) == ["config.json", "model.safetensors"]
    assert load_model(exported).config == model.config


def test_bad_checkpoints_raise_checkpoint_error(run, tmp_path):
    good = checkpoint_dirs(run)[-1]

    def broken(name):
        path = tmp_path / name
        shutil.copytree(good, path)
        return path

    truncated = broken("truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(truncated)

    shapes = broken("shapes")
    config = json.loads((shapes / "config.json").read_text())
    config["unet"]["block_channels"] = [16, 16]
    (shapes / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not match"):
        load_model(shapes)

    missing = broken("missing")
    del config["prediction_type"]
    (missing / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="prediction_type"):
        load_model(missing)

    corrupt = broken("corrupt")
    (corrupt / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(corrupt)

    with pytest.raises(CheckpointError, match="catalogue"):
        load_model(good, catalogue=SimpleNamespace(hash="cd" * 32))
    assert load_model(good, catalogue=SimpleNamespace(hash=HASH)).config["step"] == 3
    with pytest.raises(CheckpointError, match="neither"):
        load_model(tmp_path)
    assert issubclass(CheckpointError, ValueError)


def test_ddim_sampling_is_deterministic_with_eta_zero(run):
    model = load_model(run)
    a = model.sample(2, steps=3, generator=torch.Generator().manual_seed(5), progress=False)
    b = model.sample(2, steps=3, generator=torch.Generator().manual_seed(5), progress=False)
    c = model.sample(2, steps=3, eta=1.0, generator=torch.Generator().manual_seed(5), progress=False)
    assert a.shape == (2, 3, 8, 8) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() <= 1


def test_predict_is_differentiable_and_consistent(run):
    model = load_model(run)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    x0, eps = model.predict(x, 500)
    (g,) = torch.autograd.grad(x0.sum(), x)
    assert g.abs().sum() > 0 and x0.shape == eps.shape == x.shape
    abar = model.alphas_cumprod[500]
    assert torch.allclose(abar.sqrt() * x0 + (1 - abar).sqrt() * eps, x, atol=1e-5)
    assert model.predict(x, torch.tensor([999, 999]), clip=True)[0].abs().max() <= 1
    assert isinstance(model.to("cpu"), DiffusionModel)


def test_batch_stream_is_a_function_of_step_and_covers_epochs(store):
    fields = zarr.open_group(str(store), mode="r")["fields"]
    for cache in (2**30, 1000):  # in memory; streaming with buffers of 2 chunks (4 samples of 768 bytes each)
        stream = BatchStream(fields, 3, seed=1, cache_bytes=cache, buffer_bytes=2 * 4 * 768)
        assert stream.in_memory == (cache == 2**30) and stream.chunks_per_buffer == 2
        first = [stream.batch(k) for k in range(8)]  # 24 samples: all 16 of epoch 0, 8 of epoch 1
        again = BatchStream(fields, 3, seed=1, cache_bytes=cache, buffer_bytes=2 * 4 * 768)
        assert all(np.array_equal(again.batch(k), first[k]) for k in reversed(range(8)))
        seen = np.concatenate(first)[:16]
        assert len({s.tobytes() for s in seen}) == 16


def test_three_d_training_and_sampling(tmp_path):
    data = make_store(tmp_path / "f3.zarr", n=4, spatial=(8, 8, 8))
    train(
        data,
        tmp_path / "r3",
        preset="tiny",
        steps=1,
        batch=2,
        device="cpu",
        progress=False,
        unet_overrides={"spatial_dims": 3},
    )
    model = load_model(tmp_path / "r3")
    assert model.sample(1, steps=2, progress=False).shape == (1, 3, 8, 8, 8)
    with pytest.raises(ValueError, match="2D"):
        train(data, tmp_path / "bad", preset="tiny", steps=1, device="cpu", progress=False)


def test_cli_train_and_sample(store, tmp_path):
    import typer

    from matdiff.cli import sample as sample_cli
    from matdiff.cli import train as train_cli

    app = typer.Typer()
    train_cli.register(app)
    sample_cli.register(app)
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(store),
            "--out",
            str(out),
            "--preset",
            "tiny",
            "--steps",
            "2",
            "--batch",
            "2",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "sample",
            "--model",
            str(out),
            "--n",
            "3",
            "--steps",
            "2",
            "--out",
            str(tmp_path / "s"),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "s" / "samples.npy").shape == (3, 3, 8, 8)
    assert (tmp_path / "s" / "grid.png").stat().st_size > 0


@pytest.fixture(scope="module")
def finished(store, tmp_path_factory):
    """A 4-step run with checkpoints at steps 2 and 4 and a log line per step."""
    out = tmp_path_factory.mktemp("runs") / "four"
    straight = tiny_train(store, out, ckpt_every=2, log_every=1)
    return out, straight


def logged_steps(run):
    return [json.loads(line)["step"] for line in (run / "train_log.jsonl").read_text().splitlines()]


def test_a_resume_after_a_kill_cuts_the_log_back_to_the_checkpoint(finished, store, tmp_path):
    run = shutil.copytree(finished[0], tmp_path / "run")
    shutil.rmtree(checkpoint_dirs(run)[-1])  # killed after logging steps 3 and 4, before checkpoint 4
    with open(run / "train_log.jsonl", "a") as log:
        log.write('{"step": 5, "lo')  # and torn mid-line
    tiny_train(store, run, ckpt_every=2, log_every=1)
    assert logged_steps(run) == [1, 2, 3, 4]


def test_a_truncated_newest_checkpoint_falls_back_to_the_one_before(finished, store, tmp_path):
    run = shutil.copytree(finished[0], tmp_path / "run")
    newest = checkpoint_dirs(run)[-1] / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.warns(UserWarning, match="skipping unreadable checkpoint step_00000004"):
        resumed = tiny_train(store, run, ckpt_every=2, log_every=1)
    assert resumed.step == 4 and resumed.losses == finished[1].losses[2:]
    weights = load_file(str(checkpoint_dirs(run)[-1] / "model.safetensors"))
    expected = load_file(str(checkpoint_dirs(finished[0])[-1] / "model.safetensors"))
    assert all(bool((weights[k] == v).all()) for k, v in expected.items())


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(preset="seedB"), "preset"),
        (dict(unet_overrides={"stem_channels": 8}), "overrides"),
        (dict(data="other"), "not the store"),
    ],
)
def test_a_resume_with_other_data_preset_or_unet_is_refused(finished, store, tmp_path, change, match):
    run = shutil.copytree(finished[0], tmp_path / "run")
    data = make_store(tmp_path / "other.zarr", n=8) if change.pop("data", None) else store
    with pytest.raises(CheckpointError, match=match):
        tiny_train(data, run, steps=6, **change)


@pytest.mark.parametrize(
    "change",
    [
        dict(steps=0),
        dict(batch=0),
        dict(ckpt_every=0),
        dict(log_every=0),
        dict(lr=float("nan")),
        dict(lr=-1.0),
        dict(seed=-1),
        dict(ema=1.5),
        dict(stop_after=0),
        dict(preset="bogus"),
    ],
)
def test_arguments_that_cannot_train_are_refused_before_any_work(store, tmp_path, change):
    with pytest.raises(ValueError, match=next(iter(change))):
        tiny_train(store, tmp_path / "run", **change)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("size", 7, "size must be a positive multiple of 4"),
        ("size", "32", "size"),
        ("dim", 3, "differ from the UNet"),
        ("channels", 1, "differ from the UNet"),
        ("prediction_type", "noise", "prediction_type must be one of"),
        ("scheduler", {"beta_schedule": "bogus"}, "cannot build a schedule"),
        ("normalization", {"lo": [0, 0, 0], "hi": [1, 1]}, "normalization"),
    ],
)
def test_a_config_with_a_bad_field_is_refused_at_load(run, tmp_path, field, value, match):
    path = shutil.copytree(checkpoint_dirs(run)[-1], tmp_path / "bad")
    config = json.loads((path / "config.json").read_text())
    config[field] = value
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=match):
        load_model(path)
