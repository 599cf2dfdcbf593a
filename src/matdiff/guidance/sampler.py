"""Loss-guided DDIM sampling (seed A): FEM gradients through x0_hat steer an unconditional prior.

Two guidance rules (SPEC 5):

- ``tfg`` (seed A's released code, default): g0 = dL/dx0_hat, clipped per sample to an L2 norm of
  ``grad_max_norm``; pulled back to x_t as the vector-Jacobian product g_t = (dx0_hat/dx_t)^T g0, clipped
  again; x_{t-1} = DDIM(x0_hat, eps_hat) - strength * g_t. Seed A samples with eta = 1 (strided DDPM).
- ``dps`` (seed A's paper, Chung et al. 2023): g_t = d||r||/dx_t with r the per-sample residual
  sqrt(L), i.e. the DPS step zeta / ||r|| * grad ||r||^2 / 2; x_{t-1} = DDIM(...) - strength * g_t.

Guidance is skipped at the last step (as DPS and seed A's code do). ``project_every = k > 0`` is seed A's
"project" variant: every k-th step replaces the gradient step by snapping each element of x0_hat to the
nearest catalogue material. With no objective the same loop is plain unconditional sampling.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from matdiff import fem
from matdiff.diffusion import DiffusionModel, ddim_update
from matdiff.guidance.objectives import Objective, Quantities
from matdiff.materials import Catalogue


@dataclass(frozen=True)
class GuidanceConfig:
    """Settings of one guided sampling run; saved with every result."""

    method: Literal["tfg", "dps", "none"] = "tfg"
    strength: float = 1.0
    """TFG's rho or DPS's zeta (both 1 in seed A)."""
    grad_max_norm: float = 2.5
    """Per-sample L2 clip of the x0 and x_t gradients for TFG (seed A's grad_max_mag); 0 disables."""
    steps: int = 100
    eta: float = 1.0
    """DDIM stochasticity: 1 = strided DDPM as in seed A's code, 0 = deterministic DDIM."""
    project_every: int = 0
    """If k > 0, every k-th step snaps x0_hat to catalogue materials instead of a gradient step."""

    def __post_init__(self) -> None:
        if self.method not in ("tfg", "dps", "none"):
            raise ValueError(f"unknown guidance method {self.method!r}; use 'tfg', 'dps' or 'none'")
        if self.steps < 1 or self.strength < 0 or self.grad_max_norm < 0 or self.project_every < 0:
            raise ValueError(f"invalid guidance settings: {asdict(self)}")


@dataclass
class GuidedSamples:
    """Final samples x0 (n, C, *spatial) in normalized space, with per-step traces and timings (s)."""

    fields: torch.Tensor
    loss_trace: list[float] = field(default_factory=list)
    """Mean objective over the batch at each guided step."""
    quantity_trace: dict[str, list[float]] = field(default_factory=dict)
    """Batch mean of every FEM quantity the objective read, per guided step."""
    seconds: dict[str, float] = field(default_factory=lambda: {"network": 0.0, "fem": 0.0})
    warm_start: fem.WarmStart = field(default_factory=fem.WarmStart)
    """FEM solutions of the previous step, the initial guess of the next (x0_hat changes little per step), and
    the multigrid hierarchies reused across steps; ``warm_start.clear()`` frees them."""


def clip_per_sample(g: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Scale each sample of g (B, ...) so that its L2 norm is at most max_norm (0 = no clipping)."""
    if max_norm <= 0:
        return g
    norms = g.flatten(1).norm(dim=1).clamp_min(1e-30)
    scale = torch.clamp(max_norm / norms, max=1.0)
    return g * scale.view(-1, *([1] * (g.ndim - 1)))


def snap_to_catalogue(x0: torch.Tensor, catalogue: Catalogue) -> torch.Tensor:
    """Replace every element's (E, nu, rho) in normalized x0 (B, 3, *spatial) by its nearest material."""
    points = x0.detach().movedim(1, -1)
    table = torch.from_numpy(np.array(catalogue.normalized_props)).to(x0.device, x0.dtype)
    return table[catalogue.nearest(points)].movedim(-1, 1)


def objective_loss(
    x0: torch.Tensor, objective: Objective, catalogue: Catalogue, samples: GuidedSamples
) -> torch.Tensor:
    """Per-sample loss (B,) of normalized x0 (B, 3, *spatial); records FEM time and quantity means."""
    start = time.perf_counter()
    q = Quantities(x0, catalogue.denormalize(x0.movedim(1, -1)), samples.warm_start)
    loss = objective(q)
    if loss.shape != x0.shape[:1]:
        raise ValueError(
            f"objective must return one loss per sample, shape {tuple(x0.shape[:1])}, got {tuple(loss.shape)}"
        )
    samples.seconds["fem"] += time.perf_counter() - start
    for key, value in q.computed().items():
        if value.ndim == 1:
            samples.quantity_trace.setdefault(key, []).append(float(value.mean()))
    samples.loss_trace.append(float(loss.detach().mean()))
    return loss


def guidance_gradient(
    model: DiffusionModel,
    x_t: torch.Tensor,
    t: int,
    objective: Objective,
    catalogue: Catalogue,
    config: GuidanceConfig,
    samples: GuidedSamples,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x0_hat, eps_hat, g_t) at step t, where g_t is the guidance direction subtracted from x_{t-1}."""
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        start = time.perf_counter()
        x0, eps = model.predict(x, t, clip=True)
        samples.seconds["network"] += time.perf_counter() - start
        if config.method == "tfg":
            x0_leaf = x0.detach().requires_grad_(True)
            loss = objective_loss(x0_leaf, objective, catalogue, samples)
            (g0,) = torch.autograd.grad(loss.sum(), x0_leaf)
            start = time.perf_counter()
            (g_t,) = torch.autograd.grad(x0, x, grad_outputs=clip_per_sample(g0, config.grad_max_norm))
            samples.seconds["network"] += time.perf_counter() - start
            g_t = clip_per_sample(g_t, config.grad_max_norm)
        else:
            loss = objective_loss(x0, objective, catalogue, samples)
            residual = loss.clamp_min(0).sqrt()
            (g_t,) = torch.autograd.grad(residual.sum(), x)
    return x0.detach(), eps.detach(), g_t


def guided_sample(
    model: DiffusionModel,
    objective: Objective | None,
    n: int,
    catalogue: Catalogue,
    config: GuidanceConfig = GuidanceConfig(),
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> GuidedSamples:
    """Draw n samples (n, C, *spatial) from ``model``, guided by ``objective`` (None = unguided)."""
    if n < 1:
        raise ValueError(f"number of samples must be >= 1, got {n}")
    guided = objective is not None and config.method != "none"
    scheduler = model.scheduler("ddim")
    scheduler.set_timesteps(config.steps)
    timesteps = [int(t) for t in scheduler.timesteps]
    alphas = model.alphas_cumprod
    x = torch.randn((n, *model.sample_shape), generator=generator, device=model.device)
    samples = GuidedSamples(fields=x)
    for i, t in enumerate(
        tqdm(timesteps, desc="guided sampling" if guided else "sampling", disable=not progress)
    ):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        last = i + 1 == len(timesteps)
        project = guided and config.project_every > 0 and i % config.project_every == config.project_every - 1
        g_t = None
        if guided and not last and not project:
            x0, eps, g_t = guidance_gradient(model, x, t, objective, catalogue, config, samples)
        else:
            start = time.perf_counter()
            with torch.no_grad():
                x0, eps = model.predict(x, t, clip=True)
            samples.seconds["network"] += time.perf_counter() - start
            if project and not last:
                x0 = snap_to_catalogue(x0, catalogue)
        a_t = alphas[t]
        a_prev = alphas[t_prev] if t_prev >= 0 else torch.ones_like(a_t)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = ddim_update(x0, eps, a_t, a_prev, config.eta, noise)
        if g_t is not None:
            x = x - config.strength * g_t
    samples.fields = x0.clamp(-1, 1)
    return samples
