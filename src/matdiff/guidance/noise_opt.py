"""Noise-space optimization (seed B sec. 2.2, 3.1.2, 3.2-3.4): design the DDIM input noise of a prior.

The chain, all differentiable and batched over B independent designs of F designed fields::

    w (B, F, H, W) --DDIM eta=0 (B F one-channel images)--> x0 (B, F, H, W) --P_gamma--> x_tilde (B, F, H, W)
      --> objective: physical quantity (B, ...) --> loss (B,)

The objective (``guidance.noise_objectives``) says which fields are designed and maps their densities to a
quantity and a loss: seed B's C_hom of one periodic cell (``StiffnessObjective``), its Neo-Hookean energy
curve or its J2 stress curve of two fields (E, sigma0), a field not designed being a fixed density. Every
designed field has its own noise; all go through the same one-channel generator.

Facts taken from seed B and its code (CMSL-HKUST/genopt), used as defaults:
- DDIM with eta = 0 over t = 999, 899, ..., 99 (10 steps, ``step = T // n``, ``t_i = i * step + step - 1``),
  no clipping of the x0 prediction, the last step goes to alpha_bar = 1.
- The generated image x0 (nominally in [-1, 1]) enters the projection as is: P(x) = (tanh(gamma x) + 1) / 2.
  matdiff's style stores use bright = solid (see ``matdiff.styles``), so x_tilde = P(x0) for every style; for
  digits this equals seed B's x_tilde = 1 - P(x0) on un-inverted MNIST, because P(-x) = 1 - P(x).
- C_hom: linear interpolation (penalty 1) of Young's modulus between E_void = 1 and E_solid = 100, nu = 0.3 in
  both phases, plane stress, Voigt notation with engineering shear; loss: the plain sum of squared component
  errors (seed B eq. 29), not normalized; stage tolerance 1e-2 on it.
- Stages of increasing slope gamma, each started from the previous stage's noise, ending when the loss is
  below ``tol`` or after ``max_iter`` iterations; gammas, tolerance and iterations per experiment in
  ``SEED_B_STAGES``. Seed B used scipy BFGS; we use torch.optim.LBFGS with a strong-Wolfe line search.
- Binarization B(tau) = share of pixels with x_tilde <= tau or >= 1 - tau, tau = 1e-3 (over all fields).
- The image's first row is the top edge (y = 1), as in genopt, which flips rows before its mesh; for C_hom we
  flip rows before calling the FEM, whose row index follows +y (``flip_rows``). This fixes the sign of C13 and
  C23. The nonlinear FEM functions take images as they are (row 0 = the loaded top edge).

**Beyond seed B**: what gets built is the thresholded design x_tilde > 0.5 (x0 > 0), whose loss every stage
records (``loss_thresholded``). With ``binary_stage`` a last stage optimizes that design itself: the forward
pass thresholds (gamma = infinity), the backward pass uses the last gamma's tanh derivative (straight-through,
``project_binary``), so the binary design is driven to the tolerance.

**Chosen**: by default each design has its own L-BFGS (memory and line search), as seed B optimized one
design at a time; the designs of a run are then optimized one after another. ``joint=True`` instead optimizes
all B designs as one batch (one batched DDIM and FEM call per evaluation, better for a GPU) by a single L-BFGS
on the sum of the per-design losses: the objective is separable, but the curvature pairs and the step
length are shared, which couples designs that are independent. In joint mode a design that reaches ``tol``
is frozen and the L-BFGS restarts (fresh memory) on the others. Each design ends a stage at the best point
it visited.

Initial noises: seed B picked its starting noises per target by hand from 2,000 draws (genopt's ``ids``).
``n_candidates`` automates that choice: draw that many noises, evaluate the loss of each at the first stage's
gamma, and start from the n_designs lowest (``select_initial_noise``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from matdiff.diffusion.sampling import PlainRule, ddim_loop, ddim_steps
from matdiff.guidance.noise_objectives import SEED_B_TARGETS as SEED_B_TARGETS  # public here too
from matdiff.guidance.noise_objectives import NoiseObjective, Response, StiffnessFn, StiffnessObjective

SEED_B_GAMMAS: dict[str, tuple[float, ...]] = {
    "digits": (5.0, 10.0, 20.0, 80.0),
    "metamaterial": (5.0, 10.0, 20.0, 100.0),
}
"""Seed B's projection slopes of the C_hom designs per style (sec. 3.2)."""

