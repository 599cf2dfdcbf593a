"""Guidance: steer a diffusion prior toward a design objective (seed A loss guidance, seed B noise space)."""

from matdiff.guidance.objectives import (
    Objective,
    Quantities,
    TargetObjective,
    make_objective,
    require_particle_model,
    target_bulk_modulus,
    target_bulk_modulus_low_density,
)
from matdiff.guidance.rules import DPS, TFG, GuidanceRecord, SnapToCatalogue, Unguided
from matdiff.guidance.sampler import GuidanceConfig, GuidedSamples, guided_sample, make_rule

__all__ = [
    "DPS",
    "TFG",
    "GuidanceConfig",
    "GuidanceRecord",
    "SnapToCatalogue",
    "TargetObjective",
    "Unguided",
    "make_rule",
    "GuidedSamples",
    "Objective",
    "Quantities",
    "guided_sample",
    "make_objective",
    "require_particle_model",
    "target_bulk_modulus",
    "target_bulk_modulus_low_density",
]
