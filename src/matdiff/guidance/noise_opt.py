"""Noise-space optimization (seed B sec. 2.2, 3.1.2, 3.2): design the DDIM input noise of a diffusion model.

The chain, all differentiable and batched over B independent designs::

    w (B, 1, H, W) --DDIM eta=0--> x0 --P_gamma--> x_tilde (B, H, W)
      --> E = E_void + (E_solid - E_void) x_tilde --periodic homogenization--> C_hom (B, 3, 3)
      --> L = sum_ij (C_ij - C*_ij)^2   (per design)

Facts taken from seed B and its code (CMSL-HKUST/genopt), used as defaults:
- DDIM with eta = 0 over t = 999, 899, ..., 99 (10 steps, ``step = T // n``, ``t_i = i * step + step - 1``),
  no clipping of the x0 prediction, the last step goes to alpha_bar = 1.
- The generated image x0 (nominally in [-1, 1]) enters the projection as is: P(x) = (tanh(gamma x) + 1) / 2.
  matdiff's style stores use bright = solid (see ``matdiff.styles``), so x_tilde = P(x0) for every style; for
  digits this equals seed B's x_tilde = 1 - P(x0) on un-inverted MNIST, because P(-x) = 1 - P(x).
- Linear interpolation (penalty 1) of Young's modulus between E_void = 1 and E_solid = 100, nu = 0.3 in both
  phases, plane stress, Voigt notation with engineering shear.
- Loss: the plain sum of squared component errors (seed B eq. 29), not normalized; stage tolerance 1e-2 on it.
- Stages of increasing slope gamma, each started from the previous stage's noise, ending when the loss is
  below ``tol`` or after ``max_iter`` iterations; gammas (5, 10, 20, 80) for digits and (5, 10, 20, 100) for
  metamaterials. Seed B used scipy BFGS; we use torch.optim.LBFGS with a strong-Wolfe line search.
- Binarization B(tau) = share of pixels with x_tilde <= tau or >= 1 - tau, tau = 1e-3.
- The image's first row is the top edge (y = 1), as in genopt, which flips rows before its mesh; we flip rows
  before calling the FEM, whose row index follows +y (``flip_rows``). This fixes the sign of C13 and C23.

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
from matdiff.materials import interpolated_properties

SEED_B_GAMMAS: dict[str, tuple[float, ...]] = {
    "digits": (5.0, 10.0, 20.0, 80.0),
    "metamaterial": (5.0, 10.0, 20.0, 100.0),
}

SEED_B_TARGETS: dict[str, dict[str, list[list[float]]]] = {
    "digits": {
        "biclinic": [[50, 12, 0], [12, 60, -3], [0, -3, 15]],
        "orthotropic": [[50, 12, 0], [12, 60, 0], [0, 0, 15]],
        "tetragonal": [[60, 12, 0], [12, 60, 0], [0, 0, 15]],
    },
    "metamaterial": {
        "orthotropic": [[50, 15, 0], [15, 70, 0], [0, 0, 15]],
        "tetragonal": [[50, 15, 0], [15, 50, 0], [0, 0, 15]],
    },
}

StiffnessFn = Callable[..., torch.Tensor]


class Denoiser(Protocol):
    """What noise optimization needs from a diffusion model (``matdiff.diffusion.DiffusionModel``)."""

    def predict(
        self, x_t: torch.Tensor, t: torch.Tensor, clip: bool = False, condition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def scheduler(self, kind: str = "ddim") -> Any: ...


@dataclass(frozen=True)
class NoiseOptConfig:
    """Settings of a noise-space design run; defaults follow seed B's homogenization example on digits."""

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

    def __post_init__(self) -> None:
        if not self.gammas or not all(math.isfinite(g) and g > 0 for g in self.gammas):
            raise ValueError(f"gammas must be finite positive slopes, got {self.gammas}")
        if not (math.isfinite(self.tol) and self.tol >= 0) or self.max_iter < 1 or self.n_candidates < 0:
            raise ValueError(
                f"need tol finite >= 0, max_iter >= 1, n_candidates >= 0, got {self.tol}, {self.max_iter}, "
                f"{self.n_candidates}"
            )

    @classmethod
    def for_style(cls, style: str, **overrides: Any) -> NoiseOptConfig:
        """Seed B's settings for `style` ("digits" or "metamaterial"), with keyword overrides."""
        if style not in SEED_B_GAMMAS:
            raise ValueError(f"unknown style {style!r}; expected one of {tuple(SEED_B_GAMMAS)}")
        return cls(**{"gammas": SEED_B_GAMMAS[style], **overrides})


# ---------------------------------------------------------------------------------------------------- targets


