"""Seed A's design method: loss-guided diffusion on a particle prior, then backprojection to a design."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from matdiff.backprojection import backproject
from matdiff.diffusion import DiffusionModel
from matdiff.guidance import GuidanceConfig, TargetObjective, guided_sample
from matdiff.materials import Catalogue
from matdiff.methods.base import Proposals


@dataclass
class GuidedDiffusion:
    """Guided DDIM samples of ``model`` (``guidance.guided_sample`` with ``config``) backprojected to
    matrix/particle designs; ``progress`` shows the sampling bar."""

    model: DiffusionModel
    catalogue: Catalogue
    config: GuidanceConfig = GuidanceConfig()
    progress: bool = True
    name: str = "guided-diffusion"

    def settings(self) -> dict[str, Any]:
        """Guidance settings and the model's config (JSON-able)."""
        return {"method": self.name, "guidance": dataclasses.asdict(self.config), "model": self.model.config}

    def propose(self, objective: TargetObjective, n: int, seed: int) -> Proposals:
        """n guided samples from a generator seeded with ``seed``, each backprojected; a sample left out of
        guidance at some step (``GuidedSamples.failures``) keeps its design but is marked failed."""
        generator = torch.Generator(self.model.device).manual_seed(seed)
        start = time.perf_counter()
        samples = guided_sample(
            self.model, objective, n, self.catalogue, self.config, generator, progress=self.progress
        )
        seconds = dict(samples.seconds, sampling=time.perf_counter() - start)
        fields = samples.fields.detach().cpu().numpy()
        start = time.perf_counter()
        fits = [backproject(f, self.catalogue) for f in fields]
        seconds["backprojection"] = time.perf_counter() - start
        failures = samples.failures()
        return Proposals(
            designs=[b.design for b in fits],
            reasons=[failures.get(i) or b.reason for i, b in enumerate(fits)],
            fields=fields,
            columns={
                "fitting_variance": [float(b.fit_variance) for b in fits],
                "material_distance": [float(np.sum(b.material_distances)) for b in fits],
            },
            arrays={"fitted_materials": np.stack([b.means for b in fits])},
            trace={"loss": samples.loss_trace, "quantities": samples.quantity_trace},
            seconds=seconds,
        )
