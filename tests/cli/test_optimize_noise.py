"""`matdiff optimize-noise` with the curve objectives: an untrained tiny one-channel prior on 8x8 images and
the stand-in FEM curves (``fake_fem_curves``); the files of a run, seed B's defaults, fixed fields, --help."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from matdiff.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A saved untrained tiny-preset prior of one-channel 8x8 images."""
    from matdiff.diffusion import save_checkpoint, untrained_model

    net = untrained_model("tiny", 8, channels=1)
    return save_checkpoint(tmp_path_factory.mktemp("model") / "tiny", net.config, net.unet)


def run(model_dir, out, *options: str):
    """Invoke optimize-noise with the tiny model into ``out``; returns (result, summary, arrays)."""
    result = runner.invoke(app, ["optimize-noise", "--model", str(model_dir), "--out", str(out), *options])
    assert result.exit_code == 0, (result.output, result.exception)
    with np.load(out / "arrays.npz") as stored:
        arrays = {name: stored[name] for name in stored.files}
    return result, json.loads((out / "result.json").read_text()), arrays


def test_energy_curve_run_writes_its_files_with_a_binary_stage(model_dir, tmp_path, fake_fem_curves):
    from matdiff.guidance.noise_objectives import energy_target

    out = tmp_path / "energy"
    options = ["--objective", "energy-curve", "--alpha", "0.4", "--n-designs", "2", "--max-iter", "1"]
    result, summary, arrays = run(
        model_dir, out, *options, "--gammas", "2,5", "--binary-stage", "--seed", "3"
    )
    for name in ("result.json", "arrays.npz", "designs.png", "loss_curve.png", "curves.png", "deformed.png"):
        assert (out / name).exists(), name
    assert not (out / "tiling_5x5.png").exists()  # not a periodic cell
    assert summary["objective"]["name"] == "energy-curve" and summary["target_name"] == "alpha 0.4"
    np.testing.assert_allclose(summary["target"], energy_target(0.4).numpy())
    assert summary["objective"]["target_source"] == {"alpha": 0.4} and summary["seed"] == 3
    assert summary["config"]["binary_stage"] and [s["binary"] for s in summary["stages"]] == [
        False,
        False,
        True,
    ]
    assert np.array(summary["energy_final"]).shape == (2, 10) and len(summary["loss_thresholded"]) == 2
    assert summary["loss_final"] == summary["loss_thresholded"]  # the binary stage's design is the built one
    assert arrays["design_final"].shape == (2, 1, 8, 8) and arrays["displacement_final"].shape == (2, 2, 9, 9)
    assert "thresholded" in result.output and "wall time" in result.output


def test_seed_b_defaults_per_objective(model_dir, tmp_path, fake_fem_curves):
    _, energy, _ = run(model_dir, tmp_path / "e", "--objective", "energy-curve", "--max-iter", "1")
    assert energy["config"]["gammas"] == [2.0, 5.0, 10.0, 20.0, 100.0] and energy["config"]["tol"] == 1e-3
    assert energy["objective"]["target_source"] == {"alpha": 0.3} and not energy["config"]["binary_stage"]
    _, group, arrays = run(
        model_dir, tmp_path / "g", "--objective", "stress-curve", "--group", "2", "--tol", "1e9"
    )
    assert group["config"]["gammas"] == [10.0, 20.0, 100.0] and group["config"]["max_iter"] == 100
    assert group["objective"]["fields"] == ["E", "sigma0"] and arrays["noise_init"].shape == (1, 2, 8, 8)
    assert all(s["iterations"] == [0] for s in group["stages"])  # every stage starts below the tolerance


def test_digit_pair_target_keeps_the_other_field_fixed(model_dir, tmp_path, fake_fem_curves):
    from matdiff.diffusion import load_model
    from matdiff.guidance.noise_opt import generated_densities

    options = [
        "--objective",
        "stress-curve",
        "--target-digits",
        "5,9",
        "--fields",
        "sigma0",
        "--max-iter",
        "1",
    ]
    _, summary, arrays = run(model_dir, tmp_path / "d", *options, "--gammas", "5")
    pair = generated_densities(load_model(model_dir), (5, 9), gamma=100.0)
    np.testing.assert_allclose(arrays["fixed_E"], pair[0].double().numpy())
    assert summary["objective"]["fields"] == ["sigma0"] and summary["objective"]["fixed"] == ["E"]
    assert summary["objective"]["target_source"] == {"digits": [5, 9], "gamma": 100.0}
    assert summary["config"]["tol"] == 0.2 and arrays["noise_init"].shape == (1, 1, 8, 8)
    fixed_E = 1e3 + (1e5 - 1e3) * pair[0].double()
    assert all(torch.allclose(call["E"], fixed_E.expand_as(call["E"])) for call in fake_fem_curves.calls)
    assert (tmp_path / "d" / "deformed.png").exists()


def test_help_explains_the_objective_options():
    result = runner.invoke(app, ["optimize-noise", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    for option in ("--objective", "--alpha", "--group", "--target-digits", "--fields", "--binary-stage"):
        assert option in text
    for phrase in ("energy-curve", "stress-curve", "eq. 34", "Table 1", "straight-through"):
        assert phrase in text
