"""A design campaign: guided samples -> backprojection -> re-evaluation -> one row per proposal."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from matdiff.backprojection import backproject
from matdiff.diffusion import DiffusionModel
from matdiff.evaluation.reevaluate import Design, bulk_modulus_of_fields, reevaluate_bulk_modulus
from matdiff.guidance import GuidanceConfig, Objective, guided_sample
from matdiff.materials import Catalogue


@dataclass
class Proposal:
    """One proposed design and its numbers; K in GPa, radius in cell lengths, densities in g/cm^3."""

    index: int
    valid: bool
    reason: str
    matrix: str
    particle: str
    matrix_row: int
    particle_row: int
    radius: float
    volume_fraction: float
    K_sample: float
    """FEM bulk modulus of the generated (relaxed) sample itself."""
    K_reevaluated: float
    """Mean FEM bulk modulus over fresh microstructures of the backprojected parameters."""
    K_reevaluated_std: float
    relative_error: float
    density: float
    """Volume-averaged density of the backprojected design (rule of mixtures)."""
    fitting_variance: float
    material_distance: float


@dataclass
class Campaign:
    """All proposals of one run, the generated fields (n, 3, *spatial), and timings in seconds."""

    proposals: list[Proposal]
    fields: np.ndarray
    seconds: dict[str, float]
    loss_trace: list[float]


def design_density(design: Design, catalogue: Catalogue) -> float:
    """Rule-of-mixtures density (g/cm^3) of a matrix/particle design."""
    vf = design.volume_fraction
    return float((1 - vf) * catalogue.rho[design.matrix] + vf * catalogue.rho[design.particle])


def run_campaign(
    model: DiffusionModel,
    objective: Objective | None,
    n: int,
    catalogue: Catalogue,
    target: float | None = None,
    config: GuidanceConfig = GuidanceConfig(),
    seed: int = 0,
    realizations: int = 10,
    progress: bool = True,
) -> Campaign:
    """Sample n designs for ``objective``, backproject, re-evaluate on ``realizations`` microstructures each.

    ``target`` (GPa) only fills the relative-error column; the objective carries the design intent.
    """
    generator = torch.Generator(model.device).manual_seed(seed)
    start = time.perf_counter()
    samples = guided_sample(model, objective, n, catalogue, config, generator=generator, progress=progress)
    seconds = dict(samples.seconds, sampling=time.perf_counter() - start)
    fields = samples.fields.detach().cpu().numpy()

    start = time.perf_counter()
    backprojections = [backproject(f, catalogue) for f in fields]
    seconds["backprojection"] = time.perf_counter() - start
    designs = [
        Design(b.matrix, b.particle, b.radius, b.volume_fraction) if b.valid else None
        for b in backprojections
    ]

    start = time.perf_counter()
    K_sample = bulk_modulus_of_fields(fields, catalogue, model.device)
    rng = np.random.default_rng(seed)
    K_mean, K_std, unrealizable = reevaluate_bulk_modulus(
        designs, model.dim, model.size, rng, realizations, catalogue, model.device
    )
    seconds["reevaluation"] = time.perf_counter() - start

    proposals = []
    for i, (b, d) in enumerate(zip(backprojections, designs, strict=True)):
        rel = abs(K_mean[i] - target) / target if target is not None else float("nan")
        proposals.append(
            Proposal(
                index=i,
                valid=b.valid and not unrealizable[i],
                reason=b.reason if not b.valid else unrealizable[i],
                matrix=catalogue.names[b.matrix] if b.valid else "",
                particle=catalogue.names[b.particle] if b.valid else "",
                matrix_row=int(b.matrix) if b.valid else -1,
                particle_row=int(b.particle) if b.valid else -1,
                radius=float(b.radius) if b.valid else float("nan"),
                volume_fraction=float(b.volume_fraction) if b.valid else float("nan"),
                K_sample=float(K_sample[i]),
                K_reevaluated=float(K_mean[i]),
                K_reevaluated_std=float(K_std[i]),
                relative_error=float(rel),
                density=design_density(d, catalogue) if d is not None else float("nan"),
                fitting_variance=float(b.fit_variance),
                material_distance=float(np.sum(b.material_distances)),
            )
        )
    return Campaign(proposals, fields, seconds, samples.loss_trace)


def proposal_rows(campaign: Campaign) -> list[dict]:
    """Proposals as plain dicts (for JSON/CSV)."""
    return [asdict(p) for p in campaign.proposals]
