"""Tests for matdiff.guidance.noise_opt and noise_objectives: DDIM map, projection, B metric, stages, targets,
chain gradient, objectives of one or two fields (fixed fields), thresholded loss and the binary stage."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from matdiff.diffusion import get_preset, make_scheduler
from matdiff.guidance.noise_objectives import (
    ENERGY_DISPLACEMENTS,
    SEED_B_TARGETS,
    STRESS_DISPLACEMENTS,
    STRESS_GROUPS,
    EnergyCurveObjective,
    StressCurveObjective,
    energy_target,
    parse_target,
    stress_target,
    validate_target,
)
from matdiff.guidance.noise_opt import (
    DdimGenerator,
    NoiseOptConfig,
    Stage,
    binarization,
    evaluate_designs,
    generate_fields,
    initial_noise,
    optimize_noise,
    project,
    project_binary,
    run_stage,
    select_initial_noise,
    stiffness_objective,
    threshold,
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
    assert res.design_final.shape == (2, 1, 8, 8) and res.quantity_final.shape == (2, 3, 3)
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


def chain_loss_and_grad(model, noise, objective, gamma=5.0):
    """Loss (B,) of the whole chain and its gradient w.r.t. the noise (checkpointed DDIM)."""
    gen = DdimGenerator(model, 10, use_checkpoint=True)
    w = noise.clone().requires_grad_(True)
    loss = evaluate_designs(w, gen, Stage(gamma), objective).loss
    loss.sum().backward()
    return lambda v: evaluate_designs(v, gen, Stage(gamma), objective).loss.sum(), w.grad


def check_directional_derivatives(model, objective, shape, n_dirs=2, h=1e-5, rtol=1e-5):
    noise = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    f, grad = chain_loss_and_grad(model, noise, objective)
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for _ in range(n_dirs):
            v = torch.randn(*shape, dtype=torch.float64, generator=gen)
            fd = (f(noise + h * v) - f(noise - h * v)) / (2 * h)
            an = (grad * v).sum()
            assert abs(fd - an) <= rtol * abs(an) + 1e-8, (float(fd), float(an))


def biclinic(stiffness_fn=None):
    """Seed B's biclinic digits target as a stiffness objective."""
    return stiffness_objective(SEED_B_TARGETS["digits"]["biclinic"], NoiseOptConfig(), stiffness_fn)


def test_chain_gradient_matches_finite_differences_standin_fem():
    check_directional_derivatives(TinyDenoiser(), biclinic(standin_stiffness), (2, 1, 8, 8))


def test_chain_gradient_matches_finite_differences_real_fem():
    check_directional_derivatives(TinyDenoiser(), biclinic(), (1, 1, 8, 8), n_dirs=1, rtol=1e-4)


