"""Loss-guided DDIM sampling (seed A): FEM gradients through x0_hat steer an unconditional prior.

``guided_sample`` builds a guidance rule (``guidance.rules``: TFG, DPS, optionally snapping to the catalogue)
from a ``GuidanceConfig`` and runs the one DDIM loop of ``matdiff.diffusion.sampling``. With no objective
(or method "none") the same loop is plain unconditional sampling, timed the same way.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch

from matdiff.diffusion import DiffusionModel
from matdiff.diffusion.sampling import ddim_loop, ddim_steps
from matdiff.guidance.objectives import Objective
from matdiff.guidance.rules import DPS, SEED_A_DPS_SCALE, TFG, GuidanceRecord, SnapToCatalogue, Unguided
from matdiff.materials import Catalogue, catalogue_properties

GUIDANCE_METHODS = ("tfg", "dps", "dps-paper", "none")


@dataclass(frozen=True)
class GuidanceConfig:
    """Settings of one guided sampling run; saved with every result."""

    method: Literal["tfg", "dps", "dps-paper", "none"] = "tfg"
    """tfg: seed A's code (TFG, clipped gradients); dps: Chung et al.'s gradient of the residual norm;
    dps-paper: seed A's paper (DPS with the FEM gradients scaled 0.5 for E and 0.02 for nu, unclipped)."""
    strength: float = 1.0
    """TFG's rho or DPS's zeta (both 1 in seed A)."""
    grad_max_norm: float = 2.5
    """Per-sample L2 clip of the x0 and x_t gradients for TFG (seed A's grad_max_mag); 0 disables."""
    steps: int = 100
    eta: float = 1.0
    """DDIM stochasticity: 1 = strided DDPM as in seed A's code, 0 = deterministic DDIM."""
    snap_every: int = 0
    """If k > 0, every k-th step snaps x0_hat to catalogue materials instead of a gradient step (seed A's
    "project" variant)."""

    def __post_init__(self) -> None:
        if self.method not in GUIDANCE_METHODS:
            known = ", ".join(GUIDANCE_METHODS)
            raise ValueError(f"unknown guidance method {self.method!r}; use one of {known}")
        finite = all(math.isfinite(v) for v in (self.strength, self.grad_max_norm, self.eta))
        if not finite or self.strength < 0 or self.grad_max_norm < 0 or not 0 <= self.eta <= 1:
            raise ValueError(
                f"strength and grad_max_norm must be finite and >= 0, eta in [0, 1]: {asdict(self)}"
            )
        if self.steps < 1 or self.snap_every < 0:
            raise ValueError(f"steps must be >= 1 and snap_every >= 0: {asdict(self)}")


@dataclass
class GuidedSamples:
    """Final samples x0 (n, C, *spatial) in normalized space and what guidance recorded on the way."""

    fields: torch.Tensor
    record: GuidanceRecord

    @property
    def loss_trace(self) -> list[float]:
        """Mean objective over the batch at each guided step."""
        return self.record.loss_trace

    @property
    def quantity_trace(self) -> dict[str, list[float]]:
        """Batch mean of every FEM quantity the objective read, per guided step."""
        return self.record.quantity_trace

    @property
    def seconds(self) -> dict[str, float]:
        """Seconds spent in the network and in the FEM."""
        return self.record.seconds

    def failures(self) -> dict[int, str]:
        """Samples left out of guidance at some step (their loss or gradient was NaN or inf): index -> why."""
        return self.record.failures()


def make_rule(objective: Objective | None, catalogue: Catalogue, config: GuidanceConfig):
    """The guidance rule of ``config`` for ``objective``: TFG, DPS or seed A's paper DPS (each optionally
    snapping to the catalogue), or
    ``Unguided`` when there is no objective or the method is "none"."""
    if objective is None or config.method == "none":
        return Unguided()
    properties = functools.partial(catalogue_properties, catalogue=catalogue)
    if config.method == "tfg":
        rule = TFG(objective, properties, strength=config.strength, grad_max_norm=config.grad_max_norm)
    else:
        scale = SEED_A_DPS_SCALE if config.method == "dps-paper" else None
        rule = DPS(objective, properties, strength=config.strength, channel_scale=scale)
    return SnapToCatalogue(rule, catalogue, config.snap_every) if config.snap_every else rule


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
    rule = make_rule(objective, catalogue, config)
    gen_device = generator.device if generator is not None else model.device
    x = torch.randn((n, *model.sample_shape), generator=generator, device=gen_device).to(model.device)
    desc = "sampling" if isinstance(rule, Unguided) else "guided sampling"
    steps = ddim_steps(model.scheduler(), config.steps)
    x0 = ddim_loop(model, x, steps, config.eta, rule, generator, progress=progress, desc=desc)
    return GuidedSamples(fields=x0.clamp(-1, 1), record=rule.record)
