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
time it spends and the objective's values (``GuidanceRecord``). A sample whose loss or gradient is NaN or
infinite at a step (e.g. its FEM solve failed after the float64 retry) is left out of that step, never the
batch: it gets no shift there, and the record says which sample, where and why (``failures()``). A new rule
(e.g. classifier-free guidance) is one more class with a ``predict`` method.
"""

from __future__ import annotations

import math
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
    dropped: list[tuple[Step, int, str]] = field(default_factory=list)
    """(step, sample, why) of every sample left out of a guided step."""
    guards: list[tuple[Step, torch.Tensor]] = field(default_factory=list, repr=False)
    """(step, (B,) bool finite) of every shift, read by ``failures`` (no host sync during sampling)."""

    def drop(self, step: Step, reasons: dict[int, str]) -> None:
        """Record samples (index -> why) left out of guidance at ``step``."""
        self.dropped += [(step, i, why) for i, why in reasons.items()]

    def guard(self, shift: torch.Tensor, step: Step) -> torch.Tensor:
        """shift (B, C, *spatial) with every sample that holds NaN or inf set to 0 (left out of this step)."""
        finite = torch.isfinite(shift).flatten(1).all(1)
        self.guards.append((step, finite))
        return torch.where(finite.view(-1, *(1,) * (shift.ndim - 1)), shift, torch.zeros_like(shift))

    def failures(self) -> dict[int, str]:
        """Samples left out of guidance at some step: index -> where (the first time) and why."""
        if self.guards:
            finite = torch.stack([ok for _, ok in self.guards]).cpu()
            for row, col in (~finite).nonzero().tolist():
                self.dropped.append((self.guards[row][0], col, "guidance gradient NaN or infinite"))
            self.guards.clear()
        found: dict[int, str] = {}
        for step, sample, why in sorted(self.dropped, key=lambda d: d[0].index):
            found.setdefault(sample, f"left out of guidance at step {step.index} (t = {step.t}): {why}")
        return found


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

    def loss(self, x0: torch.Tensor, step: Step) -> torch.Tensor:
        """Per-sample loss (B,) of x0_hat, 0 for samples whose loss is NaN or inf (recorded as dropped);
        records FEM time, quantity means and the mean loss of the other samples."""
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
                self.record.quantity_trace.setdefault(key, []).append(float(value.nanmean()))
        mean = float(loss.detach().mean())
        if not math.isfinite(mean):  # the mean is finite exactly when every sample's loss is
            loss, mean = self.drop_nonfinite(loss, q, step)
        self.record.loss_trace.append(mean)
        return loss

    def drop_nonfinite(self, loss: torch.Tensor, q: Quantities, step: Step) -> tuple[torch.Tensor, float]:
        """(loss (B,) with its NaN or inf entries set to 0, mean of the others) and the dropped samples
        recorded with why (their failed FEM solve, else the objective)."""
        bad = ~torch.isfinite(loss.detach())
        solves = q.failures()
        self.record.drop(
            step, {i: solves.get(i, "objective NaN or infinite") for i in bad.nonzero()[:, 0].tolist()}
        )
        kept = loss.detach()[~bad]
        return torch.where(bad, torch.zeros_like(loss), loss), float(kept.mean()) if len(kept) else math.nan

    def predict(self, model, x_t: torch.Tensor, step: Step):
        if step.last:
            return plain_prediction(model, x_t, step, self.record)
        with torch.enable_grad():
            x = x_t.detach().requires_grad_(True)
            start = time.perf_counter()
            x0, eps = model.predict(x, step.t, clip=True)
            self.record.seconds["network"] += time.perf_counter() - start
            shift = self.record.guard(self.shift(x, x0, step), step)
        return x0.detach(), eps.detach(), shift

    def shift(self, x: torch.Tensor, x0: torch.Tensor, step: Step) -> torch.Tensor:
        """What the rule subtracts from x_{t_prev}, from x_t (a leaf with gradients) and x0_hat(x_t)."""
        raise NotImplementedError


@dataclass
class TFG(Guided):
    """Training-free guidance (seed A's code): clipped x0-gradient pulled back through the network."""

    strength: float = 1.0
    grad_max_norm: float = 2.5

    def shift(self, x: torch.Tensor, x0: torch.Tensor, step: Step) -> torch.Tensor:
        x0_leaf = x0.detach().requires_grad_(True)
        (g0,) = torch.autograd.grad(self.loss(x0_leaf, step).sum(), x0_leaf)
        start = time.perf_counter()
        (g_t,) = torch.autograd.grad(x0, x, grad_outputs=clip_per_sample(g0, self.grad_max_norm))
        self.record.seconds["network"] += time.perf_counter() - start
        return self.strength * clip_per_sample(g_t, self.grad_max_norm)


SEED_A_DPS_SCALE = (0.5, 0.02, 1.0)
"""Seed A's paper (sec. 6.2): FEM gradients scaled by 0.5 for E and 0.02 for nu (its grid search); rho, read
only by a density term, unscaled."""


@dataclass
class DPS(Guided):
    """Diffusion posterior sampling: ``strength`` (zeta) times the gradient of the residual norm
    sqrt(loss) with respect to x_t, through x0_hat and the network, unclipped (Chung et al. 2023).
    ``channel_scale`` (one factor per channel) scales the gradient at x0_hat before it is pulled back through
    the network: seed A's paper uses zeta = 1 with ``SEED_A_DPS_SCALE``; None is plain DPS."""

    strength: float = 1.0
    channel_scale: tuple[float, ...] | None = None

    def shift(self, x: torch.Tensor, x0: torch.Tensor, step: Step) -> torch.Tensor:
        x0_leaf = x0.detach().requires_grad_(True)
        (g0,) = torch.autograd.grad(self.loss(x0_leaf, step).clamp_min(0).sqrt().sum(), x0_leaf)
        if self.channel_scale is not None:
            scale = torch.tensor(self.channel_scale, dtype=g0.dtype, device=g0.device)
            g0 = g0 * scale.view(1, -1, *([1] * (g0.ndim - 2)))
        start = time.perf_counter()
        (g_t,) = torch.autograd.grad(x0, x, grad_outputs=g0)
        self.record.seconds["network"] += time.perf_counter() - start
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
