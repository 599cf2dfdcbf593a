"""Seed B's design method: noise-space optimization of a style prior (``guidance.noise_opt``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from matdiff.guidance import TargetObjective
from matdiff.guidance.noise_opt import NoiseOptConfig, optimize_noise
from matdiff.methods.base import ImageDesign, Proposals

#: progress(stage, gamma, best losses (B,), iterations (B,)), called after every evaluation
Progress = Callable[[int, float, torch.Tensor, torch.Tensor], None]


@dataclass
class NoiseSpace:
    """L-BFGS on the DDIM input noise of ``model`` (eta = 0) through the tanh projection and the periodic
    homogenization, in stages of increasing gamma (``config``); one design per starting noise.

    The objective must target "homogenized_stiffness" (a symmetric 3 x 3 C* in GPa, Voigt, engineering
    shear); its loss is seed B's sum_ij (C_ij - C*_ij)^2. ``stiffness_fn`` replaces the FEM (tests).
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

    def propose(self, objective: TargetObjective, n: int, seed: int) -> Proposals:
        """n designs optimized from the noises drawn with ``seed`` (or the best of config.n_candidates)."""
        if objective.quantity != "homogenized_stiffness" or objective.density_weight:
            raise ValueError("noise-space design needs a homogenized_stiffness target without density term")
        result = optimize_noise(
            self.model,
            objective.target,
            n_designs=n,
            seed=seed,
            config=self.config,
            stiffness_fn=self.stiffness_fn,
            progress=self.progress,
        )
        c = self.config
        designs = [ImageDesign(d, (c.E_void, c.E_solid), c.nu, c.flip_rows) for d in result.design_final]
        return Proposals(
            designs=list(designs),
            reasons=[""] * n,
            fields=result.image_final,
            columns={
                "loss_init": result.loss_init.tolist(),
                "loss_final": result.loss_final.tolist(),
                "binarization": result.binarization.tolist(),
            },
            trace=result.summary(),
            seconds={"optimization": result.wall_time_s},
            arrays={
                "noise_init": result.noise_init,
                "noise_final": result.noise_final,
                "image_init": result.image_init,
                "design_init": result.design_init,
                "design_final": result.design_final,
                "loss_history": result.loss_history,
                "history_stage": result.history_stage,
            },
        )