def validate_target(C: Any, rtol: float = 1e-6) -> torch.Tensor:
    """A target stiffness as a (3, 3) float64 tensor; ValueError unless it is 3x3, finite and symmetric."""
    try:
        t = torch.as_tensor(np.asarray(C, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise ValueError(f"target C must be a 3x3 array of numbers: {err}") from err
    if t.shape != (3, 3):
        raise ValueError(f"target C must be 3x3 (2D Voigt), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError("target C has NaN or infinite entries")
    scale = float(t.abs().max()) or 1.0
    if (t - t.T).abs().max() > rtol * scale:
        raise ValueError(f"target C must be symmetric, got\n{t.numpy()}")
    return t


def parse_target(text: str) -> torch.Tensor:
    """Parse "c11,c12,c13;c21,c22,c23;c31,c32,c33" into a validated (3, 3) float64 tensor."""
    try:
        rows = [[float(v) for v in row.split(",")] for row in text.strip().split(";")]
    except ValueError as err:
        raise ValueError(f"target C {text!r} is not 3 rows of comma-separated numbers") from err
    if len(rows) != 3 or any(len(r) != 3 for r in rows):
        raise ValueError(f"target C {text!r} must have 3 rows of 3 numbers separated by ';'")
    return validate_target(rows)


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


# ------------------------------------------------------------------------------------ projection and physics


def project(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """Density x_tilde = (tanh(gamma x) + 1) / 2 in (0, 1), same shape as x (seed B eq. 24)."""
    return 0.5 * (torch.tanh(gamma * x) + 1.0)


def binarization(x_tilde: torch.Tensor, tau: float = 1e-3) -> torch.Tensor:
    """B(tau) per design (B,): share of pixels of x_tilde (B, H, W) with x_tilde <= tau or >= 1 - tau."""
    binary = (x_tilde <= tau) | (x_tilde >= 1.0 - tau)
    return binary.flatten(1).double().mean(dim=1)


def stiffness_loss(C: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Seed B's loss per design (B,): sum_ij (C_ij - C*_ij)^2 for C (B, 3, 3) and target (3, 3)."""
    return ((C - target.to(C)) ** 2).flatten(1).sum(dim=1)


def default_stiffness_fn() -> StiffnessFn:
    """matdiff.fem.homogenized_stiffness (imported lazily: fem is a leaf library)."""
    from matdiff.fem import homogenized_stiffness

    return homogenized_stiffness


@dataclass
class Evaluation:
    """One pass of the chain: image x0 (B, 1, H, W), density (B, H, W), C (B, 3, 3), loss (B,)."""

    image: torch.Tensor
    density: torch.Tensor
    C: torch.Tensor
    loss: torch.Tensor


def evaluate_designs(
    noise: torch.Tensor,
    generator: Callable[[torch.Tensor], torch.Tensor],
    gamma: float,
    target: torch.Tensor,
    config: NoiseOptConfig,
    stiffness_fn: StiffnessFn,
) -> Evaluation:
    """Run noise (B, 1, H, W) -> DDIM -> projection -> E field -> C_hom (float64) -> loss, differentiably."""
    image = generator(noise)
    density = project(image[:, 0], gamma)
    props = interpolated_properties(
        density.to(torch.float64), (config.E_void, config.E_solid), config.nu, flip_rows=config.flip_rows
    )
    C = stiffness_fn(props.E, props.nu, plane=config.plane)
    return Evaluation(image, density, C, stiffness_loss(C, target))


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
    """One stage: its gamma, per-design L-BFGS iterations, loss, C_hom (B, 3, 3), B(tau) and wall time (s)."""

    gamma: float
    iterations: list[int]
    loss: list[float]
    C_hom: list[list[list[float]]]
    binarization: list[float]
    wall_time_s: float


@dataclass
class NoiseOptResult:
    """A noise-space design run for B designs.

    Arrays: noise_init/noise_final (B, 1, H, W), image_init/image_final (B, 1, H, W) generated x0,
    design_init/design_final (B, H, W) densities x_tilde at the last gamma, C_init/C_final (B, 3, 3),
    loss_final and binarization (B,) at the last gamma, loss_history (n_evals, B) best loss so far in the
    current stage after each evaluation, history_stage (n_evals,) stage index of each row.
    """

    target: np.ndarray
    config: NoiseOptConfig
    noise_init: np.ndarray
    noise_final: np.ndarray
    image_init: np.ndarray
    image_final: np.ndarray
    design_init: np.ndarray
    design_final: np.ndarray
    C_init: np.ndarray
    C_final: np.ndarray
    loss_init: np.ndarray
    loss_final: np.ndarray
    binarization: np.ndarray
    stages: list[StageResult]
    loss_history: np.ndarray
    history_stage: np.ndarray
    wall_time_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready dict: config, target, per-stage records, final C, loss, B and wall time per design."""
        return {
            "config": asdict(self.config),
            "target": self.target.tolist(),
            "n_designs": int(self.noise_init.shape[0]),
            "C_init": self.C_init.tolist(),
            "C_final": self.C_final.tolist(),
            "loss_init": self.loss_init.tolist(),
            "loss_final": self.loss_final.tolist(),
            "binarization": self.binarization.tolist(),
            "wall_time_s": self.wall_time_s,
            "wall_time_per_design_s": self.wall_time_s / max(1, self.noise_init.shape[0]),
            "stages": [asdict(s) for s in self.stages],
            **self.extra,
        }


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


def optimize_noise(
    model: Denoiser,
    target_C: Any,
    noise: torch.Tensor | None = None,
    *,
    n_designs: int = 1,
    seed: int = 0,
    config: NoiseOptConfig | None = None,
    stiffness_fn: StiffnessFn | None = None,
    image_shape: Sequence[int] | None = None,
    progress: Callable[[int, float, torch.Tensor, torch.Tensor], None] | None = None,
) -> NoiseOptResult:
    """Design B = n_designs microstructures whose C_hom matches target_C (3, 3) by optimizing the DDIM noise.

    noise: initial noise (B, 1, H, W); drawn from `seed` when None (shape from `image_shape` or the model's
    ``config`` sample size, default (1, 32, 32)): the first n_designs draws, or with ``config.n_candidates``
    the n_designs of that many draws with the lowest loss at the first gamma (``select_initial_noise``).
    stiffness_fn(E, nu, plane=...) -> (B, 3, 3) defaults to
    matdiff.fem.homogenized_stiffness. progress(stage, gamma, best_losses (B,), iterations (B,)) is called
    after every evaluation. The model's weights are frozen (requires_grad False) for the run.
    """
    config = config or NoiseOptConfig()
    target = validate_target(target_C)
    if image_shape is None:
        require_density_model(model)
    stiffness_fn = stiffness_fn or default_stiffness_fn()
    unet = getattr(model, "unet", None)
    if isinstance(unet, torch.nn.Module):
        unet.eval().requires_grad_(False)
    if noise is not None and config.n_candidates:
        raise ValueError("give either an initial noise or config.n_candidates, not both")
    generator = DdimGenerator(model, config.num_inference_steps, config.checkpoint)
    start = time.perf_counter()

    def evaluate(w: torch.Tensor, gamma: float) -> Evaluation:
        return evaluate_designs(w, generator, gamma, target, config, stiffness_fn)

    extra: dict[str, Any] = {}
    if noise is None:
        shape = tuple(image_shape) if image_shape is not None else _model_image_shape(model)
        noise = initial_noise(max(n_designs, config.n_candidates), shape, seed, _model_dtype(model))
        if config.n_candidates:
            noise, chosen, losses = select_initial_noise(
                lambda w: evaluate(w, config.gammas[0]).loss, noise, n_designs
            )
            extra["candidates"] = {
                "n": config.n_candidates,
                "gamma": float(config.gammas[0]),
                "chosen_index": chosen.tolist(),
                "chosen_loss": losses[chosen].tolist(),
                "median_loss": float(losses.median()),
                "selection_time_s": time.perf_counter() - start,
            }

    with torch.no_grad():
        first = evaluate(noise, config.gammas[-1])
    stages: list[StageResult] = []
    history: list[torch.Tensor] = []
    history_stage: list[int] = []
    w = noise.detach().clone()
    for k, gamma in enumerate(config.gammas):
        t0 = time.perf_counter()

        def report(losses: torch.Tensor, iters: torch.Tensor, k: int = k, gamma: float = gamma) -> None:
            if progress is not None:
                progress(k, gamma, losses, iters)

        outcome = run_stage(
            lambda p, gamma=gamma: evaluate(p, gamma).loss,
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
        with torch.no_grad():
            ev = evaluate(w, gamma)
        history += outcome.history
        history_stage += [k] * len(outcome.history)
        stages.append(
            StageResult(
                gamma=float(gamma),
                iterations=outcome.iterations.tolist(),
                loss=ev.loss.tolist(),
                C_hom=ev.C.tolist(),
                binarization=binarization(ev.density, config.tau).tolist(),
                wall_time_s=time.perf_counter() - t0,
            )
        )
    wall = time.perf_counter() - start
    return NoiseOptResult(
        target=target.numpy(),
        config=config,
        noise_init=noise.detach().cpu().numpy(),
        noise_final=w.cpu().numpy(),
        image_init=first.image.cpu().numpy(),
        image_final=ev.image.cpu().numpy(),
        design_init=first.density.cpu().numpy(),
        design_final=ev.density.cpu().numpy(),
        C_init=first.C.cpu().numpy(),
        C_final=ev.C.cpu().numpy(),
        loss_init=first.loss.cpu().numpy(),
        loss_final=ev.loss.cpu().numpy(),
        binarization=binarization(ev.density, config.tau).cpu().numpy(),
        stages=stages,
        loss_history=torch.stack(history).numpy() if history else np.zeros((0, noise.shape[0])),
        history_stage=np.asarray(history_stage, dtype=np.int64),
        wall_time_s=wall,
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
