"""Guidance rules for the DDIM loop of ``matdiff.diffusion.sampling``: how a step's prediction is steered.

A rule has ``predict(model, x_t, step) -> (x0_hat, eps_hat, shift)``; the loop subtracts ``shift`` after
the DDIM update. Rules here (SPEC 5):

- ``TFG`` (seed A's released code): g0 = dL/dx0_hat, clipped per sample to an L2 norm of ``grad_max_norm``;
  pulled back to x_t as the vector-Jacobian product g_t = (dx0_hat/dx_t)^T g0, clipped again; shift =
  strength * g_t. Seed A samples with eta = 1 (strided DDPM).
- ``DPS`` (seed A's paper, Chung et al. 2023): g_t = d||r||/dx_t with r the per-sample residual sqrt(L),
  i.e. the DPS step zeta / ||r|| * grad ||r||^2 / 2; shift = strength * g_t.
- ``SnapToCatalogue`` (seed A's "project" variant): every k-th step replaces the inner rule's gradient step
  by snapping each element of x0_hat to the nearest catalogue material.

Guidance is skipped at the last step (as DPS and seed A's code do). Every rule records the network and FEM
time it spends and the objective's values (``GuidanceRecord``). A new rule (e.g. classifier-free guidance)
is one more class with a ``predict`` method.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from matdiff import fem
from matdiff.diffusion.sampling import Step
from matdiff.guidance.objectives import Objective, Quantities
from matdiff.materials import Catalogue, Properties


@dataclass
class GuidanceRecord:
    """What guidance did over a run: per guided step the batch-mean loss and the batch mean of every FEM
    quantity the objective read, and the seconds spent in the network and in the FEM."""

    loss_trace: list[float] = field(default_factory=list)
    quantity_trace: dict[str, list[float]] = field(default_factory=dict)
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


def plain_prediction(model, x_t: torch.Tensor, step: Step, record: GuidanceRecord):
    """The unguided prediction (x0 clipped), its network time added to ``record``."""
    start = time.perf_counter()
    with torch.no_grad():
        x0, eps = model.predict(x_t, step.t, clip=True)
    record.seconds["network"] += time.perf_counter() - start
    return x0, eps, None


@dataclass
class Unguided:
    """No guidance: the network's prediction, timed like the guided rules."""

    record: GuidanceRecord = field(default_factory=GuidanceRecord)

    def predict(self, model, x_t: torch.Tensor, step: Step):
        return plain_prediction(model, x_t, step, self.record)


@dataclass
class Guided:
    """Shared part of the gradient rules: the objective of the properties of x0_hat, timed and recorded.

    ``properties`` maps x0_hat (B, C, *spatial) to physical element properties (``matdiff.materials``).
    """

    objective: Objective
    properties: Callable[[torch.Tensor], Properties]
    record: GuidanceRecord = field(default_factory=GuidanceRecord)

    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        """Per-sample loss (B,) of x0_hat; records FEM time and quantity means."""
        start = time.perf_counter()
        q = Quantities(self.properties(x0), x0, self.record.warm_start)
        loss = self.objective(q)
        if loss.shape != x0.shape[:1]:
            raise ValueError(
                f"objective must return one loss per sample, shape {tuple(x0.shape[:1])}, "
                f"got {tuple(loss.shape)}"
            )
        self.record.seconds["fem"] += time.perf_counter() - start
        for key, value in q.computed().items():
            if value.ndim == 1:
                self.record.quantity_trace.setdefault(key, []).append(float(value.mean()))
        self.record.loss_trace.append(float(loss.detach().mean()))
        return loss

    def predict(self, model, x_t: torch.Tensor, step: Step):
        if step.last:
            return plain_prediction(model, x_t, step, self.record)
        with torch.enable_grad():
            x = x_t.detach().requires_grad_(True)
            start = time.perf_counter()
            x0, eps = model.predict(x, step.t, clip=True)
            self.record.seconds["network"] += time.perf_counter() - start
            shift = self.shift(x, x0)
        return x0.detach(), eps.detach(), shift

    def shift(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """What the rule subtracts from x_{t_prev}, from x_t (a leaf with gradients) and x0_hat(x_t)."""
        raise NotImplementedError


@dataclass
class TFG(Guided):
    """Training-free guidance (seed A's code): clipped x0-gradient pulled back through the network."""

    strength: float = 1.0
    grad_max_norm: float = 2.5

    def shift(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        x0_leaf = x0.detach().requires_grad_(True)
        (g0,) = torch.autograd.grad(self.loss(x0_leaf).sum(), x0_leaf)
        start = time.perf_counter()
        (g_t,) = torch.autograd.grad(x0, x, grad_outputs=clip_per_sample(g0, self.grad_max_norm))
        self.record.seconds["network"] += time.perf_counter() - start
        return self.strength * clip_per_sample(g_t, self.grad_max_norm)


@dataclass
class DPS(Guided):
    """Diffusion posterior sampling (seed A paper): the gradient of the residual norm through the network."""

    strength: float = 1.0

    def shift(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        (g_t,) = torch.autograd.grad(self.loss(x0).clamp_min(0).sqrt().sum(), x)
        return self.strength * g_t


@dataclass
class SnapToCatalogue:
    """Seed A's "project" variant: every ``every``-th step snaps x0_hat to catalogue materials; the other
    steps follow ``inner`` (a TFG or DPS rule)."""

    inner: Guided
    catalogue: Catalogue
    every: int

    @property
    def record(self) -> GuidanceRecord:
        """The inner rule's record."""
        return self.inner.record

    def predict(self, model, x_t: torch.Tensor, step: Step):
        if step.last or step.index % self.every != self.every - 1:
            return self.inner.predict(model, x_t, step)
        x0, eps, _ = plain_prediction(model, x_t, step, self.record)
        return snap_to_catalogue(x0, self.catalogue), eps, None
