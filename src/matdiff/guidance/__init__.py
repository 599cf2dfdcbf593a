"""Guidance: steer a diffusion prior toward a design objective (seed A loss guidance, seed B noise space)."""

from matdiff.guidance.objectives import (
    Objective,
    Quantities,
    make_objective,
    require_particle_model,
    target_bulk_modulus,
    target_bulk_modulus_low_density,
)
from matdiff.guidance.sampler import GuidanceConfig, GuidedSamples, guided_sample

__all__ = [
    "GuidanceConfig",
    "GuidedSamples",
    "Objective",
    "Quantities",
    "guided_sample",
    "require_particle_model",
    "make_objective",
    "target_bulk_modulus",
    "target_bulk_modulus_low_density",
]
