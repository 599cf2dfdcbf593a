"""Seed B's design method: noise-space optimization of a style prior (``guidance.noise_opt``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from matdiff.guidance import TargetObjective
from matdiff.guidance.noise_objectives import NoiseObjective
from matdiff.guidance.noise_opt import NoiseOptConfig, NoiseOptResult, optimize_noise, stiffness_objective
from matdiff.methods.base import ImageDesign, Proposals

#: progress(stage, gamma, best losses (B,), iterations (B,)), called after every evaluation
Progress = Callable[[int, float, torch.Tensor, torch.Tensor], None]


@dataclass
class NoiseSpace:
    """L-BFGS on the DDIM input noise of ``model`` (eta = 0) through the tanh projection and an objective's
    FEM quantity, in stages of increasing gamma (``config``); one design per starting noise.

    ``propose`` (campaigns) takes a "homogenized_stiffness" target (a symmetric 3 x 3 C* in GPa, Voigt,
    engineering shear) and optimizes seed B's sum_ij (C_ij - C*_ij)^2; ``design`` takes any
    ``guidance.noise_objectives.NoiseObjective`` (energy and stress curves of one or two fields).
    ``stiffness_fn`` replaces the C_hom FEM (tests).
    """

    model: Any
    config: NoiseOptConfig = NoiseOptConfig()
    progress: Progress | None = None
    stiffness_fn: Callable[..., torch.Tensor] | None = None
    name: str = "noise-space"

    def settings(self) -> dict[str, Any]:
        """Noise-optimization settings and the model's config (JSON-able)."""
        return {
            "method": self.name,
            "noise_opt": asdict(self.config),
            "model": getattr(self.model, "config", None),
        }

    def design(self, objective: NoiseObjective, n: int, seed: int) -> NoiseOptResult:
        """n designs for ``objective`` optimized from the noises drawn with ``seed`` (or the best of
        config.n_candidates)."""
        return optimize_noise(
            self.model, objective, n_designs=n, seed=seed, config=self.config, progress=self.progress
        )

    def propose(self, objective: TargetObjective, n: int, seed: int) -> Proposals:
        """n C_hom designs for a homogenized_stiffness target (see ``design``) as image designs."""
        if objective.quantity != "homogenized_stiffness" or objective.density_weight:
            raise ValueError("noise-space design needs a homogenized_stiffness target without density term")
        result = self.design(stiffness_objective(objective.target, self.config, self.stiffness_fn), n, seed)
        c = self.config
        designs = [ImageDesign(d[0], (c.E_void, c.E_solid), c.nu, c.flip_rows) for d in result.design_final]
        return Proposals(
            designs=list(designs),
            reasons=[""] * n,
            fields=result.image_final,
            columns={
                "loss_init": result.loss_init.tolist(),
                "loss_final": result.loss_final.tolist(),
                "loss_thresholded": result.loss_thresholded.tolist(),
                "binarization": result.binarization.tolist(),
            },
            trace=result.summary(),
            seconds={"optimization": result.wall_time_s},
            arrays=result.arrays(),
        )