def test_chain_gradient_of_the_curve_objectives_real_fem():
    """Energy curve of one field; stress curve designing E with sigma0 fixed (no noise, no gradient)."""
    sigma0 = torch.rand(6, 6, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    stress = StressCurveObjective.seed_b(1, fields=("E",), fixed={"sigma0": sigma0})
    for objective in (EnergyCurveObjective.seed_b(0.3), stress):
        check_directional_derivatives(TinyDenoiser(), objective, (1, 1, 6, 6), n_dirs=1, rtol=1e-4)


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


# --------------------------------------------------------------------------- objectives of one or two fields


def test_energy_target_is_seed_b_eq_34():
    d = ENERGY_DISPLACEMENTS
    assert d == (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
    target = energy_target(0.3)
    # by hand: P1(0.5) = -19.880/8 + 51.245/4 + 0.472/2 = 10.56225, P0(0.5) = -0.199/8 + 0.512/4 + 0.005/2
    assert target[-1].item() == pytest.approx(0.7 * 10.56225 + 0.3 * 0.105625, rel=1e-12)
    assert energy_target(0.0)[0].item() == pytest.approx(-19.880 * 0.05**3 + 51.245 * 0.05**2 + 0.472 * 0.05)
    assert energy_target(1.0)[0].item() == pytest.approx(-0.199 * 0.05**3 + 0.512 * 0.05**2 + 0.005 * 0.05)


def test_stress_targets_are_seed_b_eq_39_and_table_1():
    assert (
        STRESS_DISPLACEMENTS[0] == 0.0005
        and STRESS_DISPLACEMENTS[-1] == 0.01
        and len(STRESS_DISPLACEMENTS) == 20
    )
    for curve in STRESS_GROUPS.values():  # Table 1's sigma_inf = sigma_0 + sum A with sigma_0 = E eps_y
        assert curve.E * curve.eps_y + sum(curve.A) == pytest.approx(curve.sigma_inf, rel=1e-12)
    g1 = stress_target(1)
    assert g1[1].item() == pytest.approx(4.8e4 * 0.001)  # elastic below eps_y = 2.7e-3
    assert g1[4].item() == pytest.approx(4.8e4 * 0.0025)
    x = 0.01  # hardening branch, by hand
    hand = 129.6 + 4 * (1 - math.exp(-1000 * (x - 2.7e-3))) + 86.4 * (1 - math.exp(-88 * (x - 2.7e-3)))
    assert g1[-1].item() == pytest.approx(hand, rel=1e-12)
    g3 = stress_target(3, (0.003,))
    hand3 = 8.2e4 * 2.8e-3 + 18 * (1 - math.exp(-0.2)) + 32.4 * (1 - math.exp(-63 * 2e-4))
    assert g3.item() == pytest.approx(hand3, rel=1e-12)
    with pytest.raises(ValueError, match="Table 1"):
        stress_target(4)


def test_objective_losses_by_hand():
    stiff = stiffness_objective(SEED_B_TARGETS["digits"]["orthotropic"], NoiseOptConfig())
    C = stiff.target.clone()[None].repeat(2, 1, 1)
    C[1] += 1.0
    C[1, 0, 0] += 1.0  # errors: eight entries of 1, one of 2
    assert stiff.loss(C).tolist() == [0.0, 12.0]
    energy = EnergyCurveObjective(target=torch.arange(10.0))
    assert energy.loss(torch.arange(10.0)[None] + torch.tensor([[0.0], [2.0]])).tolist() == [0.0, 4.0]
    stress = StressCurveObjective(target=torch.zeros(20))
    q = torch.zeros(1, 20, dtype=torch.float64)
    q[0, :5] = 2.0  # mean over the 20 increments: 5 * 4 / 20
    assert stress.loss(q).tolist() == [1.0]


def test_curve_objectives_map_densities_to_fem_inputs(fake_fem_curves):
    x = torch.rand(2, 1, 4, 5, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    EnergyCurveObjective.seed_b(0.3).quantity(x)
    call = fake_fem_curves.calls[-1]
    assert call["E"].dtype == torch.float64 and call["E"].shape == (2, 4, 5)
    torch.testing.assert_close(call["E"], 1 + 99 * x[:, 0].double())  # row 0 stays the top: no flip
    torch.testing.assert_close(call["nu"], torch.full((2, 4, 5), 0.3, dtype=torch.float64))
    both = torch.rand(2, 2, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    StressCurveObjective.seed_b(2).quantity(both)
    call = fake_fem_curves.calls[-1]
    torch.testing.assert_close(call["E"], 1e3 + (1e5 - 1e3) * both[:, 0])
    torch.testing.assert_close(call["sigma_0"], 30 + 270 * both[:, 1])


def test_curve_objective_rejects_bad_fields_targets_and_shapes():
    digit = torch.full((4, 4), 0.5)
    with pytest.raises(ValueError, match="fields among"):
        StressCurveObjective(target=torch.zeros(20), fields=("nu",))
    with pytest.raises(ValueError, match="each once"):
        StressCurveObjective(target=torch.zeros(20), fields=("E", "E"))
    with pytest.raises(ValueError, match="fixed density"):
        StressCurveObjective(target=torch.zeros(20), fields=("E",))  # sigma0 neither designed nor fixed
    with pytest.raises(ValueError, match="designed or unknown"):
        StressCurveObjective(target=torch.zeros(20), fixed={"E": digit})
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        StressCurveObjective(target=torch.zeros(20), fields=("E",), fixed={"sigma0": digit + 1})
    with pytest.raises(ValueError, match="20 finite numbers"):
        StressCurveObjective(target=torch.zeros(10))
    objective = StressCurveObjective(target=torch.zeros(20), fields=("sigma0",), fixed={"E": digit})
    assert objective.fields == ("sigma0",)
    with pytest.raises(ValueError, match="fixed field E"):
        objective.quantity(torch.zeros(1, 1, 5, 5))
    with pytest.raises(ValueError, match="expected densities"):
        objective.quantity(torch.zeros(1, 2, 4, 4))
    json.dumps(objective.describe())  # the record is JSON-able


def test_matching_objective_targets_the_curve_of_the_given_fields(fake_fem_curves):
    g = torch.Generator().manual_seed(2)
    pair = {"E": torch.rand(6, 6, generator=g, dtype=torch.float64), "sigma0": torch.rand(6, 6, generator=g)}
    objective = StressCurveObjective.matching(pair, ("E",), source={"digits": [1, 2]})
    assert objective.fields == ("E",) and set(objective.fixed) == {"sigma0"}
    torch.testing.assert_close(objective.fixed["sigma0"], pair["sigma0"].double())
    q = objective.quantity(pair["E"][None, None])
    torch.testing.assert_close(q[0], objective.target)  # designing the pair's own E field reaches loss 0
    assert objective.loss(q).item() == 0.0 and objective.describe()["target_source"] == {"digits": [1, 2]}


def test_fields_share_one_generator_call_per_evaluation():
    model = TinyDenoiser()
    generator = DdimGenerator(model, 10, use_checkpoint=False)
    noise = torch.randn(3, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    images = generate_fields(generator, noise)
    for f in range(2):
        torch.testing.assert_close(images[:, f : f + 1], generator(noise[:, f : f + 1]))


def test_a_fixed_field_stays_fixed_and_has_no_noise(fake_fem_curves):
    sigma0 = torch.rand(8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    objective = StressCurveObjective.seed_b(1, fields=("E",), fixed={"sigma0": sigma0})
    cfg = NoiseOptConfig(gammas=(2.0, 5.0), max_iter=2, tol=0.0, checkpoint=False)
    res = optimize_noise(TinyDenoiser(), objective, n_designs=2, config=cfg, image_shape=(1, 8, 8))
    assert res.noise_init.shape == res.design_final.shape == (2, 1, 8, 8)  # one noise: the designed E field
    assert not np.array_equal(res.noise_final, res.noise_init)
    for call in fake_fem_curves.calls:
        torch.testing.assert_close(call["sigma_0"], (30 + 270 * sigma0).expand_as(call["sigma_0"]))
    assert np.array_equal(res.arrays()["fixed_sigma0"], sigma0.numpy())
    assert res.summary()["objective"]["fixed"] == ["sigma0"]


def test_two_designed_fields_get_a_noise_each(fake_fem_curves):
    cfg = NoiseOptConfig(gammas=(10.0,), max_iter=2, tol=0.5, checkpoint=False)
    res = optimize_noise(TinyDenoiser(), StressCurveObjective.seed_b(2), config=cfg, image_shape=(1, 8, 8))
    assert res.noise_final.shape == res.image_final.shape == res.design_final.shape == (1, 2, 8, 8)
    assert res.quantity_final.shape == (1, 20) and res.displacement_final.shape == (1, 2, 9, 9)
    summary = res.summary()
    assert len(summary["stress_final"][0]) == 20 and summary["failures"] == [""]
    assert summary["stages"][0]["quantity"] == summary["stress_final"]


def test_straight_through_projection_is_binary_forward_and_tanh_backward():
    x = torch.randn(3, 2, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    x[0, 0, 0, 0] = 0.0
    x.requires_grad_(True)
    y = project_binary(x, 20.0)
    assert torch.equal(y, (x > 0).double()) and set(y.unique().tolist()) <= {0.0, 1.0}
    v = torch.randn_like(x)
    (grad,) = torch.autograd.grad((y * v).sum(), x)
    (expected,) = torch.autograd.grad((project(x, 20.0) * v).sum(), x)
    torch.testing.assert_close(grad, expected)
    assert torch.equal(threshold(x.detach()), y)


def test_the_thresholded_loss_is_the_loss_of_the_binary_design():
    target = [[40.0, 10.0, 0.0], [10.0, 40.0, 0.0], [0.0, 0.0, 8.0]]
    cfg = NoiseOptConfig(gammas=(2.0,), max_iter=2, checkpoint=False)
    res = optimize_noise(
        TinyDenoiser(), target, config=cfg, stiffness_fn=standin_stiffness, image_shape=(1, 8, 8)
    )
    objective = stiffness_objective(target, cfg, standin_stiffness)
    binary = torch.as_tensor(res.image_final > 0).double()
    np.testing.assert_allclose(res.loss_thresholded, objective.loss(objective.quantity(binary)).numpy())
    assert res.loss_thresholded[0] != res.loss_final[0]  # gamma 2 leaves the design gray
    assert res.stages[0].loss_thresholded == res.loss_thresholded.tolist() and not res.stages[0].binary


def test_binary_stage_ends_with_a_binary_design(fake_fem_curves):
    cfg = NoiseOptConfig(gammas=(2.0, 5.0), max_iter=3, tol=0.0, checkpoint=False, binary_stage=True)
    res = optimize_noise(TinyDenoiser(), EnergyCurveObjective.seed_b(0.3), config=cfg, image_shape=(1, 8, 8))
    assert [(s.gamma, s.binary) for s in res.stages] == [(2.0, False), (5.0, False), (5.0, True)]
    assert set(np.unique(res.design_final).tolist()) <= {0.0, 1.0} and res.binarization.tolist() == [1.0]
    assert np.array_equal(res.design_final, res.arrays()["design_thresholded"])
    assert res.loss_final.tolist() == res.loss_thresholded.tolist() == res.stages[-1].loss
    assert res.stages[-1].loss[0] <= res.stages[-2].loss_thresholded[0]  # each stage keeps its best point
