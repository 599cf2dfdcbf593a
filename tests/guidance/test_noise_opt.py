"""Tests for matdiff.guidance.noise_opt: DDIM map, projection, B metric, stages, targets, chain gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from matdiff.diffusion import get_preset, make_scheduler
from matdiff.guidance.noise_opt import (
    SEED_B_TARGETS,
    DdimGenerator,
    NoiseOptConfig,
    binarization,
    evaluate_designs,
    initial_noise,
    optimize_noise,
    parse_target,
    project,
    run_stage,
    select_initial_noise,
    validate_target,
)


def linear_alphas_cumprod(T: int = 1000) -> torch.Tensor:
    """alphas_cumprod of the linear beta schedule 1e-4 .. 0.02 (seed B)."""
    return torch.cumprod(1.0 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64), 0)


class TinyDenoiser(torch.nn.Module):
    """Stand-in for DiffusionModel: a 2-layer conv net eps(x_t, t) with the .predict/.scheduler contract."""

    def __init__(self, dtype: torch.dtype = torch.float64, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.unet = torch.nn.Sequential(
            torch.nn.Conv2d(2, 4, 3, padding=1, padding_mode="circular"),
            torch.nn.Tanh(),
            torch.nn.Conv2d(4, 1, 3, padding=1, padding_mode="circular"),
        ).to(dtype)
        self.config = {"channels": 1, "size": 8}

    def predict(
        self, x_t: torch.Tensor, t: torch.Tensor, clip: bool = False, condition=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a = linear_alphas_cumprod().to(x_t)[t].view(-1, 1, 1, 1)
        tt = (t.to(x_t) / 1000.0).view(-1, 1, 1, 1).expand_as(x_t)
        eps = 0.5 * x_t + self.unet(torch.cat([x_t, tt], dim=1))
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt(), eps

    def scheduler(self, kind: str = "ddim"):
        return make_scheduler(get_preset("seedB")["scheduler"], kind)


def standin_stiffness(E: torch.Tensor, nu: torch.Tensor, plane: str = "stress") -> torch.Tensor:
    """Differentiable anisotropic stand-in for C_hom (B, 3, 3): series/parallel mixing along x and y."""
    Ex = (1.0 / (1.0 / E).mean(dim=2)).mean(dim=1)  # harmonic along x (W), arithmetic across rows
    Ey = (1.0 / (1.0 / E).mean(dim=1)).mean(dim=1)
    n = nu.mean(dim=(1, 2))
    q = 1.0 / (1.0 - n**2)
    H, W = E.shape[1:]
    y = torch.linspace(-0.5, 0.5, H, dtype=E.dtype).view(1, H, 1)
    x = torch.linspace(-0.5, 0.5, W, dtype=E.dtype).view(1, 1, W)
    c13 = (E * x * y).mean(dim=(1, 2))
    c33 = E.mean(dim=(1, 2)) / (2 * (1 + n)) * 0.5
    C = torch.zeros(E.shape[0], 3, 3, dtype=E.dtype)
    C[:, 0, 0], C[:, 1, 1], C[:, 2, 2] = q * Ex, q * Ey, c33
    C[:, 0, 1] = C[:, 1, 0] = n * q * (Ex * Ey).sqrt()
    C[:, 0, 2] = C[:, 2, 0] = c13
    C[:, 1, 2] = C[:, 2, 1] = -c13
    return C


# ------------------------------------------------------------------------------------------ DDIM and target


def test_ddim_timesteps_are_seed_b():
    assert DdimGenerator(TinyDenoiser(), 10).timesteps == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]


def test_ddim_generator_matches_diffusers_ddim_eta0():
    from diffusers import DDIMScheduler

    model = TinyDenoiser()
    noise = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours = DdimGenerator(model, 10, use_checkpoint=False)(noise)
    sched = DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        clip_sample=False,
        set_alpha_to_one=True,
        timestep_spacing="trailing",
    )
    sched.set_timesteps(10)
    x = noise
    for t in sched.timesteps:
        _, eps = model.predict(x, torch.full((2,), int(t), dtype=torch.long))
        x = sched.step(eps, int(t), x, eta=0.0).prev_sample
    assert [int(t) for t in sched.timesteps] == DdimGenerator(model, 10).timesteps
    torch.testing.assert_close(ours, x, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "bad, match",
    [
        ([[1, 2], [2, 1]], "3x3"),
        ([[50, 12, 0], [11, 60, 0], [0, 0, 15]], "symmetric"),
        ([[50, 12, 0], [12, float("nan"), 0], [0, 0, 15]], "NaN"),
        ("abc", "3x3"),
    ],
)
def test_bad_targets_raise_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        validate_target(bad)


def test_parse_target():
    C = parse_target("50,12,0;12,60,-3;0,-3,15")
    assert torch.equal(C, torch.tensor(SEED_B_TARGETS["digits"]["biclinic"], dtype=torch.float64))
    for text in ("50,12;12,60", "50,12,0;12,60,0", "a,b,c;1,2,3;4,5,6", "1,2,3;2,1,4;3,5,1"):
        with pytest.raises(ValueError):
            parse_target(text)


# ---------------------------------------------------------------------------------- projection and B metric


def test_projection_range_symmetry_and_sharpening():
    x = torch.linspace(-1, 1, 101, dtype=torch.float64)
    p = project(x, 5.0)
    assert p.min() > 0 and p.max() < 1
    torch.testing.assert_close(project(-x, 5.0), 1 - p)
    assert project(torch.tensor(0.0), 80.0) == 0.5
    assert project(torch.tensor(0.2), 80.0) > project(torch.tensor(0.2), 5.0)


def test_binarization_metric():
    d = torch.tensor([[[0.0, 1e-3, 0.5, 1.0]], [[0.2, 0.9995, 1.0, 0.0]]], dtype=torch.float64)
    torch.testing.assert_close(binarization(d, 1e-3), torch.tensor([0.75, 0.75], dtype=torch.float64))
    # a steep projection of generic values binarizes almost every pixel
    x = torch.randn(1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert binarization(project(x, 100.0)) > binarization(project(x, 5.0))


# ------------------------------------------------------------------------------------------------- stages


def marked_quadratic_loss(w: torch.Tensor) -> torch.Tensor:
    """Per-design loss (B,): sum((w - 1)^2) over all but pixel (0, 0), plus 1 when that marker is > 0.5.

    The marker has no gradient, so it never moves: a design that starts with marker 1 can never reach tol.
    """
    body = ((w - 1.0) ** 2).flatten(1)[:, 1:].sum(1)
    return body.double() + (w.flatten(1)[:, 0].detach() > 0.5).double()


def rosenbrock_losses(w: torch.Tensor) -> torch.Tensor:
    """Per-design Rosenbrock loss (B,) over consecutive pixel pairs (a, b): 100 (b - a^2)^2 + (1 - a)^2."""
    a, b = w.flatten(1)[:, 0::2], w.flatten(1)[:, 1::2]
    return (100 * (b - a**2) ** 2 + (1 - a) ** 2).sum(1)


def test_stage_stops_on_tolerance_and_on_iteration_cap():
    w0 = torch.full((2, 1, 2, 2), 0.9, dtype=torch.float64)  # design 0 starts near the minimum (1, 1)
    w0[1].view(-1)[0::2], w0[1].view(-1)[1::2] = -1.2, 1.0  # design 1: the classic hard start
    out = run_stage(rosenbrock_losses, w0, tol=1e-2, max_iter=7)
    assert out.loss[0] < 1e-2 and out.iterations[0] < 7
    assert out.loss[1] > 1e-2 and out.iterations[1] == 7
    assert out.loss[1] < float(rosenbrock_losses(w0)[1])
    assert torch.equal(out.loss, rosenbrock_losses(out.noise))  # each design ends at its best point


def test_stalled_lbfgs_is_restarted_until_the_iteration_cap():
    w0 = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    w0.view(-1)[0::2], w0.view(-1)[1::2] = -1.2, 1.0
    # one evaluation per iteration: the strong-Wolfe search exhausts L-BFGS's evaluation budget early
    out = run_stage(rosenbrock_losses, w0, tol=1e-12, max_iter=30, max_evals_per_iter=1)
    assert out.iterations[0] == 30
    assert out.loss[0] < float(rosenbrock_losses(w0)[0])


def test_independent_designs_match_single_design_runs():
    w0 = torch.full((2, 1, 2, 2), 0.5, dtype=torch.float64)
    w0[1].view(-1)[0::2], w0[1].view(-1)[1::2] = -1.2, 1.0
    both = run_stage(rosenbrock_losses, w0, tol=1e-2, max_iter=6)
    for i in range(2):
        alone = run_stage(rosenbrock_losses, w0[i : i + 1], tol=1e-2, max_iter=6)
        assert torch.equal(both.noise[i], alone.noise[0]) and both.loss[i] == alone.loss[0]
        assert both.iterations[i] == alone.iterations[0]
    first = both.history[0]
    assert torch.isnan(first[1]) and not torch.isnan(first[0])  # design 1 had not started
    joint = run_stage(rosenbrock_losses, w0, tol=1e-2, max_iter=6, joint=True)
    assert not torch.equal(joint.noise, both.noise)  # the shared line search takes other steps


def test_select_initial_noise_keeps_the_lowest_losses():
    cands = torch.randn(10, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    loss = lambda w: (w**2).flatten(1).sum(1)  # noqa: E731
    noise, idx, losses = select_initial_noise(loss, cands, 3, chunk=4)
    torch.testing.assert_close(losses, loss(cands))
    assert idx.tolist() == torch.argsort(losses)[:3].tolist()
    assert torch.equal(noise, cands[idx])
    with pytest.raises(ValueError, match="cannot keep"):
        select_initial_noise(loss, cands, 11)


def test_optimize_noise_starts_from_the_best_candidates():
    target = [[40.0, 10.0, 0.0], [10.0, 40.0, 0.0], [0.0, 0.0, 8.0]]
    cfg = NoiseOptConfig(gammas=(2.0,), max_iter=1, checkpoint=False, n_candidates=12)
    kw = dict(n_designs=2, seed=0, stiffness_fn=standin_stiffness, image_shape=(1, 8, 8))
    res = optimize_noise(TinyDenoiser(), target, config=cfg, **kw)
    cand = res.extra["candidates"]
    assert cand["n"] == 12 and len(cand["chosen_index"]) == 2
    assert max(cand["chosen_loss"]) <= cand["median_loss"]
    pool = initial_noise(12, (1, 8, 8), 0, torch.float64)
    assert np.array_equal(res.noise_init, pool[cand["chosen_index"]].numpy())
    with pytest.raises(ValueError, match="not both"):
        optimize_noise(TinyDenoiser(), target, noise=pool[:2], config=cfg, **kw)


def test_stage_is_skipped_when_already_below_tolerance():
    w0 = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    w0[0, 0, 0, 0] = 0.0
    out = run_stage(marked_quadratic_loss, w0, 1e-2, 10)
    assert out.iterations.tolist() == [0] and out.loss[0] == 0.0


def test_optimize_noise_advances_gamma_and_returns_records():
    model = TinyDenoiser()
    target = [[40.0, 10.0, 0.0], [10.0, 40.0, 0.0], [0.0, 0.0, 8.0]]
    cfg = NoiseOptConfig(gammas=(2.0, 5.0, 10.0), max_iter=2, tol=1e-2, checkpoint=False)
    seen: list[float] = []
    res = optimize_noise(
        model,
        target,
        n_designs=2,
        seed=0,
        config=cfg,
        stiffness_fn=standin_stiffness,
        image_shape=(1, 8, 8),
        progress=lambda k, g, losses, its: seen.append(g),
    )
    assert seen == sorted(seen) and set(seen) == {2.0, 5.0, 10.0}
    assert [s.gamma for s in res.stages] == [2.0, 5.0, 10.0]
    assert res.noise_final.shape == res.noise_init.shape == (2, 1, 8, 8)
    assert res.design_final.shape == (2, 8, 8) and res.C_final.shape == (2, 3, 3)
    assert all(0 <= it <= 2 for s in res.stages for it in s.iterations)
    assert res.loss_history.shape[1] == 2 and len(res.history_stage) == len(res.loss_history)
    assert res.stages[0].loss[0] <= res.loss_history[res.history_stage == 0][0, 0] + 1e-9
    assert np.all((res.binarization >= 0) & (res.binarization <= 1))
    summary = res.summary()
    assert summary["config"]["gammas"] == (2.0, 5.0, 10.0) and len(summary["stages"]) == 3


def test_optimize_noise_rejects_bad_target():
    with pytest.raises(ValueError, match="symmetric"):
        optimize_noise(TinyDenoiser(), [[1, 2, 0], [0, 1, 0], [0, 0, 1]], stiffness_fn=standin_stiffness)


# ------------------------------------------------------------------------------------------ chain gradient


def chain_loss_and_grad(model, noise, stiffness_fn, gamma=5.0):
    """Loss (B,) of the whole chain and its gradient w.r.t. the noise (checkpointed DDIM)."""
    cfg = NoiseOptConfig(checkpoint=True)
    target = torch.tensor(SEED_B_TARGETS["digits"]["biclinic"], dtype=torch.float64)
    gen = DdimGenerator(model, 10, use_checkpoint=True)
    w = noise.clone().requires_grad_(True)
    loss = evaluate_designs(w, gen, gamma, target, cfg, stiffness_fn).loss
    loss.sum().backward()
    return lambda v: evaluate_designs(v, gen, gamma, target, cfg, stiffness_fn).loss.sum(), w.grad


def check_directional_derivatives(model, stiffness_fn, shape, n_dirs=2, h=1e-5, rtol=1e-5):
    noise = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    f, grad = chain_loss_and_grad(model, noise, stiffness_fn)
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for _ in range(n_dirs):
            v = torch.randn(*shape, dtype=torch.float64, generator=gen)
            fd = (f(noise + h * v) - f(noise - h * v)) / (2 * h)
            an = (grad * v).sum()
            assert abs(fd - an) <= rtol * abs(an) + 1e-8, (float(fd), float(an))


def test_chain_gradient_matches_finite_differences_standin_fem():
    check_directional_derivatives(TinyDenoiser(), standin_stiffness, (2, 1, 8, 8))


def test_chain_gradient_matches_finite_differences_real_fem():
    from matdiff.fem import homogenized_stiffness

    check_directional_derivatives(TinyDenoiser(), homogenized_stiffness, (1, 1, 8, 8), n_dirs=1, rtol=1e-4)


# ------------------------------------------------------------------------------------------------------ CLI


def test_cli_rejects_bad_targets(tmp_path):
    from typer.testing import CliRunner

    from matdiff.cli.app import app

    for bad in ("50,12,0;11,60,0;0,0,15", "50,12;12,60", "nan,0,0;0,1,0;0,0,1", "cubic"):
        res = CliRunner().invoke(app, ["optimize-noise", "--target-C", bad, "--out", str(tmp_path / "o")])
        assert res.exit_code == 2, res.output
        assert "target-C" in res.output


def test_cli_optimize_noise_end_to_end(tmp_path):
    """A 1-step tiny-preset model on 16x16 cells, one stage of 1 iteration, real FEM: files are written."""
    import json

    from typer.testing import CliRunner

    from matdiff.cli.app import app
    from matdiff.diffusion import train
    from matdiff.styles import make_style_store

    store = make_style_store("metamaterial", tmp_path / "m.zarr", n=4, size=16)
    train(store, tmp_path / "run", preset="tiny", steps=1, batch=2, device="cpu", progress=False)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "optimize-noise",
            "--style",
            "digits",
            "--target-C",
            "orthotropic",
            "--model",
            str(tmp_path / "run"),
            "--out",
            str(out),
            "--n-designs",
            "2",
            "--gammas",
            "5",
            "--max-iter",
            "1",
            "--candidates",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "result.json").read_text())
    assert summary["target"] == SEED_B_TARGETS["digits"]["orthotropic"] and summary["n_designs"] == 2
    assert len(summary["stages"]) == 1 and len(summary["binarization"]) == 2 and summary["wall_time_s"] > 0
    assert summary["config"]["gammas"] == [5.0]
    assert summary["candidates"]["n"] == 3 and len(summary["candidates"]["chosen_index"]) == 2
    for name in ("designs.png", "tiling_5x5.png", "loss_curve.png", "arrays.npz"):
        assert (out / name).exists()