SEED_B_STAGES: dict[str, dict[str, Any]] = {
    **{style: {"gammas": gammas, "tol": 1e-2, "max_iter": 100} for style, gammas in SEED_B_GAMMAS.items()},
    "energy-curve": {"gammas": (2.0, 5.0, 10.0, 20.0, 100.0), "tol": 1e-3, "max_iter": 30},
    "stress-curve-groups": {"gammas": (10.0, 20.0, 100.0), "tol": 0.5, "max_iter": 100},
    "stress-curve-digits": {"gammas": (5.0, 10.0, 20.0, 100.0), "tol": 0.2, "max_iter": 50},
}
"""Seed B's stage schedule (gammas, loss tolerance, L-BFGS iterations per stage) per experiment: the C_hom
designs per style (sec. 3.2), the energy curves (sec. 3.3, Figs. 9-10), the stress curves of Table 1's groups
(sec. 3.4, Fig. 15) and of a generated digit pair (Figs. 12-14)."""


class Denoiser(Protocol):
    """What noise optimization needs from a diffusion model (``matdiff.diffusion.DiffusionModel``)."""

    def predict(
        self, x_t: torch.Tensor, t: torch.Tensor, clip: bool = False, condition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def scheduler(self, kind: str = "ddim") -> Any: ...


@dataclass(frozen=True)
class NoiseOptConfig:
    """Settings of a noise-space design run; defaults follow seed B's homogenization example on digits.

    E_void, E_solid, nu, plane and flip_rows are the material settings of a C_hom design given by its target
    matrix (``stiffness_objective``); other objectives carry their own. ``binary_stage`` adds a last,
    straight-through stage on the thresholded design (beyond seed B).
    """

    gammas: tuple[float, ...] = SEED_B_GAMMAS["digits"]
    tol: float = 1e-2
    max_iter: int = 100
    max_evals_per_iter: int = 4
    E_void: float = 1.0
    E_solid: float = 100.0
    nu: float = 0.3
    plane: str = "stress"
    tau: float = 1e-3
    num_inference_steps: int = 10
    history_size: int = 20
    line_search: str | None = "strong_wolfe"
    checkpoint: bool = True
    flip_rows: bool = True
    joint: bool = False
    n_candidates: int = 0
    binary_stage: bool = False

    def __post_init__(self) -> None:
        if not self.gammas or not all(math.isfinite(g) and g > 0 for g in self.gammas):
            raise ValueError(f"gammas must be finite positive slopes, got {self.gammas}")
        if not (math.isfinite(self.tol) and self.tol >= 0) or self.max_iter < 1 or self.n_candidates < 0:
            raise ValueError(
                f"need tol finite >= 0, max_iter >= 1, n_candidates >= 0, got {self.tol}, {self.max_iter}, "
                f"{self.n_candidates}"
            )

    @classmethod
    def for_experiment(cls, experiment: str, **overrides: Any) -> NoiseOptConfig:
        """Seed B's schedule for ``experiment`` (a key of ``SEED_B_STAGES``), with keyword overrides."""
        if experiment not in SEED_B_STAGES:
            raise ValueError(f"unknown experiment {experiment!r}; expected one of {tuple(SEED_B_STAGES)}")
        return cls(**{**SEED_B_STAGES[experiment], **overrides})

    @classmethod
    def for_style(cls, style: str, **overrides: Any) -> NoiseOptConfig:
        """Seed B's settings for a C_hom design of ``style`` ("digits" or "metamaterial"), with overrides."""
        if style not in SEED_B_GAMMAS:
            raise ValueError(f"unknown style {style!r}; expected one of {tuple(SEED_B_GAMMAS)}")
        return cls.for_experiment(style, **overrides)


def stiffness_objective(
    target_C: Any, config: NoiseOptConfig, stiffness_fn: StiffnessFn | None = None
) -> StiffnessObjective:
    """Seed B's C_hom objective for a (3, 3) target with the material settings of ``config``."""
    return StiffnessObjective(
        target_C,
        E_range=(config.E_void, config.E_solid),
        nu=config.nu,
        plane=config.plane,
        flip_rows=config.flip_rows,
        stiffness_fn=stiffness_fn,
    )


# ------------------------------------------------------------------------------------------------------ DDIM


class DdimGenerator:
    """G_theta: the deterministic DDIM map from noise (B, C, H, W) to images (B, C, H, W), differentiable.

    The one loop of ``matdiff.diffusion.sampling`` with eta = 0 and the unclipped x0 prediction (as in
    genopt; the update also holds for v-prediction and zero-terminal-SNR schedules), on the timesteps of
    ``model.scheduler("ddim")``. With ``use_checkpoint`` each step is recomputed in the backward pass, so
    backward memory does not grow with the step count.
    """

    def __init__(self, model: Denoiser, num_inference_steps: int = 10, use_checkpoint: bool = True):
        self.model = model
        self.steps = ddim_steps(model.scheduler("ddim"), num_inference_steps)
        self.use_checkpoint = use_checkpoint

    @property
    def timesteps(self) -> list[int]:
        """The DDIM timesteps from the pure-noise end (seed B: 999, 899, ..., 99)."""
        return [step.t for step in self.steps]

    def __call__(self, noise: torch.Tensor) -> torch.Tensor:
        """Images x0 (B, C, H, W) generated from `noise` (B, C, H, W)."""
        rule = PlainRule(clip=False)
        return ddim_loop(self.model, noise, self.steps, 0.0, rule, checkpoint=self.use_checkpoint)


# ------------------------------------------------------------------------------------ projection and designs


def project(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """Density x_tilde = (tanh(gamma x) + 1) / 2 in (0, 1), same shape as x (seed B eq. 24)."""
    return 0.5 * (torch.tanh(gamma * x) + 1.0)


class StraightThroughProjection(torch.autograd.Function):
    """Forward: the binary density 1[x > 0] (P_gamma at gamma = infinity); backward: the derivative of
    P_gamma, gamma / 2 (1 - tanh^2(gamma x)) (a straight-through estimator)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, gamma: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.gamma = gamma
        return threshold(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * 0.5 * ctx.gamma * (1.0 - torch.tanh(ctx.gamma * x) ** 2), None


def project_binary(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """Binary density 1[x > 0], same shape as x, with the gradient of ``project(x, gamma)``."""
    return StraightThroughProjection.apply(x, gamma)


def threshold(x: torch.Tensor) -> torch.Tensor:
    """The thresholded design 1[x > 0] of images x (= 1[x_tilde > 0.5]), same shape and dtype, no gradient."""
    return (x > 0).to(x.dtype)


def binarization(x_tilde: torch.Tensor, tau: float = 1e-3) -> torch.Tensor:
    """B(tau) per design (B,): share of pixels of x_tilde (B, ...) with x_tilde <= tau or >= 1 - tau."""
    binary = (x_tilde <= tau) | (x_tilde >= 1.0 - tau)
    return binary.flatten(1).double().mean(dim=1)


def generate_fields(generator: Callable[[torch.Tensor], torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
    """Images x0 (B, F, H, W) of noises (B, F, H, W): every field through the same one-channel generator, as
    one batch of B F images."""
    B, F = noise.shape[:2]
    return generator(noise.reshape(B * F, 1, *noise.shape[2:])).reshape(noise.shape)


@dataclass(frozen=True)
class Stage:
    """One stage of the schedule: the tanh projection of slope ``gamma``, or with ``binary`` the thresholded
    design with that slope's gradient (``project_binary``)."""

    gamma: float
    binary: bool = False

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Densities of images x."""
        return project_binary(x, self.gamma) if self.binary else project(x, self.gamma)


def schedule(config: NoiseOptConfig) -> list[Stage]:
    """The stages of a run: one per gamma, then the binary stage at the last gamma if asked for."""
    stages = [Stage(float(g)) for g in config.gammas]
    return stages + [Stage(float(config.gammas[-1]), binary=True)] if config.binary_stage else stages


@dataclass
class Evaluation:
    """One pass of the chain: images x0 (B, F, H, W), densities (B, F, H, W), quantity (B, ...), loss (B,)."""

    image: torch.Tensor
    density: torch.Tensor
    quantity: torch.Tensor
    loss: torch.Tensor


def evaluate_designs(
    noise: torch.Tensor,
    generator: Callable[[torch.Tensor], torch.Tensor],
    stage: Stage,
    objective: NoiseObjective,
) -> Evaluation:
    """Run noise (B, F, H, W) -> DDIM -> the stage's projection -> quantity -> loss, differentiably."""
    image = generate_fields(generator, noise)
    density = stage.project(image)
    quantity = objective.quantity(density)
    return Evaluation(image, density, quantity, objective.loss(quantity))


@dataclass
class Record:
    """What a run reports of B designs at one point: images x0 and densities (B, F, H, W), the objective's
    response and loss (B,), and the same of the thresholded design."""

    image: torch.Tensor
    density: torch.Tensor
    response: Response
    loss: torch.Tensor
    response_thresholded: Response
    loss_thresholded: torch.Tensor


@torch.no_grad()
def record_designs(
    noise: torch.Tensor,
    generator: Callable[[torch.Tensor], torch.Tensor],
    stage: Stage,
    objective: NoiseObjective,
) -> Record:
    """The ``Record`` of noises (B, F, H, W) at ``stage`` (no gradients)."""
    image = generate_fields(generator, noise)
    density = stage.project(image)
    response = objective.response(density)
    hard = objective.response(threshold(image))
    return Record(
        image, density, response, objective.loss(response.quantity), hard, objective.loss(hard.quantity)
    )


# ----------------------------------------------------------------------------------------------- the stages


class _Finished(Exception):
    """Raised inside the L-BFGS closure when some designs reach the tolerance (the run then freezes them)."""

    def __init__(self, done: torch.Tensor):
        super().__init__()
        self.done = done


@dataclass
class StageOutcome:
    """End of one stage: best noise (B, ...), its loss (B,), L-BFGS iterations (B,), losses per evaluation."""

    noise: torch.Tensor
    loss: torch.Tensor
    iterations: torch.Tensor
    history: list[torch.Tensor]


def run_stage(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    noise: torch.Tensor,
    tol: float,
    max_iter: int,
    history_size: int = 20,
    line_search: str | None = "strong_wolfe",
    max_evals_per_iter: int = 4,
    on_evaluation: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
    joint: bool = False,
) -> StageOutcome:
    """Minimize the per-design losses loss_fn(w) (b,) over w (B, ...) with L-BFGS until each is < tol.

    A design is finished when its loss is below `tol` or after `max_iter` L-BFGS iterations in this stage;
    each design ends at the best point it visited. joint=False: one L-BFGS per design, run one after another
    (loss_fn is called on one design at a time; history rows hold NaN for designs not yet started);
    joint=True: one L-BFGS on the sum over all designs. `on_evaluation(losses (B,), iterations (B,))` is
    called after every evaluation (progress display).
    """
    if joint or noise.shape[0] == 1:
        return _run_joint(
            loss_fn, noise, tol, max_iter, history_size, line_search, max_evals_per_iter, on_evaluation
        )
    B = noise.shape[0]
    best_loss = torch.full((B,), math.nan, dtype=torch.float64)
    iterations = torch.zeros(B, dtype=torch.long)
    parts: list[StageOutcome] = []
    history: list[torch.Tensor] = []
    for i in range(B):

        def report(losses: torch.Tensor, iters: torch.Tensor, i: int = i) -> None:
            best_loss[i], iterations[i] = losses[0], iters[0]
            history.append(best_loss.clone())
            if on_evaluation is not None:
                on_evaluation(best_loss.clone(), iterations.clone())

        part = _run_joint(
            loss_fn, noise[i : i + 1], tol, max_iter, history_size, line_search, max_evals_per_iter, report
        )
        best_loss[i], iterations[i] = part.loss[0], part.iterations[0]
        parts.append(part)
    return StageOutcome(
        torch.cat([p.noise for p in parts]),
        torch.cat([p.loss for p in parts]),
        torch.cat([p.iterations for p in parts]),
        history,
    )


def _run_joint(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    noise: torch.Tensor,
    tol: float,
    max_iter: int,
    history_size: int,
    line_search: str | None,
    max_evals_per_iter: int,
    on_evaluation: Callable[[torch.Tensor, torch.Tensor], None] | None,
) -> StageOutcome:
    """run_stage with one L-BFGS on the sum of the losses of all B designs (frozen when below tol).

    When L-BFGS stops early (failed line search, evaluation cap) after improving, it is restarted from the
    best point with fresh memory until the iteration cap; a restart that improves nothing ends the stage.
    """
    B = noise.shape[0]
    best_noise = noise.detach().clone()
    best_loss = torch.full((B,), math.inf, dtype=torch.float64)
    iterations = torch.zeros(B, dtype=torch.long)
    history: list[torch.Tensor] = []
    active = torch.arange(B)
    while active.numel() and int(iterations[active].max()) < max_iter:
        param = best_noise[active].clone().requires_grad_(True)
        remaining = max_iter - int(iterations[active].max())
        opt = torch.optim.LBFGS(
            [param],
            lr=1.0,
            max_iter=remaining,
            max_eval=max_evals_per_iter * remaining,
            tolerance_grad=1e-12,
            tolerance_change=0.0,
            history_size=history_size,
            line_search_fn=line_search,
        )

        def closure(param: torch.Tensor = param, opt: torch.optim.LBFGS = opt, active: torch.Tensor = active):
            opt.zero_grad()
            losses = loss_fn(param)
            current = losses.detach().to(torch.float64)
            improved = current < best_loss[active]
            best_loss[active[improved]] = current[improved]
            best_noise[active[improved]] = param.detach()[improved]
            history.append(best_loss.clone())
            if on_evaluation is not None:
                on_evaluation(
                    best_loss.clone(), iterations + opt.state[param].get("n_iter", 0) * _mask(B, active)
                )
            done = current < tol
            if bool(done.any()):
                raise _Finished(done)
            total = losses.sum()
            total.backward()
            return total

        before = float(best_loss[active].sum()) if bool(torch.isfinite(best_loss[active]).all()) else math.inf
        try:
            opt.step(closure)
            iterations[active] += opt.state[param].get("n_iter", 0)
            if not float(best_loss[active].sum()) < before:
                break  # no progress since the last (re)start: the stage ends for the active designs
            # otherwise L-BFGS used up its iterations (the loop ends) or stopped early on a failed line
            # search or its evaluation cap: restart it from the best point with fresh memory
        except _Finished as finished:
            iterations[active] += opt.state[param].get("n_iter", 0)
            active = active[~finished.done]
    return StageOutcome(best_noise, best_loss, iterations, history)


def _mask(B: int, active: torch.Tensor) -> torch.Tensor:
    """Long tensor (B,) with 1 at the active design indices."""
    m = torch.zeros(B, dtype=torch.long)
    m[active] = 1
    return m


# ---------------------------------------------------------------------------------------------- the result


@dataclass
class StageResult:
    """One stage: its gamma (a binary stage: the slope of its backward pass), whether it was binary,
    per-design L-BFGS iterations, loss, quantity, B(tau), loss of the thresholded design, wall time (s)."""

    gamma: float
    binary: bool
    iterations: list[int]
    loss: list[float]
    quantity: list[Any]
    binarization: list[float]
    loss_thresholded: list[float]
    wall_time_s: float


@dataclass
class NoiseOptResult:
    """A noise-space design run for B designs of F fields.

    ``objective``: the objective's ``describe()``. Arrays: noise_init/noise_final, image_init/image_final
    (generated x0) and design_init/design_final (densities x_tilde at the last stage) (B, F, H, W);
    quantity_init/quantity_final (B, ...) and loss_init/loss_final, binarization (B,) at the last stage;
    quantity_thresholded and loss_thresholded (B,) of the thresholded final design (x0 > 0, what gets built);
    displacement_final (B, 2, H+1, W+1) at the last load step of curve objectives (else None); failures: the
    FEM's reason per final design ("" if solved); fixed: the fixed fields' densities (H, W); loss_history
    (n_evals, B) best loss so far in the current stage after each evaluation, history_stage (n_evals,) stage
    index of each row.
    """

    objective: dict[str, Any]
    config: NoiseOptConfig
    noise_init: np.ndarray
    noise_final: np.ndarray
    image_init: np.ndarray
    image_final: np.ndarray
    design_init: np.ndarray
    design_final: np.ndarray
    quantity_init: np.ndarray
    quantity_final: np.ndarray
    quantity_thresholded: np.ndarray
    loss_init: np.ndarray
    loss_final: np.ndarray
    loss_thresholded: np.ndarray
    binarization: np.ndarray
    displacement_final: np.ndarray | None
    failures: list[str]
    fixed: dict[str, np.ndarray]
    stages: list[StageResult]
    loss_history: np.ndarray
    history_stage: np.ndarray
    wall_time_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready dict: objective, config, target, per-stage records, the quantity (keys named by the
        objective's quantity, e.g. C_init / C_final / C_thresholded), losses, B and wall time per design."""
        q = self.objective["quantity"]
        return {
            "objective": self.objective,
            "config": asdict(self.config),
            "target": self.objective["target"],
            "n_designs": int(self.noise_init.shape[0]),
            f"{q}_init": self.quantity_init.tolist(),
            f"{q}_final": self.quantity_final.tolist(),
            f"{q}_thresholded": self.quantity_thresholded.tolist(),
            "loss_init": self.loss_init.tolist(),
            "loss_final": self.loss_final.tolist(),
            "loss_thresholded": self.loss_thresholded.tolist(),
            "binarization": self.binarization.tolist(),
            "failures": self.failures,
            "wall_time_s": self.wall_time_s,
            "wall_time_per_design_s": self.wall_time_s / max(1, self.noise_init.shape[0]),
            "stages": [asdict(s) for s in self.stages],
            **self.extra,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """The run's arrays by name (for .npz): noises, images, designs (and the thresholded one), the
        quantity and loss histories, the last displacement (curve objectives), the fixed fields."""
        arrays = {
            "noise_init": self.noise_init,
            "noise_final": self.noise_final,
            "image_init": self.image_init,
            "image_final": self.image_final,
            "design_init": self.design_init,
            "design_final": self.design_final,
            "design_thresholded": (self.image_final > 0).astype(self.design_final.dtype),
            "quantity_init": self.quantity_init,
            "quantity_final": self.quantity_final,
            "quantity_thresholded": self.quantity_thresholded,
            "loss_history": self.loss_history,
            "history_stage": self.history_stage,
            **{f"fixed_{name}": density for name, density in self.fixed.items()},
        }
        if self.displacement_final is not None:
            arrays["displacement_final"] = self.displacement_final
        return arrays


# ------------------------------------------------------------------------------------------------- driver


def initial_noise(
    n: int, shape: Sequence[int], seed: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """n standard-normal noises (n, *shape) from a seeded torch generator (CPU)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, *shape), generator=g, dtype=torch.float64).to(dtype)


def select_initial_noise(
    loss_fn: Callable[[torch.Tensor], torch.Tensor], candidates: torch.Tensor, n_keep: int, chunk: int = 64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The n_keep candidate noises (N, ...) with the lowest loss_fn (no gradients, in chunks of `chunk`).

    Returns (noise (n_keep, ...), their indices (n_keep,) into candidates, all candidate losses (N,)).
    """
    if not 1 <= n_keep <= candidates.shape[0]:
        raise ValueError(f"cannot keep {n_keep} of {candidates.shape[0]} candidate noises")
    with torch.no_grad():
        losses = torch.cat([loss_fn(candidates[s : s + chunk]) for s in range(0, len(candidates), chunk)])
    order = torch.argsort(losses)[:n_keep]
    return candidates[order].clone(), order, losses


def require_density_model(model: Denoiser) -> None:
    """ValueError unless ``model`` draws one-channel 2D density images (a seed B style prior)."""
    shape = _model_image_shape(model)
    if shape[0] != 1 or len(shape) != 3:
        raise ValueError(
            f"noise-space design needs a 1-channel 2D density prior (a style model); this model draws "
            f"{shape[0]}-channel {len(shape) - 1}D fields"
        )


def generated_densities(
    model: Denoiser,
    seeds: Sequence[int],
    gamma: float = 100.0,
    *,
    num_inference_steps: int = 10,
    image_shape: Sequence[int] | None = None,
) -> torch.Tensor:
    """Densities P_gamma(x0) (n, H, W) of the images the model generates from one noise per seed, the noise
    of seed s being ``initial_noise(1, shape, s)`` (as a one-design run of seed s starts): e.g. seed B's
    target digit pair (E field, sigma0 field) of Figs. 12-14."""
    shape = tuple(image_shape) if image_shape is not None else _model_image_shape(model)
    noise = torch.cat([initial_noise(1, shape, s, _model_dtype(model)) for s in seeds])
    with torch.no_grad():
        image = DdimGenerator(model, num_inference_steps, use_checkpoint=False)(noise)
    return project(image[:, 0], gamma)


def optimize_noise(
    model: Denoiser,
    objective: NoiseObjective | Any,
    noise: torch.Tensor | None = None,
    *,
    n_designs: int = 1,
    seed: int = 0,
    config: NoiseOptConfig | None = None,
    stiffness_fn: StiffnessFn | None = None,
    image_shape: Sequence[int] | None = None,
    progress: Callable[[int, float, torch.Tensor, torch.Tensor], None] | None = None,
) -> NoiseOptResult:
    """Design B = n_designs microstructures for ``objective`` by optimizing the DDIM noise of its fields.

    objective: a ``NoiseObjective``, or a (3, 3) target C_hom for seed B's stiffness objective with the
    config's material settings and ``stiffness_fn`` (default ``fem.homogenized_stiffness``).
    noise: initial noise (B, F, H, W), F = len(objective.fields); drawn from `seed` when None (one-channel
    image shape (1, H, W) from `image_shape` or the model's ``config`` sample size, default (1, 32, 32)): the
    first n_designs draws, or with ``config.n_candidates`` the n_designs of that many draws with the lowest
    loss at the first gamma (``select_initial_noise``). progress(stage, gamma, best_losses (B,),
    iterations (B,)) is called after every evaluation. The model's weights are frozen (requires_grad False)
    for the run.
    """
    config = config or NoiseOptConfig()
    if not isinstance(objective, NoiseObjective):
        objective = stiffness_objective(objective, config, stiffness_fn)
    if image_shape is None:
        require_density_model(model)
    unet = getattr(model, "unet", None)
    if isinstance(unet, torch.nn.Module):
        unet.eval().requires_grad_(False)
    if noise is not None and config.n_candidates:
        raise ValueError("give either an initial noise or config.n_candidates, not both")
    generator = DdimGenerator(model, config.num_inference_steps, config.checkpoint)
    stages = schedule(config)
    start = time.perf_counter()

    def loss_at(stage: Stage) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda w: evaluate_designs(w, generator, stage, objective).loss

    extra: dict[str, Any] = {}
    if noise is None:
        height_width = tuple(image_shape or _model_image_shape(model))[1:]
        shape = (len(objective.fields), *height_width)
        noise = initial_noise(max(n_designs, config.n_candidates), shape, seed, _model_dtype(model))
        if config.n_candidates:
            noise, chosen, losses = select_initial_noise(loss_at(stages[0]), noise, n_designs)
            extra["candidates"] = {
                "n": config.n_candidates,
                "gamma": float(config.gammas[0]),
                "chosen_index": chosen.tolist(),
                "chosen_loss": losses[chosen].tolist(),
                "median_loss": float(losses.median()),
                "selection_time_s": time.perf_counter() - start,
            }

    first = record_designs(noise, generator, Stage(float(config.gammas[-1])), objective)
    results: list[StageResult] = []
    history: list[torch.Tensor] = []
    history_stage: list[int] = []
    w = noise.detach().clone()
    for k, stage in enumerate(stages):
        t0 = time.perf_counter()

        def report(losses: torch.Tensor, iters: torch.Tensor, k: int = k, gamma: float = stage.gamma) -> None:
            if progress is not None:
                progress(k, gamma, losses, iters)

        outcome = run_stage(
            loss_at(stage),
            w,
            config.tol,
            config.max_iter,
            config.history_size,
            config.line_search,
            config.max_evals_per_iter,
            on_evaluation=report,
            joint=config.joint,
        )
        w = outcome.noise
        last = record_designs(w, generator, stage, objective)
        history += outcome.history
        history_stage += [k] * len(outcome.history)
        results.append(
            StageResult(
                gamma=stage.gamma,
                binary=stage.binary,
                iterations=outcome.iterations.tolist(),
                loss=last.loss.tolist(),
                quantity=last.response.quantity.tolist(),
                binarization=binarization(last.density, config.tau).tolist(),
                loss_thresholded=last.loss_thresholded.tolist(),
                wall_time_s=time.perf_counter() - t0,
            )
        )
    displacement = last.response.displacement
    return NoiseOptResult(
        objective=objective.describe(),
        config=config,
        noise_init=noise.detach().cpu().numpy(),
        noise_final=w.cpu().numpy(),
        image_init=first.image.cpu().numpy(),
        image_final=last.image.cpu().numpy(),
        design_init=first.density.cpu().numpy(),
        design_final=last.density.cpu().numpy(),
        quantity_init=first.response.quantity.cpu().numpy(),
        quantity_final=last.response.quantity.cpu().numpy(),
        quantity_thresholded=last.response_thresholded.quantity.cpu().numpy(),
        loss_init=first.loss.cpu().numpy(),
        loss_final=last.loss.cpu().numpy(),
        loss_thresholded=last.loss_thresholded.cpu().numpy(),
        binarization=binarization(last.density, config.tau).cpu().numpy(),
        displacement_final=None if displacement is None else displacement.cpu().numpy(),
        failures=last.response.reasons,
        fixed={name: density.cpu().numpy() for name, density in objective.fixed.items()},
        stages=results,
        loss_history=torch.stack(history).numpy() if history else np.zeros((0, noise.shape[0])),
        history_stage=np.asarray(history_stage, dtype=np.int64),
        wall_time_s=time.perf_counter() - start,
        extra=extra,
    )


def _model_image_shape(model: Denoiser) -> tuple[int, ...]:
    """(C, H, W) the model generates: its ``sample_shape``, else from its config dict, else (1, 32, 32)."""
    shape = getattr(model, "sample_shape", None)
    if shape is not None:
        return tuple(int(s) for s in shape)
    cfg = getattr(model, "config", None) or {}
    size = int(cfg.get("size") or 32)
    return (int(cfg.get("channels") or 1), *([size] * int(cfg.get("dim") or 2)))


def _model_dtype(model: Denoiser) -> torch.dtype:
    """dtype of the model's first parameter (float32 when it has none)."""
    unet = getattr(model, "unet", None)
    if isinstance(unet, torch.nn.Module):
        for p in unet.parameters():
            return p.dtype
    return torch.float32
